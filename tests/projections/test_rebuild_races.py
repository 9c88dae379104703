"""A rebuild's switch and a repair racing a live runner's batch: nothing lands beside them.

The interleavings are forced (on the in-memory store and on DynamoDB Local): a store that, just
before the live runner's chosen commit, lets a rebuild switch (and drop the old generation) or a
repair run, then hands the commit on. The threaded test then runs all three at once, on SQLite
files, bounded in count.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from adapters.cli.demo import run_demo
from adapters.dynamodb import DynamoDBDatastore
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.local.backend import local_env
from adapters.local.views import SQLiteViewStore
from orders import OrderEvent, OrderLine, OrderService
from projections.generations import DROPPED, live_generation, view_name
from projections.memory import InMemoryViewStore
from projections.ports import Add, Advance, Change, Expect, Page, Put, Row, ViewStore
from projections.rebuild import Rebuild, reproject_order
from projections.runtime import Runner
from projections.views import PROJECTIONS
from tests.projections.support import contents, replayed
from tests.support.dynamodb_local import dynamodb_local

TOTALS = PROJECTIONS["orders_by_status"]


class InterleavingStore(ViewStore):
    """``store``, running ``before`` once, just before the first commit advancing ``view`` after
    arming (the commit then goes to ``store`` as it came)."""

    def __init__(self, store: ViewStore) -> None:
        self.store = store
        self.max_changes_per_commit = store.max_changes_per_commit
        self.view: str | None = None
        self.before: Callable[[], None] = lambda: None

    def arm(self, view: str, before: Callable[[], None]) -> None:
        self.view, self.before = view, before

    def commit(
        self,
        changes: Sequence[Change],
        advance: Advance | None = None,
        expect: Sequence[Expect] = (),
    ) -> None:
        if advance is not None and advance.name == self.view:
            self.view = None
            self.before()
        self.store.commit(changes, advance, expect)

    def get(self, view: str, partition: str, key: str) -> Row | None:
        return self.store.get(view, partition, key)

    def query(
        self,
        view: str,
        partition: str,
        *,
        descending: bool = False,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        return self.store.query(view, partition, descending=descending, limit=limit, after=after)

    def position(self, name: str) -> int | None:
        return self.store.position(name)

    def drop(self, view: str) -> int:
        return self.store.drop(view)


@pytest.fixture(params=["memory", pytest.param("dynamodb", marks=pytest.mark.dynamodb)])
def store(request: pytest.FixtureRequest) -> Iterator[InterleavingStore]:
    """An interleaving store over the in-memory store, or over a fresh DynamoDB Local table."""
    if request.param == "memory":
        yield InterleavingStore(InMemoryViewStore())
        return
    server = dynamodb_local()
    table_name = f"views-{uuid.uuid4().hex}"
    views = DynamoDBViewStore(DynamoDBDatastore(server.client(), table_name))
    views.create_table_if_missing()
    yield InterleavingStore(views)
    server.delete_table(table_name)


def order_events(service: OrderService, order_id: UUID) -> list[OrderEvent]:
    return [e for e in service.events.get(order_id) if isinstance(e, OrderEvent)]


def test_a_runner_batch_spanning_a_switch_leaves_no_row_in_the_dropped_generation(
    store: InterleavingStore,
) -> None:
    service = OrderService()
    run_demo(service, 30, seed=4)
    decode = service.mapper.to_domain_event
    live = Runner(TOTALS, store, service.recorder, decode, generation_check=3600)
    live.catch_up()
    placed = service.place_order("c-9", [OrderLine("MUG-002", 3, Decimal("8.99"))], "EUR")
    service.confirm_payment(placed.order_id, "pay-9", Decimal("26.97"))

    def switch() -> None:
        Rebuild(TOTALS, store, service.recorder, decode, grace_seconds=0).run()

    store.arm(view_name(TOTALS.name, 1), switch)  # the runner's batch was read in generation 1
    live.catch_up()

    assert live_generation(store, TOTALS.name) == 2
    assert store.position(view_name(TOTALS.name, 1)) == DROPPED
    assert store.query(view_name(TOTALS.name, 1), "totals").rows == []
    assert (
        contents(store, service.recorder, decode, TOTALS.name)
        == (replayed(service.recorder, decode)[TOTALS.name])
    )


def test_a_repair_between_a_runner_read_and_its_commit_keeps_the_totals_exact(
    store: InterleavingStore,
) -> None:
    service = OrderService()
    run_demo(service, 30, seed=5)
    decode = service.mapper.to_domain_event
    live = Runner(TOTALS, store, service.recorder, decode)
    lines = [OrderLine("MUG-002", 2, Decimal("8.99"))]
    order_id = service.place_order("c-8", lines, "EUR").order_id
    live.catch_up()
    view = view_name(TOTALS.name, 1)
    partition, key = TOTALS.order_row(order_id)
    counted = store.get(view, partition, key)
    assert counted is not None and counted.data["status"] == "pending"
    # A damaged view, consistent with itself: the order counted as processing, at 999.00.
    status, currency, total = (counted.data[f] for f in ("status", "currency", "total"))
    wrong = {"status": "processing", "currency": currency, "total": Decimal("999.00")}
    store.commit(
        [
            Put(Row(view, partition, key, wrong, counted.version), counted.version),
            Add(view, "totals", f"{status}#{currency}", {"orders": -1, "total": -total}),
            Add(view, "totals", f"processing#{currency}", {"orders": 1, "total": wrong["total"]}),
        ]
    )
    repair_from = order_events(service, order_id)  # the stream as the repair reads it
    service.cancel(order_id, "changed my mind")  # the runner's next batch: uncount, count

    def repair() -> None:
        reproject_order(TOTALS, store, repair_from, order_id)

    store.arm(view, repair)  # the runner read the damaged row; the repair fixes it first
    live.catch_up()

    assert (
        contents(store, service.recorder, decode, TOTALS.name)
        == (replayed(service.recorder, decode)[TOTALS.name])
    )


def write_orders(data_dir: Path, stop: threading.Event, count: int = 60) -> None:
    """Place ``count`` orders, cancelling every other one (until ``stop``)."""
    writer = OrderService(env=local_env(data_dir))
    for number in range(count):
        line = [OrderLine("PEN-005", 1 + number % 3, Decimal("1.75"))]
        placed = writer.place_order(f"w-{number}", line, "EUR")
        if number % 2:
            writer.cancel(placed.order_id, "test")
        if stop.is_set():
            return


def repair_orders(
    data_dir: Path, views: Path, orders: list[UUID], stop: threading.Event, count: int = 40
) -> None:
    """Re-project ``count`` orders chosen at random from their streams (until ``stop``)."""
    store = SQLiteViewStore(views)
    reader = OrderService(env=local_env(data_dir))
    chosen = random.Random(7)
    for _ in range(count):
        order_id = chosen.choice(orders)
        reproject_order(TOTALS, store, order_events(reader, order_id), order_id)
        if stop.is_set():
            return


def test_rebuilds_switching_while_a_live_runner_and_repairs_run(tmp_path: Path) -> None:
    service = OrderService(env=local_env(tmp_path))
    run_demo(service, 40, seed=6)
    decode = service.mapper.to_domain_event
    views = tmp_path / "views.sqlite3"
    orders = [UUID(str(n.originator_id)) for n in service.recorder.select_notifications(1, 1000)]
    stop = threading.Event()
    failures: list[BaseException] = []

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as error:  # reported by the test, not lost in a thread
                failures.append(error)
                stop.set()

        return run

    def follow() -> None:
        runner = Runner(TOTALS, SQLiteViewStore(views), service.recorder, decode, batch_size=7)
        runner.run_forever(stop, poll_interval=0.005)

    def write() -> None:
        write_orders(tmp_path, stop)

    def repair() -> None:
        repair_orders(tmp_path, views, orders, stop)

    threads = [threading.Thread(target=guarded(w)) for w in (follow, write, repair)]
    for thread in threads:
        thread.start()
    rebuilds = SQLiteViewStore(views)
    try:
        for _ in range(3):
            Rebuild(
                TOTALS, rebuilds, service.recorder, decode, batch_size=50, grace_seconds=0
            ).run()
    finally:
        threads[1].join(timeout=120)
        threads[2].join(timeout=120)
        head = service.recorder.max_notification_id() or 0
        generation = live_generation(rebuilds, TOTALS.name)
        for _ in range(2000):  # until the runner has the head, bounded
            if stop.is_set() or rebuilds.position(view_name(TOTALS.name, generation)) == head:
                break
            stop.wait(0.01)
        stop.set()
        threads[0].join(timeout=60)
    assert not failures, failures
    assert live_generation(rebuilds, TOTALS.name) == 4
    with sqlite3.connect(views) as db:
        orphans = db.execute(
            "SELECT view, COUNT(*) FROM view_rows WHERE view LIKE 'orders_by_status@%' "
            "AND view != 'orders_by_status@4' GROUP BY view"
        ).fetchall()
    assert orphans == []
    for generation in (1, 2, 3):
        assert rebuilds.position(view_name(TOTALS.name, generation)) == DROPPED
    assert rebuilds.position(view_name(TOTALS.name, 4)) == head
    assert (
        contents(rebuilds, service.recorder, decode, TOTALS.name)
        == (replayed(service.recorder, decode)[TOTALS.name])
    )
