"""A runner parks an order it cannot project, in memory: the others flow on, and a retry after
the fix applies the parked events once, in order (the counters equal a replay's)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal
from uuid import UUID

from orders import OrderEvent, OrderLine, OrderService
from projections.memory import InMemoryViewStore
from projections.parking import Request
from projections.ports import Advance, Change, Expect, Put, ViewLimitError
from projections.rows import Rows
from projections.runtime import Runner
from projections.views import PROJECTIONS, OrdersByStatusProjection, order_partition
from tests.projections.support import contents, replayed

NAME = "orders_by_status"


class BuggyStatus(OrdersByStatusProjection):
    """``orders_by_status`` failing (after counting) on the events of the orders in ``buggy``
    from version ``from_version`` on."""

    def __init__(self, buggy: Collection[UUID], from_version: int = 1) -> None:
        self.buggy = buggy
        self.from_version = from_version

    def apply(self, event: OrderEvent, rows: Rows) -> None:
        super().apply(event, rows)
        if event.originator_id in self.buggy and event.originator_version >= self.from_version:
            msg = f"bug on version {event.originator_version}"
            raise RuntimeError(msg)


class PickyStore(InMemoryViewStore):
    """An in-memory store refusing, as a data error, every commit writing a row of one of
    the ``refused`` partitions (as DynamoDB refuses an item over 400 KB)."""

    def __init__(self, refused: Collection[str]) -> None:
        super().__init__()
        self.refused = refused

    def commit(
        self,
        changes: Sequence[Change],
        advance: Advance | None = None,
        expect: Sequence[Expect] = (),
    ) -> None:
        for change in changes:
            partition = change.row.partition if isinstance(change, Put) else change.partition
            if partition in self.refused:
                msg = f"row of {partition} over the item size limit"
                raise ViewLimitError(msg)
        super().commit(changes, advance, expect)


def orders(service: OrderService, count: int) -> list[UUID]:
    """``count`` orders, placed, paid and shipped, their events interleaved in the log."""
    line = [OrderLine("MUG-002", 2, Decimal("8.99"))]
    placed = [service.place_order(f"c-{n}", line, "EUR").order_id for n in range(count)]
    for number, order_id in enumerate(placed):
        service.confirm_payment(order_id, f"pay-{number}", Decimal("17.98"))
    for order_id in placed:
        service.ship(order_id)
    return placed


def ids_of(service: OrderService, order_id: UUID) -> tuple[int, ...]:
    notifications = service.recorder.select_notifications(1, 10_000)
    return tuple(n.id for n in notifications if n.originator_id == order_id)


def runner(service: OrderService, store: InMemoryViewStore, projection: object) -> Runner:
    assert isinstance(projection, OrdersByStatusProjection)
    return Runner(projection, store, service.recorder, service.mapper.to_domain_event, batch_size=7)


def test_a_failing_order_is_parked_and_a_retry_after_the_fix_applies_it_once() -> None:
    """Given 6 orders of 3 events, read 7 at a time, and a projection failing on order 2
    Then its 3 events are parked in order, the others counted, the position at the head;
    a retry with the fixed projection makes the view equal a replay (nothing counted twice)
    and releases the order; a later event of it is projected as usual."""
    service = OrderService()
    placed = orders(service, 6)
    store = InMemoryViewStore()
    buggy = runner(service, store, BuggyStatus({placed[2]}))

    assert buggy.catch_up() == 18

    (parked,) = buggy.parking().parked()
    assert (parked.order_id, parked.notification_ids) == (
        str(placed[2]),
        ids_of(service, placed[2]),
    )
    assert "RuntimeError: bug on version 1" in parked.reason
    assert buggy.progress().position == 18
    assert store.get(buggy.view, order_partition(placed[2]), "counted") is None
    shipped = store.get(buggy.view, "totals", "processing#EUR")
    assert shipped is not None and shipped.data["orders"] == 5

    fixed = runner(service, store, PROJECTIONS[NAME])
    fixed.parking().ask(str(placed[2]), Request.RETRY)
    assert fixed.settle() == 1

    decode = service.mapper.to_domain_event
    assert (
        contents(store, service.recorder, decode, NAME) == replayed(service.recorder, decode)[NAME]
    )
    assert fixed.parking().parked() == []
    service.complete(placed[2])
    fixed.catch_up()
    assert (
        contents(store, service.recorder, decode, NAME) == replayed(service.recorder, decode)[NAME]
    )


def test_a_retry_that_fails_again_applies_what_it_can_and_keeps_the_rest_parked() -> None:
    """Given an order parked on its first event When a retry runs with a projection still
    failing from version 2 on Then version 1 is applied, versions 2 and 3 stay parked with
    the new reason, and the request is cleared."""
    service = OrderService()
    placed = orders(service, 2)
    store = InMemoryViewStore()
    runner(service, store, BuggyStatus({placed[0]})).catch_up()

    half_fixed = runner(service, store, BuggyStatus({placed[0]}, from_version=2))
    half_fixed.parking().ask(str(placed[0]), Request.RETRY)
    half_fixed.settle()

    (left,) = half_fixed.parking().parked()
    assert left.notification_ids == ids_of(service, placed[0])[1:]
    assert (left.request, "bug on version 2" in left.reason) == (None, True)
    counted = store.get(half_fixed.view, order_partition(placed[0]), "counted")
    assert counted is not None and counted.version == 1


def test_rows_the_store_refuses_park_their_order_and_a_skip_records_why() -> None:
    """Given a store refusing the rows of one order (a data error) When the runner runs
    Then that order is parked (the reason naming the store's refusal) and every other order
    counted; a skip drops its events with the reason recorded."""
    service = OrderService()
    placed = orders(service, 4)
    store = PickyStore({order_partition(placed[1])})
    picky = runner(service, store, PROJECTIONS[NAME])

    picky.catch_up()

    (parked,) = picky.parking().parked()
    assert parked.order_id == str(placed[1]) and "ViewLimitError" in parked.reason
    assert parked.notification_ids == ids_of(service, placed[1])
    shipped = store.get(picky.view, "totals", "processing#EUR")
    assert shipped is not None and shipped.data["orders"] == 3
    picky.parking().ask(str(placed[1]), Request.SKIP, "row too large; rebuilt by hand")
    picky.settle()
    assert picky.parking().parked() == []
    assert [s.note for s in picky.parking().skipped()] == ["row too large; rebuilt by hand"]
