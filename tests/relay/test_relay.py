"""The relay's guarantees on the local backend (SQLite log, in-process bus), bus by bus call."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from adapters.bootstrap.relay import relay_for
from adapters.eventbridge.bus import MAX_BYTES, entry_size
from adapters.eventbridge.wiring import BusWiring, Route
from adapters.local.bus import InProcessBus, LocalDeadLetters
from adapters.observability.telemetry import EmfMetrics, NullMetrics, RelayMetrics
from adapters.relay.outbox import Relay
from adapters.relay.ports import Entry, PublishError, Rejection, RelayError
from adapters.supervisor import WorkerStoppedError
from orders import OrderLine, OrderService
from projections.parking import Request
from schemas import parse_envelope
from tests.relay.support import FAST

LINES = [OrderLine("SKU-1", 2, Decimal("1.50"))]


class ScriptedBus(InProcessBus):
    """The in-process bus, recording every call's entries and refusing what ``refuse`` says."""

    def __init__(
        self,
        refuse: Callable[[Entry, int], Rejection | None] = lambda entry, attempt: None,
        handlers: Mapping[str, Callable[[str], None]] | None = None,
        wiring: BusWiring | None = None,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        super().__init__(handlers or {}, LocalDeadLetters(":memory:"), wiring, max_bytes=max_bytes)
        self.refuse = refuse
        self.calls: list[list[Entry]] = []
        self.refused: list[list[Entry]] = []
        self.accepted: list[Entry] = []
        self.fail_calls = 0
        self.fail_with: PublishError | None = None

    def send(self, entries: Sequence[Entry]) -> list[Rejection | None]:
        self.calls.append(list(entries))
        if self.fail_calls:
            self.fail_calls -= 1
            raise self.fail_with or PublishError("connection reset", retryable=True)
        results: list[Rejection | None] = []
        self.refused.append([])
        for entry in entries:
            attempt = sum(entry in call for call in self.calls)
            rejection = self.refuse(entry, attempt)
            if rejection is None:
                self.accepted.append(entry)
                self.deliver(entry.envelope)
            else:
                self.refused[-1].append(entry)
            results.append(rejection)
        return results


class Metrics:
    """Keeps every report, after the telemetry's relay port checked its names."""

    def __init__(self) -> None:
        self.reports: list[Mapping[str, float]] = []
        self.port = RelayMetrics(NullMetrics())

    def put(self, values: Mapping[str, float]) -> None:
        self.port.put(values)
        self.reports.append(dict(values))


def place(service: OrderService, orders: int, *, paid: bool = True) -> None:
    """``orders`` orders, each placed then (if ``paid``) paid and shipped: 1 or 3 events."""
    for number in range(orders):
        order_id = service.place_order(f"customer-{number}", LINES, "EUR").order_id
        if paid:
            service.confirm_payment(order_id, f"pay-{number}", Decimal(3))
            service.ship(order_id)


def relay_to(service: OrderService, bus: ScriptedBus, metrics: Metrics | None = None) -> Relay:
    return relay_for(service, bus, settings=FAST, metrics=metrics)


def test_calls_carry_one_event_per_order_and_an_orders_next_event_waits_for_acceptance(
    service: OrderService,
) -> None:
    """Given 30 orders of 3 events in the log, the first try of every 4th entry refused
    (throttled) When the relay catches up
    Then every event is accepted once, no call carries two events of one order, an order's
    event is sent only after its earlier ones were accepted, the refused entries are sent
    again alone, and calls hold up to 10 entries."""
    place(service, 30)
    bus = ScriptedBus(
        lambda entry, attempt: (
            Rejection("Throttled", permanent=False)
            if entry.notification_id % 4 == 0 and attempt == 1
            else None
        )
    )

    assert relay_to(service, bus).run_until_caught_up(deadline=float("inf")) == 90

    assert sorted(e.notification_id for e in bus.accepted) == list(range(1, 91))
    accepted: set[tuple[object, int]] = set()
    for number, (call, refused) in enumerate(zip(bus.calls, bus.refused, strict=True)):
        assert len({entry.order_id for entry in call}) == len(call) <= 10
        if number and bus.refused[number - 1]:
            assert call == bus.refused[number - 1]  # the refused entries, alone
        for entry in call:
            version = entry.envelope.detail.stream_version
            assert all((entry.order_id, v) in accepted for v in range(1, version))
        accepted |= {(e.order_id, e.envelope.detail.stream_version) for e in call}
        accepted -= {(e.order_id, e.envelope.detail.stream_version) for e in refused}
    assert any(bus.refused)
    assert max(len(call) for call in bus.calls) == 10


def test_a_restarted_relay_continues_from_its_position(service: OrderService) -> None:
    """Given a relay that published the log When more events are stored and a new relay runs
    Then it publishes only the new events."""
    place(service, 5)
    first = ScriptedBus()
    relay_to(service, first).run_until_caught_up(deadline=float("inf"))
    place(service, 2, paid=False)
    second = ScriptedBus()

    assert relay_to(service, second).run_until_caught_up(deadline=float("inf")) == 2
    assert [e.notification_id for e in second.accepted] == [16, 17]


def test_an_event_that_cannot_be_mapped_parks_its_order_and_the_others_flow_on(
    service: OrderService,
) -> None:
    """Given a stored event no mapping knows between valid ones When the relay runs
    Then every other event is published, the position passes the bad one only once it is
    recorded in the parking lot (with the reason), ParkedOrders is 1 in every later report;
    a skip drops it with its recorded reason and ParkedOrders goes back to 0."""
    place(service, 2)
    stream = uuid4()
    (bad_id,) = service.recorder.insert_events(
        [StoredEvent(stream, 1, "orders:NoSuchEvent", b"{}")]
    ) or [0]
    place(service, 1)
    bus, metrics = ScriptedBus(), Metrics()
    relay = relay_to(service, bus, metrics)

    assert relay.run_until_caught_up(deadline=float("inf")) == 10

    assert sorted(e.notification_id for e in bus.accepted) == [*range(1, bad_id), 8, 9, 10]
    assert relay.position() == 10
    (parked,) = relay.parking.parked()
    assert (parked.order_id, parked.notification_ids) == (str(stream), (bad_id,))
    assert f"notification {bad_id} " in parked.reason and "cannot be published" in parked.reason
    assert metrics.reports[-1]["ParkedOrders"] == 1
    assert sum(r["PublishedEvents"] for r in metrics.reports) == 9

    relay.parking.ask(str(stream), Request.SKIP, "written by a broken migration")
    assert relay.settle()
    assert relay.parking.parked() == []
    (skipped,) = relay.parking.skipped()
    assert (skipped.notification_ids, skipped.note) == ((bad_id,), "written by a broken migration")
    assert metrics.reports[-1]["ParkedOrders"] == 0
    assert len(bus.accepted) == 9


def test_an_oversized_event_parks_its_order_with_its_later_events_and_a_retry_publishes_them(
    service: OrderService,
) -> None:
    """Given an order whose OrderPlaced is over the bus's limit (``max_bytes``, a setting;
    the domain's bounds keep every order under today's 256 KB, see
    ``tests/integration/test_largest_order.py``), then paid and shipped, and
    other orders placed and paid around it When the relay runs
    Then the big order's 3 events are parked in order (the reason naming the size) and every
    other event is published; after the fix (a bus taking bigger entries), a retry publishes
    the 3 once, in order, and releases the order; its next event is published as usual."""
    place(service, 1)
    lines = [OrderLine(f"SKU-{n}-" + "x" * 120, 1, Decimal(1)) for n in range(70)]
    big = service.place_order("customer-big", lines, "EUR").order_id
    place(service, 1)
    service.confirm_payment(big, "pay-big", Decimal(70))
    place(service, 1)
    service.ship(big)
    bus = ScriptedBus(max_bytes=8192)
    relay = relay_to(service, bus)

    relay.run_until_caught_up(deadline=float("inf"))

    (parked,) = relay.parking.parked()
    assert parked.notification_ids == (4, 8, 12)
    assert "bytes, over the bus's 8192" in parked.reason
    assert sorted(e.notification_id for e in bus.accepted) == [1, 2, 3, 5, 6, 7, 9, 10, 11]
    assert relay.position() == 12

    bus.max_bytes = 1024 * 1024  # the fix: a bus that takes entries of up to 1 MB
    relay.parking.ask(str(big), Request.RETRY)
    relay.run_until_caught_up(deadline=float("inf"))
    service.complete(big)
    relay.run_until_caught_up(deadline=float("inf"))

    big_events = [e for e in bus.accepted if e.order_id == big]
    assert [e.envelope.detail_type for e in big_events] == [
        "OrderPlaced",
        "PaymentConfirmed",
        "OrderShipped",
        "OrderCompleted",
    ]
    assert relay.parking.parked() == []
    assert sorted(e.notification_id for e in bus.accepted) == list(range(1, 14))


def test_an_entry_refused_for_good_parks_its_order_and_a_failed_retry_keeps_it_parked(
    service: OrderService,
) -> None:
    """Given the bus refuses notification 5 as malformed When the relay runs
    Then its order (events 4, 5, 6) is parked from 5 on (4 was accepted), the others are
    published, and the position is the head; a retry while the bus still refuses it keeps
    5 and 6 parked with the new reason and clears the request."""
    place(service, 3)
    refusing = [True]
    bus = ScriptedBus(
        lambda entry, attempt: (
            Rejection("MalformedDetail: bad", permanent=True)
            if entry.notification_id == 5 and refusing[0]
            else None
        )
    )
    relay = relay_to(service, bus)

    relay.run_until_caught_up(deadline=float("inf"))

    (parked,) = relay.parking.parked()
    assert parked.notification_ids == (5, 6)
    assert "MalformedDetail" in parked.reason
    assert sorted(e.notification_id for e in bus.accepted) == [1, 2, 3, 4, 7, 8, 9]
    assert relay.position() == 9
    relay.parking.ask(parked.order_id, Request.RETRY)
    assert relay.settle()
    (still,) = relay.parking.parked()
    assert (still.notification_ids, still.request) == ((5, 6), None)

    refusing[0] = False
    relay.parking.ask(parked.order_id, Request.RETRY)
    assert relay.settle()
    assert relay.parking.parked() == []
    assert [e.notification_id for e in bus.accepted][-2:] == [5, 6]


def test_a_call_that_fails_as_a_whole_is_sent_again_and_a_lasting_one_stops_the_relay(
    service: OrderService,
) -> None:
    """Given calls failing as a whole (connection reset) twice When the relay runs
    Then the same entries are sent again and all arrive once; a call refused for good (no such
    bus) stops the relay with that one-line reason."""
    place(service, 2)
    bus = ScriptedBus()
    bus.fail_calls = 2
    assert relay_to(service, bus).run_until_caught_up(deadline=float("inf")) == 6
    assert bus.calls[0] == bus.calls[1] == bus.calls[2]
    assert sorted(e.notification_id for e in bus.accepted) == [1, 2, 3, 4, 5, 6]

    place(service, 1)
    broken = ScriptedBus()
    broken.fail_calls = 1
    broken.fail_with = PublishError("PutEvents to bus 'orders': no such bus", retryable=False)
    metrics = Metrics()
    with pytest.raises(RelayError, match="no such bus"):
        relay_to(service, broken, metrics).run_until_caught_up(deadline=float("inf"))
    assert [r["Stopped"] for r in metrics.reports if "Stopped" in r] == [1]


def test_a_running_relay_refused_for_good_emits_relay_stopped_and_stops(
    service: OrderService, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a bus that refuses every call for good (missing bus) When the relay runs
    Then it stops with that reason and an EMF line carries RelayStopped 1."""
    place(service, 1)
    broken = ScriptedBus()
    broken.fail_calls = 1
    broken.fail_with = PublishError("PutEvents to bus 'orders': no such bus", retryable=False)
    sink = EmfMetrics()
    relay = relay_for(service, broken, settings=FAST, metrics=RelayMetrics(sink))
    with pytest.raises(WorkerStoppedError, match=r"relay stopped: RelayError: .*no such bus"):
        relay.run(threading.Event())
    sink.flush()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line]
    assert [line["RelayStopped"] for line in lines if "RelayStopped" in line] == [[1.0]]
    assert relay.position() == 0


def test_a_relay_without_the_lease_publishes_nothing(service: OrderService) -> None:
    """Given another relay holds the lease When a second relay runs until caught up
    Then it publishes nothing; once the holder releases it, it publishes everything."""
    place(service, 2)
    holder = relay_to(service, ScriptedBus())
    assert holder.hold_lease()
    waiting_bus = ScriptedBus()
    waiting = relay_to(service, waiting_bus)

    assert waiting.run_until_caught_up(deadline=float("inf")) == 0
    assert not waiting_bus.calls
    holder.lease.release(holder.owner)
    assert waiting.run_until_caught_up(deadline=float("inf")) == 6


def test_the_in_process_bus_routes_like_the_rules_and_dead_letters_a_failing_handler(
    service: OrderService,
) -> None:
    """Given a route of every order event and one of processing orders (by detail.status),
    the latter's handler failing for one order When the relay publishes 2 paid-and-shipped
    orders Then the first gets all 6 events, each order's in order; the second gets
    PaymentConfirmed and OrderShipped of each order, the failing ones tried 3 times and then
    dead-lettered, without holding up the relay."""
    place(service, 2)
    failing_order = service.recorder.select_notifications(1, 1)[0].originator_id
    wiring = BusWiring(
        routes=(
            Route("all", {"source": ["order-service"]}, "every order event"),
            Route("paid", {"detail": {"detail": {"status": ["processing"]}}}, "processing orders"),
        )
    )
    seen: dict[str, list[tuple[object, str]]] = {"all": [], "paid": []}

    def every(body: str) -> None:
        envelope = parse_envelope(body)
        seen["all"].append((envelope.detail.order_id, envelope.detail_type))

    def paid(body: str) -> None:
        envelope = parse_envelope(body)
        seen["paid"].append((envelope.detail.order_id, envelope.detail_type))
        if envelope.detail.order_id == failing_order:
            raise RuntimeError("SNS is down")

    bus = ScriptedBus(handlers={"all": every, "paid": paid}, wiring=wiring)
    assert relay_to(service, bus).run_until_caught_up(deadline=float("inf")) == 6

    def of_order(route: str, failing: bool) -> list[str]:
        return [kind for order, kind in seen[route] if (order == failing_order) == failing]

    journey = ["OrderPlaced", "PaymentConfirmed", "OrderShipped"]
    assert of_order("all", True) == of_order("all", False) == journey
    assert of_order("paid", False) == ["PaymentConfirmed", "OrderShipped"]
    assert of_order("paid", True) == ["PaymentConfirmed"] * 3 + ["OrderShipped"] * 3
    letters = bus.dead_letters.list()
    assert sorted((d.route, parse_envelope(d.body).detail_type) for d in letters) == [
        ("paid", "OrderShipped"),
        ("paid", "PaymentConfirmed"),
    ]
    assert {d.reason for d in letters} == {"RuntimeError: SNS is down"}
    with pytest.raises(KeyError, match="no route 'nowhere'"):
        InProcessBus({"nowhere": every}, LocalDeadLetters(":memory:"))


def test_an_entry_is_sized_as_eventbridge_sizes_it() -> None:
    """Given an entry with a time, multi-byte text and a resource When it is sized
    Then it counts 14 bytes for the time and the UTF-8 bytes of the rest, as AWS documents."""
    entry = {
        "Time": datetime(2026, 11, 27, tzinfo=UTC),
        "Source": "order-service",
        "DetailType": "OrderPlaced",
        "Detail": '{"sku":"café"}',
        "Resources": ["arn:aws:x"],
        "EventBusName": "not counted",
    }
    assert entry_size(entry) == 14 + 13 + 11 + 15 + 9
    assert entry_size({**entry, "Time": None, "Resources": []}) == 13 + 11 + 15
