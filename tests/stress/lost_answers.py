"""Lost answers below our code: a botocore hook that sends a write, then drops its answer.

:func:`lose_answers` registers on a client's ``before-send`` of every write call (``PutItem``,
``UpdateItem``, ``TransactWriteItems``): for a share of the calls it sends the signed request
itself, so DynamoDB applies it, throws the answer away and raises botocore's
``ConnectionClosedError``, which botocore's retry mode treats as transient: it sends the same
request again, as it would after a reset connection on AWS. Each request body loses its
answer at most once, so the call then goes through. :func:`fault_worker` drives commands
through an ``OrderService`` with the hook installed, in a process of its own.
"""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any
from uuid import UUID

from botocore.exceptions import ConnectionClosedError
from botocore.httpsession import URLLib3Session

from orders import OrderLine, OrderService

WRITES = ("PutItem", "UpdateItem", "TransactWriteItems")


def lose_answers(client: Any, share: float, seed: int) -> list[int]:
    """Installs the hook on ``client``; returns a one-element list counting answers lost."""
    chance = random.Random(seed)
    session = URLLib3Session()
    lost_bodies: set[bytes] = set()
    lost = [0]

    def send_and_lose(request: Any, **kwargs: Any) -> None:
        body = bytes(request.body or b"")
        if body in lost_bodies or chance.random() >= share:
            return
        lost_bodies.add(body)
        session.send(request)  # Applied by DynamoDB ...
        lost[0] += 1
        raise ConnectionClosedError(endpoint_url=request.url)  # ... and its answer lost.

    for operation in WRITES:
        client.meta.events.register(f"before-send.dynamodb.{operation}", send_and_lose)
    return lost


def fault_worker(
    env: dict[str, str], worker: int, shared: str, commands: int, *, share: float, start_at: float
) -> tuple[list[tuple[str, str, str, str]], int]:
    """Alternates ``change_lines`` on the ``shared`` order and ``place_order`` without an id
    (a new order each), with answers lost; per command (kind, order id, tag, outcome), and
    the answers lost."""
    service = OrderService(env=env)
    try:
        lost = lose_answers(service.factory.datastore.client, share, seed=worker)  # type: ignore[attr-defined]
        time.sleep(max(0.0, start_at - time.time()))
        done: list[tuple[str, str, str, str]] = []
        for n in range(commands):
            tag = f"w{worker}-c{n}"
            line = OrderLine(tag, 1, Decimal("1.00"))
            try:
                if n % 2 == 0:
                    service.change_lines(UUID(shared), [line])
                    done.append(("change", shared, tag, "ok"))
                else:
                    placed = service.place_order(tag, [line], "EUR")
                    done.append(("place", str(placed.order_id), tag, "ok"))
            except Exception as error:
                done.append(("change" if n % 2 == 0 else "place", "", tag, type(error).__name__))
        return done, lost[0]
    finally:
        service.close()
