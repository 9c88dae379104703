"""The end-to-end demo: places and advances a few hundred orders through ``OrderService``.

It drives the public Python API only, so it runs on whichever backend the service was built on.
It plays the payment service too: payments are ``PaymentSucceeded`` events handed, as JSON, to
the payment saga's record handler, the one an SQS consumer of payment events runs.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID, uuid4

from adapters.consumers.dispatcher import PAYMENT_DETAIL_TYPES, Dispatcher
from adapters.consumers.saga import PaymentSaga
from orders import OrderError, OrderLine, OrderService
from schemas import to_json
from schemas.payments import payment_succeeded

CATALOGUE: dict[str, Decimal] = {
    "BOOK-001": Decimal("12.50"),
    "MUG-002": Decimal("8.99"),
    "TEE-003": Decimal("19.00"),
    "CAP-004": Decimal("14.25"),
    "PEN-005": Decimal("1.75"),
}


@dataclass
class DemoSummary:
    """What one demo run did, for the CLI to print."""

    placed: list[UUID] = field(default_factory=list)
    commands: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejection_examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def random_lines(rng: random.Random) -> list[OrderLine]:
    """One to four distinct catalogue lines with small quantities."""
    skus = rng.sample(sorted(CATALOGUE), rng.randint(1, 4))
    return [
        OrderLine(sku=sku, quantity=rng.randint(1, 3), unit_price=CATALOGUE[sku]) for sku in skus
    ]


def order_journeys(
    service: OrderService,
    order_id: UUID,
    journey: str,
    rng: random.Random,
    payments: Callable[[str], None],
) -> Iterator[Callable[[], object]]:
    """The commands one order goes through, most of them valid, some deliberately not.

    Every command of one order's journey shares the correlation id ``journey``; the causation id
    names the system that sent the command, which is what an audit asks for. Payments are
    events of the payment service handed to ``payments`` (the payment saga's record handler),
    which confirms them on the order with the payment event's id as causation id.
    """

    def by(sender: str) -> dict[str, str]:
        return {"correlation_id": journey, "causation_id": sender}

    roll = rng.random()
    if roll < 0.10:
        yield lambda: service.change_lines(order_id, random_lines(rng), **by("web-shop"))
    if roll < 0.20:
        yield lambda: service.cancel(
            order_id, reason="customer changed their mind", **by("web-shop")
        )
        return
    if roll < 0.25:
        return  # stays pending
    total = service.get_order(order_id).total
    payment = f"pay-{order_id.hex[:12]}"
    if roll < 0.30:  # a wrong amount is refused; nothing is recorded
        underpaid = to_json(
            payment_succeeded(order_id, payment, total / 2, "EUR", correlation_id=journey)
        )
        yield lambda: payments(underpaid)
    paid = to_json(payment_succeeded(order_id, payment, total, "EUR", correlation_id=journey))
    yield lambda: payments(paid)
    if roll < 0.35:  # the payment event is delivered twice: no new event
        yield lambda: payments(paid)
    yield lambda: service.ship(order_id, **by("warehouse"))
    if roll < 0.45:
        return  # still on its way
    if roll < 0.50:  # too late to change the lines of a shipped order
        yield lambda: service.change_lines(order_id, random_lines(rng), **by("web-shop"))
    yield lambda: service.complete(order_id, **by("carrier"))


def run_demo(
    service: OrderService,
    order_count: int,
    seed: int,
    on_order_done: Callable[[], None] = lambda: None,
) -> DemoSummary:
    """Place ``order_count`` orders and walk each through a journey; refusals are counted."""
    rng = random.Random(seed)
    summary = DemoSummary()
    payments = Dispatcher([(PAYMENT_DETAIL_TYPES, PaymentSaga(service))])
    started = time.perf_counter()
    run = uuid4().hex[:8]
    for number in range(order_count):
        journey = f"demo-{run}-journey-{number}"
        # The id is chosen before sending: sent again after a timeout, it places no second order.
        placed = service.place_order(
            customer_id=f"customer-{rng.randint(1, order_count // 3 + 1)}",
            lines=random_lines(rng),
            currency="EUR",
            order_id=uuid4(),
            correlation_id=journey,
            causation_id="web-shop",
        )
        summary.placed.append(placed.order_id)
        summary.commands += 1
        for command in order_journeys(service, placed.order_id, journey, rng, payments):
            summary.commands += 1
            try:
                command()
            except OrderError as error:
                reason = getattr(error, "rule", type(error).__name__)
                summary.rejected[reason] += 1
                summary.rejection_examples.setdefault(reason, str(error))
        on_order_done()
    summary.seconds = time.perf_counter() - started
    return summary
