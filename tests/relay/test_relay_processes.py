"""Relays as separate ``orders relay run`` processes on one SQLite log, publishing to moto:
killed at random moments, and two at once."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest

from adapters.bootstrap.relay import eventbridge_destination, relay_name, status_of
from adapters.eventbridge.wiring import BusWiring
from adapters.local.backend import SQLiteLease
from orders import OrderLine, OrderService
from schemas import Envelope, event_id, parse_envelope
from tests.relay.support import Bus, QueueReader, child_env, stored_order_events

ORDERS = str(Path(sys.executable).parent / "orders")
LINES = [OrderLine("SKU-1", 1, Decimal("2.50"))]


def store_events(service: OrderService, count: int) -> list[str]:
    """Stores ``count`` events (orders placed, paid, shipped); returns every event id stored,
    in log order."""
    for number in range((count + 2) // 3):
        order_id = service.place_order(f"customer-{number}", LINES, "EUR").order_id
        service.confirm_payment(order_id, f"pay-{number}", Decimal("2.50"))
        service.ship(order_id)
    return [str(event_id(event)) for event in stored_order_events(service)]


DESTINATION = eventbridge_destination(BusWiring().bus_name)
"""The destination of the tests' bus."""


def start_relay(
    data_dir: Path, bus: Bus, lease_seconds: float, poll_seconds: float
) -> subprocess.Popen[bytes]:
    arguments = ["--lease-seconds", str(lease_seconds), "--poll-seconds", str(poll_seconds)]
    return subprocess.Popen(
        [
            ORDERS,
            "--data-dir",
            str(data_dir),
            "relay",
            "run",
            "--bus",
            bus.wiring.bus_name,
            *arguments,
        ],
        env=child_env(bus.server),
        stderr=subprocess.PIPE,
    )


def lease_of(service: OrderService) -> SQLiteLease:
    name = relay_name(DESTINATION)
    lease = SQLiteLease(service.factory.datastore, name)  # type: ignore[attr-defined]
    return lease


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Polls ``condition()`` until true; returns when it became true (``time.monotonic``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def holds_lease(service: OrderService, process: subprocess.Popen[bytes]) -> bool:
    holder = lease_of(service).holder()
    return (
        holder is not None
        and f":{process.pid}:" in holder.owner
        and holder.expires_at > time.time()
    )


def delivered_ids(queues: QueueReader) -> list[str]:
    return [json.loads(body)["id"] for body in queues.bodies["views"]]


@pytest.mark.parametrize(
    ("events", "kills"),
    [
        pytest.param(150, 5, id="150-events-5-kills"),
        pytest.param(1000, 20, id="1000-events-20-kills", marks=pytest.mark.acceptance),
    ],
)
def test_a_relay_killed_at_random_moments_delivers_everything_at_least_once(
    bus: Bus, service: OrderService, tmp_path: Path, events: int, kills: int
) -> None:
    """Given ``events`` stored events When a relay process is SIGKILLed at ``kills`` random
    moments while publishing, restarted each time, then run to the end and stopped by SIGTERM
    Then every stored event was delivered at least once, duplicates are the same envelope
    under the same id, no id was invented, each order's first deliveries are in version
    order, and the last relay stops cleanly at the log head."""
    stored = store_events(service, events)
    rng = random.Random(7)
    killed_while_behind = 0
    with bus.reader("views") as queues:
        for _ in range(kills):
            relay = start_relay(tmp_path, bus, lease_seconds=1.0, poll_seconds=0.1)
            wait_for(partial(holds_lease, service, relay), 60, "the relay took the lease")
            time.sleep(rng.uniform(0.0, 0.6))
            relay.send_signal(signal.SIGKILL)
            relay.wait()
            killed_while_behind += status_of(service, DESTINATION).lag > 0
        last = start_relay(tmp_path, bus, lease_seconds=1.0, poll_seconds=0.1)
        wait_for(
            lambda: status_of(service, DESTINATION).lag == 0,
            180,
            "the relay caught up",
        )
        last.send_signal(signal.SIGTERM)
        _, stderr = last.communicate(timeout=30)

    delivered = delivered_ids(queues)
    duplicates = len(delivered) - len(set(delivered))
    print(
        f"{len(stored)} events, {kills} kills ({killed_while_behind} behind the head): "
        f"{len(delivered)} deliveries, {duplicates} duplicates"
    )
    assert last.returncode == 0, stderr.decode()
    assert f"stopped at position {len(stored)}" in stderr.decode()
    assert set(delivered) == set(stored)
    assert killed_while_behind >= kills // 2
    by_id: dict[str, Envelope] = {}
    for body in queues.bodies["views"]:
        envelope = parse_envelope(body)
        assert by_id.setdefault(str(envelope.id), envelope) == envelope
    first_versions: dict[object, list[int]] = {}
    for event_id_ in dict.fromkeys(delivered):
        envelope = by_id[event_id_]
        first_versions.setdefault(envelope.detail.order_id, []).append(
            envelope.detail.stream_version
        )
    assert all(v == sorted(v) for v in first_versions.values())


def test_two_relays_publish_each_event_once_and_the_survivor_takes_over_after_a_kill(
    bus: Bus, service: OrderService, tmp_path: Path
) -> None:
    """Given two relay processes started together on one log of 150 events
    When they run Then each event is delivered exactly once (one publishes per lease term);
    When the holder is SIGKILLed Then the other holds the lease within the term plus one poll
    (plus 1.5 s of process scheduling slack on this shared machine), and publishes what is
    stored next, each event once, and stops cleanly on SIGINT (Ctrl-C)."""
    lease_seconds, poll_seconds = 2.0, 0.2
    stored = store_events(service, 150)
    with bus.reader("views") as queues:
        relays = [start_relay(tmp_path, bus, lease_seconds, poll_seconds) for _ in range(2)]
        wait_for(
            lambda: status_of(service, DESTINATION).lag == 0,
            120,
            "the relays caught up",
        )
        holder = next(relay for relay in relays if holds_lease(service, relay))
        survivor = next(relay for relay in relays if relay is not holder)
        holder.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        holder.wait()
        took_over_at = wait_for(
            lambda: holds_lease(service, survivor), 30, "the survivor took over"
        )
        stored += store_events(service, 30)[len(stored) :]
        wait_for(
            lambda: status_of(service, DESTINATION).lag == 0,
            60,
            "the survivor caught up",
        )
        survivor.send_signal(signal.SIGINT)  # as Ctrl-C does
        survivor.communicate(timeout=30)

    takeover = took_over_at - killed_at
    print(
        f"takeover {takeover:.2f} s after SIGKILL (lease {lease_seconds} s, poll {poll_seconds} s)"
    )
    assert Counter(delivered_ids(queues)) == Counter(stored)
    assert takeover <= lease_seconds + poll_seconds + 1.5
    assert survivor.returncode == 0
