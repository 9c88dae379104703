"""Benchmark of the outbox relay: events/s beside raw boto3 ``PutEvents`` of the same entries.

Run on demand (it is not a test)::

    .venv/bin/python -m tests.benchmarks.bench_relay [EVENTS]

It starts moto's server on a loopback port through the test harness, stores ``EVENTS``
(default 600) order events in a SQLite log, and then, on the same server, alternately:

- **raw**: boto3 ``PutEvents`` of exactly the entries the relay sends (same ``Detail``, same
  bus), 10 per call in log order, with no ordering rule, no retry, no position, no lease;
- **relay**: the relay publishing the log from position 0 (reading the log, mapping each
  event, batching one event per order per call, recording its position per window, holding
  its lease).

Each is run ``ROUNDS`` times on a freshly reset bus, on two buses: the default wiring (three
rules; moto applies each rule's pattern and input transformer to every event, which dominates
its time) and a bus without rules (moto's own cost per entry is small, so the relay's
overhead shows). It prints the median events/s of each, their ratio, and ``PutEvents`` calls
per 100 events.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.bootstrap.relay import envelope_of, relay_for
from adapters.eventbridge.bus import EventBridgePublisher, set_up_bus
from adapters.eventbridge.wiring import BusWiring
from adapters.relay.outbox import RelaySettings
from orders import OrderLine, OrderService
from tests.relay.support import sqlite_service
from tests.support.moto_server import MotoServer, moto_server, stop_moto_server

ROUNDS = 3
LINES = [OrderLine("SKU-1", 2, Decimal("12.50")), OrderLine("SKU-2", 1, Decimal("3.99"))]


def store(service: OrderService, events: int) -> None:
    """Orders placed, paid and shipped, one after another: 3 events each."""
    for number in range((events + 2) // 3):
        order_id = service.place_order(f"customer-{number}", LINES, "EUR").order_id
        service.confirm_payment(order_id, f"pay-{number}", Decimal("28.99"))
        service.ship(order_id)


def entries_of(service: OrderService, publisher: EventBridgePublisher) -> list[dict[str, Any]]:
    """The ``PutEvents`` entries the relay sends for the whole log, in log order."""
    to_envelope = envelope_of(service)
    notifications = service.recorder.select_notifications(start=1, limit=10**6)
    return [dict(publisher.entry(n, to_envelope(n)).body) for n in notifications]


def raw(server: MotoServer, entries: Sequence[dict[str, Any]]) -> tuple[float, int]:
    """Seconds to send ``entries`` 10 per call with boto3, and the calls made."""
    client = server.client("events")
    calls = 0
    started = time.perf_counter()
    for first in range(0, len(entries), 10):
        response = client.put_events(Entries=entries[first : first + 10])
        assert response["FailedEntryCount"] == 0, response
        calls += 1
    return time.perf_counter() - started, calls


def relayed(
    server: MotoServer, service: OrderService, bus_name: str, name: str
) -> tuple[float, int]:
    """Seconds for a new relay (its own position ``name``) to publish the log, and its calls."""
    publisher = EventBridgePublisher(server.client("events"), bus_name)
    relay = relay_for(service, publisher, name=name, settings=RelaySettings(window=100))
    started = time.perf_counter()
    published = relay.run_until_caught_up(deadline=float("inf"))
    seconds = time.perf_counter() - started
    assert published == service.recorder.max_notification_id(), published
    return seconds, relay.counters.calls


def measure(
    label: str, server: MotoServer, service: OrderService, wiring: BusWiring | None
) -> None:
    events = service.recorder.max_notification_id() or 0

    def fresh_bus() -> str:
        server.reset()
        if wiring is not None:
            set_up_bus(server.client("events"), server.client("sqs"), wiring)
            return wiring.bus_name
        server.client("events").create_event_bus(Name="bare")
        return "bare"

    bus_name = fresh_bus()
    entries = entries_of(service, EventBridgePublisher(server.client("events"), bus_name))
    raw_rates: list[float] = []
    relay_rates: list[float] = []
    relay_calls = 0
    for round_ in range(ROUNDS):
        fresh_bus()
        seconds, _ = raw(server, entries)
        raw_rates.append(events / seconds)
        fresh_bus()
        seconds, relay_calls = relayed(server, service, bus_name, f"bench-{label}-{round_}")
        relay_rates.append(events / seconds)
    raw_rate, relay_rate = statistics.median(raw_rates), statistics.median(relay_rates)
    print(
        f"{label:<28} {events:>6} {raw_rate:>10.0f} {relay_rate:>10.0f} "
        f"{relay_rate / raw_rate:>7.2f}x {100 * relay_calls / events:>10.1f}"
    )


def main(arguments: Sequence[str]) -> None:
    events = int(arguments[0]) if arguments else 600
    server = moto_server()
    try:
        with tempfile.TemporaryDirectory() as directory, sqlite_service(Path(directory)) as service:
            store(service, events)
            print(
                f"relay vs raw boto3 PutEvents on moto {server.endpoint_url} (median of {ROUNDS})"
            )
            header = ("bus", "events", "raw ev/s", "relay ev/s", "ratio", "calls/100")
            print("{:<28} {:>6} {:>10} {:>10} {:>8} {:>10}".format(*header))
            cases: list[tuple[str, BusWiring | None]] = [
                ("3 rules (default wiring)", BusWiring()),
                ("no rules", None),
            ]
            for label, wiring in cases:
                measure(label, server, service, wiring)
    finally:
        stop_moto_server()


if __name__ == "__main__":
    main(sys.argv[1:])
