"""``OrderService`` on DynamoDB Local, selected by configuration alone."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from adapters.dynamodb import DynamoDBApplicationRecorder, DynamoDBFactory
from orders import OrderLine, OrderService
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb

LINES = (OrderLine("SKU-1", 2, Decimal("1.50")), OrderLine("SKU-2", 1, Decimal("7.00")))
NEW_LINES = (OrderLine("SKU-3", 4, Decimal("2.25")),)  # Total 9.00.


class TestOrderServiceOnDynamoDB(DynamoDBLocalTestCase):
    def service(self, **settings: str) -> OrderService:
        env = {**self.dynamodb_env(), "ORDERS_RETRY_BACKOFF_SECONDS": "0", **settings}
        service = OrderService(env)
        self.addCleanup(service.close)
        return service

    def run_life_cycle(self, service: OrderService) -> UUID:
        order_id = service.place_order("customer-1", LINES, "EUR").order_id
        self.assertEqual(service.change_lines(order_id, NEW_LINES), 2)
        self.assertEqual(service.confirm_payment(order_id, "pay-1", Decimal("9.00")), 3)
        self.assertEqual(service.ship(order_id), 4)
        self.assertEqual(service.complete(order_id), 5)
        return order_id

    def test_commands_state_history_and_versions_with_snapshots(self) -> None:
        snapshotting = self.service(ORDERS_SNAPSHOT_INTERVAL="2")
        order_id = self.run_life_cycle(snapshotting)

        order = snapshotting.get_order(order_id)
        self.assertEqual((order.version, order.status, order.total), (5, "completed", Decimal(9)))
        history = snapshotting.history(order_id)
        self.assertEqual([entry.version for entry in history], [1, 2, 3, 4, 5])
        self.assertEqual(len({entry.correlation_id for entry in history}), 5)

        assert snapshotting.snapshots is not None
        snapshots = list(snapshotting.snapshots.get(order_id))
        self.assertEqual([s.originator_version for s in snapshots], [2, 4])
        # Snapshots stay out of the notification log and the events' version heads.
        log = snapshotting.recorder.select_notifications(None, 100)
        self.assertEqual([(n.id, n.originator_version) for n in log], [(i, i) for i in range(1, 6)])

        replaying = self.service()  # Same table and application name, no snapshots.
        self.assertIsNone(replaying.snapshots)
        for version in (1, 2, 3, 4, 5):
            from_snapshot = snapshotting.get_order(order_id, version=version)
            from_events = replaying.get_order(order_id, version=version)
            self.assertEqual(from_snapshot, from_events)
            self.assertEqual(from_snapshot.version, version)
        self.assertEqual(snapshotting.get_order(order_id, version=3).status, "processing")

    def test_what_each_command_costs(self) -> None:
        service = self.service()
        assert isinstance(service.factory, DynamoDBFactory)
        metrics = service.factory.datastore.metrics
        recorder = service.recorder
        assert isinstance(recorder, DynamoDBApplicationRecorder)
        recorder.claim_write_mode()  # Once per process, before its first save.
        before = metrics.snapshot()
        order_id = service.place_order("customer-1", LINES, "EUR").order_id
        placed = metrics.snapshot() - before
        # A new order: no read, one transaction of four small items.
        self.assertEqual(dict(placed.by_operation).keys(), {"TransactWriteItems"})
        self.assertEqual((placed.round_trips, placed.estimated_units), (1, 8.0))

        before = metrics.snapshot()
        service.place_order("customer-1", LINES, "EUR", order_id=uuid4())
        placed_under_chosen_id = metrics.snapshot() - before
        # A client-chosen id is looked up first (one Query of at most one item), then saved.
        self.assertEqual(placed_under_chosen_id.by_operation["Query"].calls, 1)
        self.assertEqual(placed_under_chosen_id.by_operation["TransactWriteItems"].calls, 1)

        before = metrics.snapshot()
        service.change_lines(order_id, NEW_LINES)
        changed = metrics.snapshot() - before
        # The order is cached as saved: decide on it, send the conditional save alone.
        self.assertNotIn("Query", changed.by_operation)
        self.assertEqual(changed.by_operation["TransactWriteItems"].calls, 1)
        self.assertEqual((changed.round_trips, changed.estimated_units), (1, 8.0))

    def test_a_cached_order_reads_only_newer_events_and_never_acts_on_stale_state(self) -> None:
        cached, other_process = self.service(), self.service()
        order_id = cached.place_order("customer-1", LINES, "EUR").order_id
        for n in range(2, 6):  # Orders kept in memory by this process: versions 1..5.
            self.assertEqual(cached.change_lines(order_id, LINES if n % 2 else NEW_LINES), n)
        read: list[int] = []
        select_events = cached.recorder.select_events

        def counted(*args: Any, **kwargs: Any) -> Sequence[StoredEvent]:
            events = select_events(*args, **kwargs)
            read.append(len(events))
            return events

        cached.recorder.select_events = counted  # type: ignore[method-assign]
        cached.get_order(order_id)
        self.assertEqual(read, [0])  # Only the events saved since: none, the cache is current.
        self.assertEqual(other_process.confirm_payment(order_id, "pay-1", Decimal("10.00")), 6)
        self.assertEqual(cached.get_order(order_id).status, "processing")
        self.assertEqual(cached.ship(order_id), 7)  # Decided on the state another process made.

        uncached = self.service(AGGREGATE_CACHE_MAXSIZE="0")
        self.assertIsNone(uncached.repository.cache)
        self.assertEqual(uncached.get_order(order_id), cached.get_order(order_id))
