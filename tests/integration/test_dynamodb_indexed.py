"""The indexed write mode on DynamoDB Local: stream-only saves, the indexer, verify and rebuild.

The library's aggregate, tracking and process recorder cases run on the indexed recorders
as shipped. Its application recorder case is not run here: it asserts the ids
``insert_events`` returns, which the indexed mode assigns later (see the README).
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    IntegrityError,
    ProcessRecorder,
    StoredEvent,
    TrackingRecorder,
)
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from adapters.dynamodb import (
    DynamoDBFactory,
    DynamoDBIndexedApplicationRecorder,
    DynamoDBIndexedProcessRecorder,
    StreamConflictError,
)
from adapters.dynamodb.datastore import action_size
from adapters.dynamodb.indexer import Indexer, indexer_of
from adapters.dynamodb.items import indexed_pk, key, log_head_pk
from adapters.dynamodb.repair import rebuild, stream_items, verify
from adapters.lambdas import indexer as lambdas_indexer
from adapters.lambdas.indexer import handler as indexer_handler
from orders import OrderLine, OrderService
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb

NAMESPACE = "test_events"


def events(originator_id: UUID | str, versions: range, state: bytes = b"{}") -> list[StoredEvent]:
    return [StoredEvent(originator_id, v, f"topic-{v}", state) for v in versions]


class TestIndexedAggregateRecorder(DynamoDBLocalTestCase, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return DynamoDBIndexedApplicationRecorder(self.datastore, events_namespace=NAMESPACE)


class TestIndexedTrackingRecorder(DynamoDBLocalTestCase, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        env = Environment("TestCase", {**self.dynamodb_env(), "DYNAMODB_WRITE_MODE": "indexed"})
        return DynamoDBFactory(env, client=self.client).tracking_recorder()


class TestIndexedProcessRecorder(DynamoDBLocalTestCase, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return DynamoDBIndexedProcessRecorder(
            self.datastore, events_namespace=NAMESPACE, tracking_namespace="test_tracking"
        )


class IndexedTestCase(DynamoDBLocalTestCase):
    def recorder(self) -> DynamoDBIndexedProcessRecorder:
        return DynamoDBIndexedProcessRecorder(
            self.datastore, events_namespace=NAMESPACE, tracking_namespace="test_tracking"
        )

    def indexer(self, **options: Any) -> Indexer:
        return Indexer(self.datastore, self.server.streams_client(), NAMESPACE, **options)

    def log(self, recorder: DynamoDBIndexedApplicationRecorder) -> list[tuple[int, str, int]]:
        return [
            (n.id, str(n.originator_id), n.originator_version)
            for n in recorder.select_notifications(1, 10_000)
        ]


class TestIndexedSaves(IndexedTestCase):
    def test_a_one_event_save_is_one_put_of_one_kilobyte_and_writes_no_log(self) -> None:
        store = self.recorder()
        store.claim_write_mode()  # Once per recorder, before its first save.
        before = self.datastore.metrics.snapshot()
        self.assertIsNone(store.insert_events(events(uuid4(), range(1, 2))))
        cost = self.datastore.metrics.snapshot() - before
        self.assertEqual(list(cost.by_operation), ["PutItem"])
        self.assertEqual((cost.round_trips, cost.estimated_units), (1, 1))
        self.assertEqual(len(self.scan_table()), 2)  # The event and the write mode.
        self.assertIsNone(store.max_notification_id())

    def test_a_stale_save_collides_even_when_an_earlier_save_was_several_events(self) -> None:
        """[1], then [2, 3] in one save: a stale [2] (loaded at 1), a stale [3] (loaded at 2,
        inside that save) and a stale [1, 2] are refused; nothing is written by any."""
        store = self.recorder()
        order_id = uuid4()
        store.insert_events(events(order_id, range(1, 2)))
        store.insert_events(events(order_id, range(2, 4)))
        items = self.scan_table()
        with self.assertRaises(StreamConflictError) as caught:
            store.insert_events(events(order_id, range(2, 3)))
        conflict = caught.exception
        self.assertEqual((conflict.expected_version, conflict.actual_version), (1, 2))
        with self.assertRaises(StreamConflictError):
            store.insert_events(events(order_id, range(3, 4)))
        with self.assertRaises(StreamConflictError):
            store.insert_events(events(order_id, range(1, 3)))
        self.assertEqual(self.scan_table(), items)
        versions = [e.originator_version for e in store.select_events(order_id)]
        self.assertEqual(versions, [1, 2, 3])

    def test_select_events_over_event_items(self) -> None:
        store = self.recorder()
        order_id = uuid4()
        for chunk in (range(1, 4), range(4, 5), range(5, 9)):
            store.insert_events(events(order_id, chunk))

        def versions(**kwargs: Any) -> list[int]:
            return [e.originator_version for e in store.select_events(order_id, **kwargs)]

        self.assertEqual(versions(), list(range(1, 9)))
        self.assertEqual(versions(gt=2), list(range(3, 9)))
        self.assertEqual(versions(gt=2, lte=6), [3, 4, 5, 6])
        self.assertEqual(versions(lte=2), [1, 2])
        self.assertEqual(versions(desc=True, limit=3), [8, 7, 6])
        self.assertEqual(versions(gt=5, desc=True), [8, 7, 6])
        self.assertEqual(versions(gt=1, lte=7, desc=True, limit=2), [7, 6])
        self.assertEqual(versions(gt=8), [])

    def test_a_multi_stream_save_is_one_transaction_and_all_or_nothing(self) -> None:
        store = self.recorder()
        a, b = uuid4(), uuid4()
        store.insert_events(events(b, range(1, 2)))
        with self.assertRaises(StreamConflictError) as caught:
            store.insert_events(events(a, range(1, 3)) + events(b, range(1, 2)))
        self.assertEqual(caught.exception.originator_id, b)
        self.assertEqual(store.select_events(a), [])

    def test_the_factory_reads_the_write_mode_and_rejects_an_unknown_one(self) -> None:
        env = {**self.dynamodb_env(), "DYNAMODB_WRITE_MODE": "indexed"}
        factory = DynamoDBFactory(Environment("App", env), client=self.client)
        self.assertIsInstance(factory.application_recorder(), DynamoDBIndexedApplicationRecorder)
        self.assertIsInstance(factory.process_recorder(), DynamoDBIndexedProcessRecorder)
        with self.assertRaisesRegex(ValueError, "DYNAMODB_WRITE_MODE must be one of"):
            DynamoDBFactory(
                Environment("App", {**env, "DYNAMODB_WRITE_MODE": "fast"}), client=self.client
            )


class TestIndexer(IndexedTestCase):
    def test_the_log_gets_every_event_once_in_version_order_per_stream(self) -> None:
        store = self.recorder()
        orders = [uuid4() for _ in range(5)]
        for round_ in range(4):
            for n, order_id in enumerate(orders):
                size = 1 + (n + round_) % 3
                first = len(store.select_events(order_id)) + 1
                store.insert_events(events(order_id, range(first, first + size)))
        indexer = self.indexer()
        total = sum(len(store.select_events(o)) for o in orders)
        self.assertEqual(indexer.catch_up(), total)
        log = self.log(store)
        self.assertEqual([i for i, _, _ in log], list(range(1, total + 1)))
        self.assertEqual(len({(o, v) for _, o, v in log}), total)
        for order_id in orders:
            in_log = [v for _, o, v in log if o == str(order_id)]
            self.assertEqual(in_log, list(range(1, len(in_log) + 1)))
        self.assertEqual(store.max_notification_id(), total)
        self.assertEqual(indexer.catch_up(), 0, "nothing twice")
        self.assertTrue(verify(self.datastore, NAMESPACE).ok)

    def test_a_batch_seen_before_its_predecessor_waits_for_it_read_from_the_table(self) -> None:
        """Stream records are ordered per item only: given version 3's batch before 1 and 2's,
        the indexer reads 1 and 2 from the table and logs 1, 2, 3; the late records of 1
        and 2 are then dropped."""
        store = self.recorder()
        order_id = uuid4()
        for v in range(1, 4):
            store.insert_events(events(order_id, range(v, v + 1)))
        batches = stream_items(self.datastore, NAMESPACE)
        indexer = self.indexer()
        self.assertEqual(indexer.index([batches[2]]), 3)
        self.assertEqual(indexer.index(batches[:2]), 0)
        self.assertEqual([v for _, _, v in self.log(store)], [1, 2, 3])

    def test_a_restarted_indexer_drops_what_was_indexed_and_numbers_on(self) -> None:
        store = self.recorder()
        order_id = uuid4()
        store.insert_events(events(order_id, range(1, 3)))
        first = self.indexer()
        first.catch_up()
        batches = stream_items(self.datastore, NAMESPACE)
        second = self.indexer()  # Knows nothing of the streams: learns from the conditions.
        self.assertEqual(second.index(batches), 0)
        store.insert_events(events(order_id, range(3, 4)))
        self.assertEqual(second.catch_up(), 1)
        self.assertEqual([(i, v) for i, _, v in self.log(store)], [(1, 1), (2, 2), (3, 3)])

    def test_two_indexers_at_once_never_write_an_id_twice(self) -> None:
        store = self.recorder()
        orders = [uuid4() for _ in range(20)]
        indexers = [self.indexer(max_streams_per_write=3) for _ in range(2)]
        for indexer in indexers:
            indexer.load()
        for order_id in orders:
            store.insert_events(events(order_id, range(1, 3)))
        errors: list[BaseException] = []

        def run(indexer: Indexer) -> None:
            try:
                indexer.catch_up(timeout=60)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=run, args=(i,)) for i in indexers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        report = verify(self.datastore, NAMESPACE)
        self.assertTrue(report.ok, report)
        self.assertEqual(report.log_events, 40)

    def test_verify_reports_what_is_not_indexed_and_rebuild_indexes_it(self) -> None:
        store = self.recorder()
        a, b = uuid4(), uuid4()
        store.insert_events(events(a, range(1, 3)))
        self.indexer().catch_up()
        store.insert_events(events(a, range(3, 4)) + events(b, range(1, 3)))
        report = verify(self.datastore, NAMESPACE)
        self.assertFalse(report.ok)
        self.assertEqual(
            sorted(report.not_indexed), sorted([(str(a), 3), (str(b), 1), (str(b), 2)])
        )
        self.assertEqual(rebuild(self.indexer()), 3)
        self.assertTrue(verify(self.datastore, NAMESPACE).ok)
        self.assertEqual(rebuild(self.indexer()), 0)

    def test_verify_finds_a_duplicate_and_a_gap(self) -> None:
        store = self.recorder()
        order_id = uuid4()
        store.insert_events(events(order_id, range(1, 3)))
        self.indexer().catch_up()
        log_item = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{NAMESPACE}#log"}},
        )["Items"][0]
        copy = {**log_item, "sk": {"N": "4"}, "f": {"N": "4"}, "e": {"L": log_item["e"]["L"][:1]}}
        self.client.put_item(TableName=self.table_name, Item=copy)
        report = verify(self.datastore, NAMESPACE)
        self.assertEqual(report.duplicates, [(str(order_id), 1)])
        self.assertIn(3, report.gaps)

    def test_the_lambda_handler_indexes_the_records_of_its_event(self) -> None:
        store = self.recorder()
        order_id = uuid4()
        store.insert_events(events(order_id, range(1, 3)))
        records = self.stream_records()
        env = {**self.dynamodb_env(), "INDEXER_EVENTS_NAMESPACE": NAMESPACE}
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            lambdas_indexer._indexer.cache_clear()
            result = indexer_handler({"Records": records}, None)
            again = indexer_handler({"Records": records}, None)  # A retried batch.
        self.assertEqual(result, {"indexed": 2, "batchItemFailures": []})
        self.assertEqual(again["indexed"], 0)
        self.assertEqual([v for _, _, v in self.log(store)], [1, 2])

    def test_status_shows_the_lag_of_a_stopped_indexer(self) -> None:
        store = self.recorder()
        store.insert_events(events(uuid4(), range(1, 4)))
        status = self.indexer().status()
        self.assertEqual((status.last_id, status.pending_events), (0, 3))
        self.assertIsNotNone(status.oldest_pending_age)
        self.indexer().catch_up()
        status = self.indexer().status()
        self.assertEqual((status.last_id, status.pending_events), (3, 0))
        self.assertIsNotNone(status.written_at)

    def test_the_checkpoint_is_written_with_the_ids(self) -> None:
        store = self.recorder()
        store.insert_events(events(uuid4(), range(1, 2)))
        indexer = self.indexer()
        indexer.catch_up()
        head = self.client.get_item(
            TableName=self.table_name, Key=key(log_head_pk(NAMESPACE)), ConsistentRead=True
        )["Item"]
        self.assertEqual(head["n"], {"N": "1"})
        self.assertTrue(head["cp"]["M"])
        marker_items = [
            i for i in self.scan_table() if i["pk"]["S"].startswith(indexed_pk(NAMESPACE, ""))
        ]
        self.assertEqual(len(marker_items), 1)


class TestOrderServiceIndexed(IndexedTestCase):
    def test_commands_conflicts_and_the_log_on_the_indexed_mode(self) -> None:
        env = {**self.dynamodb_env(), "DYNAMODB_WRITE_MODE": "indexed"}
        first, second = OrderService(env=env), OrderService(env=env)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        line = OrderLine("SKU-1", 1, Decimal("2.50"))
        placed = first.place_order("customer-1", [line], "EUR")
        stale = first.get_order(placed.order_id)
        second.change_lines(placed.order_id, [OrderLine("SKU-2", 2, line.unit_price)])
        stale.change_lines([OrderLine("SKU-3", 3, line.unit_price)])
        with self.assertRaises(IntegrityError):
            first.save(stale)
        version = first.change_lines(placed.order_id, [OrderLine("SKU-3", 3, line.unit_price)])
        self.assertEqual(version, 3)
        indexer = indexer_of(first.factory)  # type: ignore[arg-type]
        self.assertEqual(indexer.catch_up(), 3)
        self.assertEqual(first.recorder.max_notification_id(), 3)

    def test_stream_batches_are_not_logged_for_another_namespace(self) -> None:
        other = DynamoDBIndexedApplicationRecorder(self.datastore, events_namespace="other_events")
        other.insert_events(events(uuid4(), range(1, 3)))
        self.assertEqual(self.indexer().catch_up(), 0)
        self.assertEqual(self.log(other), [])


class TestIndexerSizes(IndexedTestCase):
    def test_the_sizes_an_indexer_write_declares_are_the_items_sizes(self) -> None:
        """The indexer sizes its log batches from the events' sizes (not item by item); those
        sizes, which limits and capacity estimates use, must be exact."""
        store = self.recorder()
        streams: list[UUID | str] = [uuid4(), "a-string-id"]
        for n, originator_id in enumerate(streams * 20):
            store.insert_events([StoredEvent(originator_id, n // 2 + 1, "topic", b"x" * 37 * n)])
        declared: list[tuple[list[int], list[int]]] = []
        transact_write = self.datastore.transact_write

        def recording(actions: Any, what: str, sizes: Any = None) -> None:
            declared.append((list(sizes), [action_size(action) for action in actions]))
            transact_write(actions, what, sizes)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(self.datastore, "transact_write", recording)
            self.assertEqual(self.indexer().catch_up(), 40)
        self.assertTrue(declared)
        for given, actual in declared:
            self.assertEqual(given, actual)
