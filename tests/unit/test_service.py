"""OrderService on the library's POPO and SQLite stores: commands, queries, retries, snapshots."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from adapters.dynamodb import StreamConflictError
from orders import (
    Order,
    OrderConflictError,
    OrderNotFoundError,
    OrderRuleError,
    OrderService,
    PlacedOrder,
)
from tests.support import cached_decisions
from tests.unit.builders import CANCEL_REASON, OTHER_LINES, PAYMENT_ID, TWO_LINES, TWO_LINES_TOTAL

NO_PAUSE = {"ORDERS_RETRY_BACKOFF_SECONDS": "0"}


def popo_env() -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.popo", **NO_PAUSE}


def sqlite_env(path: Path, **settings: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path / "orders.sqlite"),
        **NO_PAUSE,
        **settings,
    }


@pytest.fixture(params=["popo", "sqlite"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OrderService]:
    """An OrderService on each store the library ships that runs in-process."""
    env = popo_env() if request.param == "popo" else sqlite_env(tmp_path)
    with OrderService(env) as service:
        yield service


def notification_count(service: OrderService) -> int:
    return service.recorder.max_notification_id() or 0


def place(service: OrderService, **kwargs: Any) -> UUID:
    return service.place_order("customer-1", TWO_LINES, "EUR", **kwargs).order_id


def test_an_order_goes_through_its_life_cycle_and_each_command_returns_the_new_version(
    service: OrderService,
) -> None:
    """Given no order When it is placed, changed, paid, shipped and completed
    Then each command returns the next version and the order ends completed."""
    placed = service.place_order("customer-1", TWO_LINES, "EUR")
    assert isinstance(placed, PlacedOrder)
    assert placed.version == 1
    order_id = placed.order_id

    assert service.change_lines(order_id, OTHER_LINES) == 2
    assert service.confirm_payment(order_id, PAYMENT_ID, Decimal("9.00")) == 3
    assert service.ship(order_id) == 4
    assert service.complete(order_id) == 5

    order = service.get_order(order_id)
    assert (order.version, order.status, order.total) == (5, "completed", Decimal(9))


def test_cancelling_through_the_service_records_the_reason(service: OrderService) -> None:
    """Given a placed order When it is cancelled Then version 2 is cancelled for that reason."""
    order_id = place(service)
    assert service.cancel(order_id, CANCEL_REASON) == 2
    order = service.get_order(order_id)
    assert (order.status, order.cancellation_reason) == ("cancelled", CANCEL_REASON)


def test_placing_again_under_the_same_id_with_the_same_content_is_a_repeat(
    service: OrderService,
) -> None:
    """Given an order placed under a client-chosen id and then changed
    When it is placed again with the same content
    Then nothing is recorded and the current version is returned."""
    order_id = uuid4()
    assert place(service, order_id=order_id) == order_id
    service.change_lines(order_id, OTHER_LINES)
    count = notification_count(service)

    again = service.place_order("customer-1", list(TWO_LINES), "EUR", order_id=order_id)

    assert again == PlacedOrder(order_id, 2)
    assert notification_count(service) == count


def test_placing_other_content_under_a_taken_id_is_refused(service: OrderService) -> None:
    """Given an order placed under a client-chosen id When other content is placed under it
    Then OrderRuleError("order-id-taken") and nothing is recorded."""
    order_id = place(service, order_id=uuid4())
    count = notification_count(service)

    with pytest.raises(OrderRuleError) as refused:
        service.place_order("customer-2", TWO_LINES, "EUR", order_id=order_id)

    assert refused.value.rule == "order-id-taken"
    assert notification_count(service) == count


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        (lambda s, order_id: s.change_lines(order_id, []), "at-least-one-line"),
        (lambda s, order_id: s.confirm_payment(order_id, "p", Decimal(1)), "payment-equals-total"),
        (lambda s, order_id: s.ship(order_id), "illegal-transition"),
        (lambda s, order_id: s.complete(order_id), "illegal-transition"),
        (lambda s, order_id: s.cancel(order_id, ""), "reason-required"),
        (lambda s, order_id: s.place_order("c", TWO_LINES, "XXX"), "known-currency"),
    ],
    ids=["change-lines", "confirm-payment", "ship", "complete", "cancel", "place"],
)
def test_a_refused_command_stores_nothing(
    service: OrderService, command: Callable[[OrderService, UUID], object], rule: str
) -> None:
    """Given a pending order When a command breaks a rule
    Then OrderRuleError names it, nothing is stored and the version is unchanged."""
    order_id = place(service)
    count = notification_count(service)

    with pytest.raises(OrderRuleError) as refused:
        command(service, order_id)

    assert refused.value.rule == rule
    assert notification_count(service) == count
    assert service.get_order(order_id).version == 1


def test_repeated_commands_store_nothing_and_return_the_same_version(
    service: OrderService,
) -> None:
    """Given a paid and cancelled order When the payment and the cancellation come again
    Then each returns the current version and nothing more is stored."""
    order_id = place(service)
    service.confirm_payment(order_id, PAYMENT_ID, TWO_LINES_TOTAL)
    service.cancel(order_id, CANCEL_REASON)
    count = notification_count(service)

    assert service.confirm_payment(order_id, PAYMENT_ID, TWO_LINES_TOTAL) == 3
    assert service.cancel(order_id, CANCEL_REASON) == 3
    assert notification_count(service) == count


@pytest.mark.parametrize(
    "query",
    [
        lambda s, order_id: s.get_order(order_id),
        lambda s, order_id: s.history(order_id),
        lambda s, order_id: s.ship(order_id),
        lambda s, order_id: s.cancel(order_id, CANCEL_REASON),
    ],
    ids=["get-order", "history", "ship", "cancel"],
)
def test_an_unknown_order_is_not_found(
    service: OrderService, query: Callable[[OrderService, UUID], object]
) -> None:
    """Given no order under an id When it is read or commanded Then OrderNotFoundError names it."""
    order_id = uuid4()
    with pytest.raises(OrderNotFoundError) as not_found:
        query(service, order_id)
    assert not_found.value.order_id == order_id
    assert notification_count(service) == 0


def test_history_lists_every_event_with_its_trace_and_details(service: OrderService) -> None:
    """Given an order placed, paid and cancelled When its history is read
    Then it lists the three events in order, with versions, UTC times, ids and details."""
    order_id = place(service, correlation_id="corr-1", causation_id="cmd-1")
    service.confirm_payment(order_id, PAYMENT_ID, TWO_LINES_TOTAL, correlation_id="corr-2")
    service.cancel(order_id, CANCEL_REASON)

    history = service.history(order_id)

    assert [(e.version, e.type_name) for e in history] == [
        (1, "OrderPlaced"),
        (2, "PaymentConfirmed"),
        (3, "OrderCancelled"),
    ]
    assert [(e.correlation_id, e.causation_id) for e in history[:2]] == [
        ("corr-1", "cmd-1"),
        ("corr-2", None),
    ]
    assert history[2].correlation_id not in {"corr-1", "corr-2", ""}
    assert dict(history[1].details) == {"payment_id": PAYMENT_ID, "amount": TWO_LINES_TOTAL}
    assert dict(history[2].details) == {"reason": CANCEL_REASON, "failed_payment_id": None}
    assert all(e.timestamp.tzinfo is UTC for e in history)
    assert history[0].timestamp <= history[1].timestamp <= history[2].timestamp


def test_correlation_and_causation_ids_survive_storage(tmp_path: Path) -> None:
    """Given commands with correlation and causation ids saved to an SQLite file
    When another service instance reads the file
    Then every event carries the ids its command was given."""
    with OrderService(sqlite_env(tmp_path)) as writer:
        order_id = place(writer, correlation_id="corr-1", causation_id="cmd-1")
        writer.change_lines(order_id, OTHER_LINES, correlation_id="corr-1", causation_id="cmd-2")

    with OrderService(sqlite_env(tmp_path)) as reader:
        traces = [(e.correlation_id, e.causation_id) for e in reader.history(order_id)]

    assert traces == [("corr-1", "cmd-1"), ("corr-1", "cmd-2")]


def test_get_order_at_a_version_gives_the_state_after_that_event(service: OrderService) -> None:
    """Given an order placed, changed and paid When it is read at versions 1, 2 and 3
    Then each read gives the state after that event."""
    order_id = place(service)
    service.change_lines(order_id, OTHER_LINES)
    service.confirm_payment(order_id, PAYMENT_ID, Decimal(9))

    states = [service.get_order(order_id, version=v) for v in (1, 2, 3)]

    assert [(o.version, o.state, o.total) for o in states] == [
        (1, "pending", TWO_LINES_TOTAL),
        (2, "pending", Decimal(9)),
        (3, "paid", Decimal(9)),
    ]


def test_get_order_as_of_a_time_gives_the_state_then(service: OrderService) -> None:
    """Given an order placed before t1 and changed between t1 and t2, paid after t2
    When it is read as of each time Then it is as it stood then, and before placing not found."""
    before = datetime.now(UTC)
    order_id = place(service)
    t1 = datetime.now(UTC)
    service.change_lines(order_id, OTHER_LINES)
    t2 = datetime.now(UTC)
    service.confirm_payment(order_id, PAYMENT_ID, Decimal(9))

    assert service.get_order(order_id, as_of=t1).version == 1
    assert service.get_order(order_id, as_of=t2).version == 2
    assert service.get_order(order_id, as_of=datetime.now(UTC)).version == 3
    with pytest.raises(OrderNotFoundError):
        service.get_order(order_id, as_of=before)


@pytest.mark.parametrize(
    "arguments",
    [{"as_of": datetime(2030, 1, 1)}, {"as_of": datetime.now(UTC), "version": 1}],
    ids=["naive-time", "version-and-time"],
)
def test_get_order_refuses_an_ambiguous_point_in_time(
    service: OrderService, arguments: dict[str, Any]
) -> None:
    """Given an order When read as of a naive time, or at a version and a time Then ValueError."""
    order_id = place(service)
    with pytest.raises(ValueError, match="as_of"):
        service.get_order(order_id, **arguments)


def run_life_cycle(service: OrderService, order_id: UUID) -> None:
    service.place_order("customer-1", TWO_LINES, "EUR", order_id=order_id)
    service.change_lines(order_id, OTHER_LINES)
    service.confirm_payment(order_id, PAYMENT_ID, Decimal(9))
    service.ship(order_id)
    service.complete(order_id)


def test_snapshots_on_and_off_give_the_same_state_at_every_version(tmp_path: Path) -> None:
    """Given an order of five events saved by a service that snapshots every 2 events
    When it is read at each version with and without snapshots (same SQLite file)
    Then snapshots exist at versions 2 and 4 and both reads agree at every version."""
    order_id = uuid4()
    with (
        OrderService(sqlite_env(tmp_path, ORDERS_SNAPSHOT_INTERVAL="2")) as snapshotting,
        OrderService(sqlite_env(tmp_path)) as replaying,
    ):
        run_life_cycle(snapshotting, order_id)

        assert replaying.snapshots is None
        assert snapshotting.snapshots is not None
        snapshot_versions = [s.originator_version for s in snapshotting.snapshots.get(order_id)]
        assert snapshot_versions == [2, 4]
        for version in (1, 2, 3, 4, 5, None):
            from_snapshot = snapshotting.get_order(order_id, version=version)
            from_events = replaying.get_order(order_id, version=version)
            assert from_snapshot == from_events
            assert from_snapshot.version == (version or 5)


def test_without_an_interval_no_snapshot_store_is_made() -> None:
    """Given ORDERS_SNAPSHOT_INTERVAL 0 Then the service has no snapshot store."""
    assert OrderService({**popo_env(), "ORDERS_SNAPSHOT_INTERVAL": "0"}).snapshots is None


def test_max_attempts_below_one_is_refused() -> None:
    """Given ORDERS_MAX_ATTEMPTS 0 When the service is made Then ValueError names the setting."""
    with pytest.raises(ValueError, match="ORDERS_MAX_ATTEMPTS"):
        OrderService({**popo_env(), "ORDERS_MAX_ATTEMPTS": "0"})


Insert = Callable[..., Sequence[int] | None]


def before_each_save(
    monkeypatch: pytest.MonkeyPatch, service: OrderService, interloper: Callable[[], object]
) -> None:
    """Make ``interloper`` run just before each save of ``service`` reaches its store."""
    insert: Insert = service.recorder.insert_events

    def insert_after_interloper(stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        interloper()
        return insert(stored_events, **kwargs)

    monkeypatch.setattr(service.recorder, "insert_events", insert_after_interloper)


def test_a_command_that_loses_a_race_reloads_and_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given two services on one SQLite file and a pending order
    When the second changes the lines while the first is saving its cancellation
    Then the first's save conflicts, it reloads, decides again and cancels at version 3."""
    with (
        OrderService(sqlite_env(tmp_path)) as first,
        OrderService(sqlite_env(tmp_path)) as second,
    ):
        order_id = place(first)
        interloper_versions: list[int] = []

        def change_lines_once() -> None:
            if not interloper_versions:
                interloper_versions.append(second.change_lines(order_id, OTHER_LINES))

        before_each_save(monkeypatch, first, change_lines_once)

        assert first.cancel(order_id, CANCEL_REASON) == 3

        history = second.history(order_id)
    assert interloper_versions == [2]
    assert [e.type_name for e in history] == ["OrderPlaced", "OrderLinesChanged", "OrderCancelled"]


def test_a_command_that_keeps_losing_gives_up_with_the_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given ORDERS_MAX_ATTEMPTS 3 and a second service that changes the lines before every save
    When the first service cancels the order
    Then after 3 tries OrderConflictError names the order, version 3 loaded and 4 found,
    and the cancellation was never stored."""
    with (
        OrderService(sqlite_env(tmp_path, ORDERS_MAX_ATTEMPTS="3")) as first,
        OrderService(sqlite_env(tmp_path)) as second,
    ):
        order_id = place(first)
        lines = itertools.cycle([OTHER_LINES, TWO_LINES])
        before_each_save(monkeypatch, first, lambda: second.change_lines(order_id, next(lines)))

        with pytest.raises(OrderConflictError) as conflict:
            first.cancel(order_id, CANCEL_REASON)

        order = second.get_order(order_id)
    error = conflict.value
    assert (error.order_id, error.expected_version, error.actual_version) == (order_id, 3, 4)
    assert error.attempts == 3
    assert (order.version, order.state) == (4, "pending")


def test_the_found_version_comes_from_the_stores_version_conflict_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given a store that rejects every save with StreamConflictError(found version 42)
    When a command runs Then OrderConflictError reports 42 without asking the store again."""
    service = OrderService({**popo_env(), "ORDERS_MAX_ATTEMPTS": "2"})
    order_id = place(service)

    def reject(stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        raise StreamConflictError(order_id, 1, 42)

    monkeypatch.setattr(service.recorder, "insert_events", reject)

    with pytest.raises(OrderConflictError) as conflict:
        service.cancel(order_id, CANCEL_REASON)

    assert (conflict.value.expected_version, conflict.value.actual_version) == (1, 42)
    assert conflict.value.attempts == 2


def test_an_integrity_error_while_the_order_did_not_move_is_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given a store that rejects a save with a plain IntegrityError (a stray item, say)
    while the order stays at the version loaded When a command runs Then that error is raised
    after one try, not reported as concurrent saves, and nothing is recorded."""
    service = OrderService(popo_env())
    order_id = place(service)
    tries: list[int] = []

    def reject(stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        tries.append(1)
        raise IntegrityError("simulated stray item")

    monkeypatch.setattr(service.recorder, "insert_events", reject)

    with pytest.raises(IntegrityError, match="stray item"):
        service.cancel(order_id, CANCEL_REASON)

    assert tries == [1]
    assert service.get_order(order_id).version == 1


def test_pauses_between_tries_never_exceed_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a base pause of 10 s capped at 1 ms and a store that rejects every save
    When a command runs out of its 6 tries Then each of the 5 pauses was at most 1 ms."""
    service = OrderService(
        {
            **popo_env(),
            "ORDERS_MAX_ATTEMPTS": "6",
            "ORDERS_RETRY_BACKOFF_SECONDS": "10",
            "ORDERS_RETRY_BACKOFF_MAX_SECONDS": "0.001",
        }
    )
    order_id = place(service)
    pauses: list[float] = []
    monkeypatch.setattr("orders.service.time.sleep", pauses.append)

    def reject(stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        raise StreamConflictError(order_id, 1, 2)

    monkeypatch.setattr(service.recorder, "insert_events", reject)

    with pytest.raises(OrderConflictError):
        service.cancel(order_id, CANCEL_REASON)

    assert len(pauses) == 5
    assert all(0 <= pause <= 0.001 for pause in pauses)


def test_a_snapshot_that_cannot_be_stored_does_not_fail_the_saved_command(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Given a service snapshotting every 2 events whose snapshot store is failing
    When the second event is saved Then the command returns version 2, the event is stored,
    and the missing snapshot is logged."""
    service = OrderService({**popo_env(), "ORDERS_SNAPSHOT_INTERVAL": "2"})
    order_id = place(service)
    assert service.snapshots is not None

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("snapshot store unavailable")

    monkeypatch.setattr(service.snapshots, "put", fail)

    assert service.cancel(order_id, CANCEL_REASON) == 2
    assert service.get_order(order_id).state == "cancelled"
    assert f"snapshot of order {order_id} at version 2 not stored" in caplog.text


def test_a_save_that_passes_a_multiple_of_the_interval_snapshots_the_order_as_saved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given a service snapshotting every 2 events and an order changed twice in memory
    When the order (versions 1 to 3) is saved in one save, and then cancelled (version 4)
    Then the save snapshots version 3 without reading the order back, the cancellation
    snapshots version 4, and the order loads as cancelled."""
    service = OrderService({**popo_env(), "ORDERS_SNAPSHOT_INTERVAL": "2"})
    assert service.snapshots is not None
    order = Order.place("customer-1", TWO_LINES, "EUR")
    order.change_lines(OTHER_LINES)
    order.change_lines(TWO_LINES)
    with monkeypatch.context() as patched:
        patched.setattr(service.repository, "get", unexpected_read)
        service.save(order)

    assert [s.originator_version for s in service.snapshots.get(order.id)] == [3]
    service.cancel(order.id, CANCEL_REASON)
    assert [s.originator_version for s in service.snapshots.get(order.id)] == [3, 4]
    assert service.get_order(order.id).state == "cancelled"


def unexpected_read(*args: Any, **kwargs: Any) -> Order:
    raise AssertionError("the order was read back from the store")


@pytest.mark.parametrize("scenario", cached_decisions.SCENARIOS, ids=lambda s: s.__name__)
def test_two_services_with_their_own_caches_on_one_sqlite_file(
    tmp_path: Path, scenario: Callable[[OrderService, OrderService], None]
) -> None:
    """Given two services on one SQLite file, each caching the orders it touched
    When one moves an order the other holds in its cache
    Then the other never commits a decision over that event, and a refusal or a no-op it
    decided on cached state is confirmed against the store (see tests.support.cached_decisions)."""
    with (
        OrderService(sqlite_env(tmp_path)) as ours,
        OrderService(sqlite_env(tmp_path)) as theirs,
    ):
        scenario(ours, theirs)


def test_a_command_on_a_cached_order_reads_nothing_and_a_refusal_reads_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given an order this service placed (so cached)
    When it is changed, then refused a shipment Then the change read no event from the store
    and the refusal read once (the events after the cached version: none)."""
    with OrderService(sqlite_env(tmp_path)) as service:
        order_id = place(service)
        reads: list[int] = []
        select_events = service.recorder.select_events

        def counted(*args: Any, **kwargs: Any) -> Sequence[StoredEvent]:
            events = select_events(*args, **kwargs)
            reads.append(len(events))
            return events

        monkeypatch.setattr(service.recorder, "select_events", counted)

        assert service.change_lines(order_id, OTHER_LINES) == 2
        assert reads == []
        with pytest.raises(OrderRuleError, match="illegal-transition"):
            service.ship(order_id)
        assert reads == [0]
        assert service.get_order(order_id).lines.items == OTHER_LINES
