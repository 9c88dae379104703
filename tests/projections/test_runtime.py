"""The runner, the three views, read-your-writes, re-projection and rebuild, in memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import cast
from uuid import UUID

import pytest
from eventsourcing.persistence import ApplicationRecorder, Notification

from adapters.cli.demo import run_demo
from orders import OrderLine, OrderService
from projections.generations import DROPPED, NotCaughtUpError, live_generation, view_name
from projections.memory import InMemoryViewStore
from projections.ports import Add, Advance, Change, Expect, Put, Row
from projections.rebuild import Rebuild, reproject_order
from projections.rows import RowCache, Rows
from projections.runtime import Runner
from projections.views import PROJECTIONS, OrderViews
from tests.projections.support import all_contents, contents, replayed


class RecordingStore(InMemoryViewStore):
    """An in-memory store that remembers the size of every commit."""

    def __init__(self, max_changes_per_commit: int = 99) -> None:
        super().__init__(max_changes_per_commit)
        self.commits: list[tuple[int, Advance | None]] = []

    def commit(
        self,
        changes: Sequence[Change],
        advance: Advance | None = None,
        expect: Sequence[Expect] = (),
    ) -> None:
        super().commit(changes, advance, expect)
        self.commits.append((len(changes), advance))


@pytest.fixture(scope="module")
def demo_service() -> OrderService:
    service = OrderService()
    run_demo(service, 80, seed=11)
    return service


def run_all(service: OrderService, store: InMemoryViewStore, batch_size: int = 500) -> None:
    for projection in PROJECTIONS.values():
        Runner(
            projection,
            store,
            service.recorder,
            service.mapper.to_domain_event,
            batch_size=batch_size,
        ).catch_up()


def test_views_show_what_the_aggregates_say(demo_service: OrderService) -> None:
    store = InMemoryViewStore()
    run_all(demo_service, store)
    views = OrderViews(store)
    notifications = demo_service.recorder.select_notifications(1, 10_000)
    order_ids = {UUID(str(n.originator_id)) for n in notifications}
    by_customer: dict[str, list[UUID]] = {}
    for order_id in order_ids:
        order = demo_service.get_order(order_id)
        summary = views.order(order_id)
        assert summary is not None
        assert (summary["status"], summary["total"], summary["version"]) == (
            order.status,
            order.total,
            order.version,
        )
        assert summary["customer_id"] == order.customer_id
        assert [(x["sku"], x["quantity"], x["unit_price"]) for x in summary["lines"]] == [
            (line.sku, line.quantity, line.unit_price) for line in order.lines
        ]
        by_customer.setdefault(order.customer_id, []).append(order_id)

    _, totals = views.totals()
    for row in totals:
        orders = [demo_service.get_order(i) for i in order_ids]
        matching = [o for o in orders if o.status == row.status and o.currency == row.currency]
        assert row.orders == len(matching)
        assert row.total == sum((o.total for o in matching), Decimal(0))
    assert sum(row.orders for row in totals) == len(order_ids)

    customer, expected = max(by_customer.items(), key=lambda item: len(item[1]))
    assert len(expected) >= 3
    seen: list[UUID] = []
    after = None
    while True:
        page = views.customer_orders(customer, limit=2, after=after)
        seen.extend(entry.order_id for entry in page.orders)
        placed = [entry.placed_at for entry in page.orders]
        assert placed == sorted(placed, reverse=True)
        if page.next is None:
            break
        after = page.next
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))


def test_batches_fit_the_store_limit_and_coalesce_the_events_of_an_order() -> None:
    service = OrderService()
    lines = [OrderLine("BOOK-001", 1, Decimal("12.50"))]
    order_id = service.place_order("c-1", lines, "EUR").order_id
    for quantity in range(2, 7):
        service.change_lines(order_id, [OrderLine("BOOK-001", quantity, Decimal("12.50"))])
    store = RecordingStore()
    projection = PROJECTIONS["order_summary"]
    Runner(projection, store, service.recorder, service.mapper.to_domain_event).catch_up()
    assert store.commits == [(1, Advance("order_summary@1", None, 6))]  # 6 events, 1 write
    summary = OrderViews(store).order(order_id)
    assert summary is not None and summary["total"] == Decimal("75.00")

    small = RecordingStore(max_changes_per_commit=7)
    demo = OrderService()
    run_demo(demo, 40, seed=3)
    run_all(demo, small, batch_size=100)
    assert max(size for size, _ in small.commits) <= 7
    assert all_contents(small, demo.recorder, demo.mapper.to_domain_event) == replayed(
        demo.recorder, demo.mapper.to_domain_event
    )


def test_after_a_full_read_the_next_is_read_ahead_and_continues_the_uncommitted_tail(
    demo_service: OrderService,
) -> None:
    reads: list[tuple[int, int]] = []

    class CountingRecorder:
        """The demo's recorder, noting the ids each ``select_notifications`` returned."""

        def __getattr__(self, name: str) -> object:
            return getattr(demo_service.recorder, name)

        def select_notifications(
            self, start: int, limit: int, stop: int | None = None
        ) -> list[Notification]:
            page = list(demo_service.recorder.select_notifications(start, limit, stop=stop))
            if page:
                reads.append((page[0].id, page[-1].id))
            return page

    head = demo_service.recorder.max_notification_id() or 0
    store = RecordingStore(max_changes_per_commit=7)  # Commits of a few events: tails left.
    decode = demo_service.mapper.to_domain_event
    recorder = cast("ApplicationRecorder", CountingRecorder())
    Runner(PROJECTIONS["orders_by_status"], store, recorder, decode, batch_size=25).catch_up()

    # Each notification was read once: every read starts after the one before it ended,
    # though most batches committed less than they read (the tail waits for the next read).
    assert [first for first, _ in reads] == [1] + [last + 1 for _, last in reads[:-1]]
    assert reads[-1][1] == head
    ends = [advance.to for _, advance in store.commits if advance is not None]
    assert ends == sorted(ends) and ends[-1] == head
    assert not {end for _, end in reads[:-1]} <= set(ends)  # Some reads left a tail.
    assert (
        contents(store, recorder, decode, "orders_by_status")
        == replayed(demo_service.recorder, decode)["orders_by_status"]
    )


def test_a_restarted_runner_resumes_where_the_last_commit_left_it(
    demo_service: OrderService,
) -> None:
    store = InMemoryViewStore()
    decode = demo_service.mapper.to_domain_event
    head = demo_service.recorder.max_notification_id() or 0
    for projection in PROJECTIONS.values():
        stop = head // 3
        Runner(projection, store, demo_service.recorder, decode, batch_size=7).catch_up(stop)
        assert store.position(view_name(projection.name, 1)) == stop
        resumed = Runner(projection, store, demo_service.recorder, decode, batch_size=50)
        assert resumed.catch_up() == head - stop
    assert all_contents(store, demo_service.recorder, decode) == replayed(
        demo_service.recorder, decode
    )


def test_two_runners_of_one_projection_keep_the_view_exact() -> None:
    service = OrderService()
    store = InMemoryViewStore()
    decode = service.mapper.to_domain_event
    stop = threading.Event()
    runners = [
        Runner(p, store, service.recorder, decode, batch_size=5, conflict_pause=0.001)
        for p in PROJECTIONS.values()
        for _ in range(2)
    ]
    threads = [threading.Thread(target=r.run_forever, args=(stop, 0.001)) for r in runners]
    for thread in threads:
        thread.start()
    run_demo(service, 40, seed=5)
    deadline = time.monotonic() + 10
    head = service.recorder.max_notification_id()
    while any(r.progress().position != head for r in runners) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for thread in threads:
        thread.join()
    assert all(r.progress().position == head for r in runners)
    assert all_contents(store, service.recorder, decode) == replayed(service.recorder, decode)


def test_read_your_writes_waits_for_the_view_or_fails_clearly() -> None:
    service = OrderService()
    store = InMemoryViewStore()
    views = OrderViews(store)
    placed = service.place_order("c-9", [OrderLine("MUG-002", 1, Decimal("8.99"))], "EUR")
    with pytest.raises(NotCaughtUpError) as caught:
        views.wait_for_order(placed.order_id, placed.version, timeout=0.05)
    assert "order_summary@1" in str(caught.value)
    assert "orders projections run" in str(caught.value)

    runners = [
        Runner(p, store, service.recorder, service.mapper.to_domain_event)
        for p in PROJECTIONS.values()
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=r.run_forever, args=(stop, 0.005)) for r in runners]
    for thread in threads:
        thread.start()
    try:
        version = service.cancel(placed.order_id, "no")
        views.wait_for_order(placed.order_id, version, timeout=5)
        summary = views.order(placed.order_id)
        assert summary is not None and summary["status"] == "cancelled"
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_reprojecting_an_order_repairs_its_rows_and_runners_do_not_apply_twice() -> None:
    service = OrderService()
    store = InMemoryViewStore()
    decode = service.mapper.to_domain_event
    lines = [OrderLine("TEE-003", 2, Decimal("19.00"))]
    order_id = service.place_order("c-2", lines, "EUR").order_id
    run_all(service, store)
    for name in ("order_summary", "customer_orders"):  # by_status counts are repaired by rebuild
        partition, key = PROJECTIONS[name].order_row(order_id)
        store.commit(
            [
                Put(
                    Row(
                        f"{name}@1",
                        partition,
                        key,
                        {
                            "status": "x",
                            "total": Decimal(0),
                            "currency": "EUR",
                            "customer_id": "c-2",
                            "key": "nowhere",
                        },
                        1,
                    )
                )
            ]
        )
    service.confirm_payment(order_id, "pay-1", Decimal("38.00"))
    events = list(service.events.get(order_id))
    for projection in PROJECTIONS.values():
        reproject_order(projection, store, events, order_id)  # type: ignore[arg-type]
    run_all(service, store)
    assert all_contents(store, service.recorder, decode) == replayed(service.recorder, decode)


def test_rebuild_switches_generations_resumes_and_verifies(demo_service: OrderService) -> None:
    store = InMemoryViewStore()
    decode = demo_service.mapper.to_domain_event
    run_all(demo_service, store)
    projection = PROJECTIONS["customer_orders"]
    before = all_contents(store, demo_service.recorder, decode)

    stop = threading.Event()
    interrupted = Rebuild(
        projection,
        store,
        demo_service.recorder,
        decode,
        batch_size=20,
        on_progress=lambda count: stop.set(),
    ).run(stop=stop)
    assert interrupted.notes and interrupted.replayed == 20
    assert live_generation(store, projection.name) == 1
    assert store.position(view_name(projection.name, 2)) == 20

    head = demo_service.recorder.max_notification_id() or 0
    result = Rebuild(
        projection, store, demo_service.recorder, decode, batch_size=20, grace_seconds=0
    ).run(verify=True)
    assert (result.resumed_from, result.replayed) == (20, head - 20)
    assert result.differences == []
    assert (result.old_generation, result.new_generation) == (1, 2)
    assert live_generation(store, projection.name) == 2
    assert result.dropped_rows > 0
    assert store.query(view_name(projection.name, 1), "totals").rows == []
    assert all_contents(store, demo_service.recorder, decode) == before


def test_verify_prints_the_rows_that_differ(demo_service: OrderService) -> None:
    store = InMemoryViewStore()
    decode = demo_service.mapper.to_domain_event
    run_all(demo_service, store)
    store.commit([Add("orders_by_status@1", "totals", "completed#EUR", {"orders": 5})])
    projection = PROJECTIONS["orders_by_status"]
    result = Rebuild(projection, store, demo_service.recorder, decode, grace_seconds=0).run(
        verify=True
    )
    assert result.differences is not None
    assert [(d.partition, d.key) for d in result.differences] == [("totals", "completed#EUR")]
    difference = result.differences[0]
    assert difference.live is not None and difference.rebuilt is not None
    assert difference.live.data["orders"] == difference.rebuilt.data["orders"] + 5


def test_max_rate_bounds_the_pace(demo_service: OrderService) -> None:
    store = InMemoryViewStore()
    projection = PROJECTIONS["orders_by_status"]
    runner = Runner(
        projection,
        store,
        demo_service.recorder,
        demo_service.mapper.to_domain_event,
        batch_size=20,
        max_rate=1000,
    )
    started = time.monotonic()
    processed = runner.catch_up(until=200)
    assert processed == 200
    assert time.monotonic() - started >= 0.18


def test_a_row_is_written_whole_or_counted_not_both() -> None:
    rows = Rows(InMemoryViewStore(), "v@1", RowCache())
    rows.add("p", "k", {"n": 1})
    with pytest.raises(ValueError, match="counted"):
        rows.put("p", "k", {})
    with pytest.raises(ValueError, match="counted"):
        rows.get("p", "k")
    rows.put("p", "j", {})
    with pytest.raises(ValueError, match="whole"):
        rows.add("p", "j", {"n": 1})


def test_waiting_by_notification_id_and_a_live_runner_follows_a_rebuild() -> None:
    service = OrderService()
    store = InMemoryViewStore()
    decode = service.mapper.to_domain_event
    views = OrderViews(store)
    projection = PROJECTIONS["order_summary"]
    live = Runner(projection, store, service.recorder, decode, generation_check=0)
    placed = service.place_order("c-5", [OrderLine("PEN-005", 1, Decimal("1.75"))], "EUR")
    head = service.recorder.max_notification_id() or 0
    with pytest.raises(NotCaughtUpError, match="notification 1"):
        views.wait_for_notification(head, timeout=0.05, projections=[projection.name])
    live.catch_up()
    views.wait_for_notification(head, timeout=0.05, projections=[projection.name])

    Rebuild(projection, store, service.recorder, decode, grace_seconds=0).run()
    version = service.cancel(placed.order_id, "changed my mind")
    assert live.catch_up() == 1  # into generation 2, the live one now
    assert store.position(view_name(projection.name, 2)) == head + 1
    assert store.position(view_name(projection.name, 1)) == DROPPED  # its tombstone
    views.wait_for_order(placed.order_id, version, timeout=0.05, projections=[projection.name])
    summary = views.order(placed.order_id)
    assert summary is not None and summary["status"] == "cancelled"
