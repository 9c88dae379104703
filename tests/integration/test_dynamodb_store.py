"""The DynamoDB event store's own guarantees, beyond the library's cases, on DynamoDB Local.

Bad input is rejected with an error naming what was wrong, before anything is sent, and
the table is left exactly as it was (read back with a raw ``Scan``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from threading import Thread
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    ProgrammingError,
    StoredEvent,
    Tracking,
)

from adapters.dynamodb import (
    DynamoDBAggregateRecorder,
    DynamoDBApplicationRecorder,
    DynamoDBDatastore,
    DynamoDBFactory,
    DynamoDBLimitError,
    DynamoDBProcessRecorder,
    StreamConflictError,
)
from adapters.dynamodb.items import batch_item, encode_log_event, log_pk
from adapters.dynamodb.table import MAX_ITEM_BYTES
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb

KB = 1024


def events(originator_id: UUID, versions: range, state: bytes = b"{}") -> list[StoredEvent]:
    return [StoredEvent(originator_id, v, "topic", state) for v in versions]


class StoreTestCase(DynamoDBLocalTestCase):
    def recorder(self) -> DynamoDBApplicationRecorder:
        return DynamoDBApplicationRecorder(self.datastore, events_namespace="app_events")

    @contextmanager
    def table_unchanged(self) -> Iterator[None]:
        """Asserts the block leaves every item of the table as it was."""
        before = self.scan_table()
        yield
        self.assertEqual(self.scan_table(), before)

    @contextmanager
    def nothing_sent(self) -> Iterator[None]:
        """Asserts the block sends no write to DynamoDB (and so leaves the table as it was)."""
        before = self.datastore.metrics.snapshot()
        with self.table_unchanged():
            yield
        sent = self.datastore.metrics.snapshot() - before
        self.assertFalse({"TransactWriteItems", "PutItem", "UpdateItem"} & set(sent.by_operation))


class TestBadInput(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.recorder()
        self.originator_id = uuid4()
        self.store.insert_events(events(self.originator_id, range(1, 3)))

    def test_an_event_too_big_for_an_item_is_rejected_naming_it(self) -> None:
        big = events(self.originator_id, range(3, 4), state=b"x" * MAX_ITEM_BYTES)
        with self.nothing_sent(), self.assertRaises(DynamoDBLimitError) as caught:
            self.store.insert_events(big)
        self.assertEqual(caught.exception.limit, "item size")
        self.assertIn(f"event {self.originator_id} version 3", str(caught.exception))
        self.assertGreater(caught.exception.size, MAX_ITEM_BYTES)

    def test_a_save_too_big_for_one_transaction_is_rejected_whole(self) -> None:
        # 30 events of 150 KB: 4.4 MB of events, stored twice, cannot be one transaction.
        save = events(self.originator_id, range(3, 33), state=b"x" * (150 * KB))
        with self.nothing_sent(), self.assertRaises(DynamoDBLimitError) as caught:
            self.store.insert_events(save)
        self.assertEqual(caught.exception.limit, "transaction size")
        self.assertIn("insert_events of 30 events in 1 streams", str(caught.exception))

    def test_a_save_touching_too_many_items_is_rejected_whole(self) -> None:
        # 60 new streams: 60 heads and 60 batches, beyond 100 actions.
        save = [e for _ in range(60) for e in events(uuid4(), range(1, 2))]
        with self.nothing_sent(), self.assertRaises(DynamoDBLimitError) as caught:
            self.store.insert_events(save)
        self.assertEqual(caught.exception.limit, "transaction actions")
        self.assertEqual(caught.exception.maximum, 100)

    def test_a_version_twice_in_one_save_is_rejected(self) -> None:
        save = events(self.originator_id, range(3, 5)) + events(self.originator_id, range(4, 5))
        with self.nothing_sent(), self.assertRaises(IntegrityError) as caught:
            self.store.insert_events(save)
        self.assertIn(
            f"stream {self.originator_id}: version 4 given more than once", str(caught.exception)
        )

    def test_an_unknown_originator_reads_as_nothing_and_the_application_says_not_found(
        self,
    ) -> None:
        unknown = uuid4()
        with self.table_unchanged():
            self.assertEqual(self.store.select_events(unknown), [])
            app = Application[UUID](env=self.dynamodb_env())
            with self.assertRaises(AggregateNotFoundError):
                app.repository.get(unknown)
            app.close()


class TestAggregateRecorderInput(StoreTestCase):
    def test_a_save_with_a_stored_version_writes_nothing_and_names_it(self) -> None:
        store = DynamoDBAggregateRecorder(self.datastore, events_namespace="snapshots")
        originator_id = uuid4()
        store.insert_events(events(originator_id, range(2, 3)))
        with self.table_unchanged(), self.assertRaises(IntegrityError) as caught:
            store.insert_events(events(originator_id, range(1, 4)))
        self.assertIn(f"already stored: {originator_id} version 2", str(caught.exception))

    def test_an_event_too_big_for_an_item_is_rejected_naming_it(self) -> None:
        store = DynamoDBAggregateRecorder(self.datastore, events_namespace="snapshots")
        originator_id = uuid4()
        with self.nothing_sent(), self.assertRaises(DynamoDBLimitError) as caught:
            store.insert_events(events(originator_id, range(1, 2), state=b"x" * MAX_ITEM_BYTES))
        self.assertIn(f"event {originator_id} version 1", str(caught.exception))

    def test_more_events_than_one_transaction_takes_are_rejected_whole(self) -> None:
        store = DynamoDBAggregateRecorder(self.datastore, events_namespace="snapshots")
        with self.nothing_sent(), self.assertRaises(DynamoDBLimitError) as caught:
            store.insert_events(events(uuid4(), range(1, 102)))
        self.assertEqual(caught.exception.limit, "transaction actions")


class TestVersionConflicts(StoreTestCase):
    def test_a_stale_save_names_the_versions_expected_and_found(self) -> None:
        store = self.recorder()
        originator_id = uuid4()
        store.insert_events(events(originator_id, range(1, 4)))
        with self.table_unchanged(), self.assertRaises(StreamConflictError) as caught:
            store.insert_events(events(originator_id, range(3, 5)))
        conflict = caught.exception
        self.assertEqual(
            (conflict.originator_id, conflict.expected_version, conflict.actual_version),
            (originator_id, 2, 3),
        )
        with self.table_unchanged(), self.assertRaises(StreamConflictError) as caught:
            store.insert_events(events(originator_id, range(1, 2)))
        self.assertEqual(
            (caught.exception.expected_version, caught.exception.actual_version), (None, 3)
        )

    def test_a_stream_named_by_a_string_conflicts_the_same_way(self) -> None:
        store = self.recorder()
        store.insert_events([StoredEvent("stream-a", 1, "topic", b"{}")])
        with self.table_unchanged(), self.assertRaises(StreamConflictError) as caught:
            store.insert_events([StoredEvent("stream-a", 1, "topic", b"{}")])
        conflict = caught.exception
        self.assertEqual(
            (conflict.originator_id, conflict.expected_version, conflict.actual_version),
            ("stream-a", None, 1),
        )

    def test_two_applications_saving_the_same_aggregate_conflict(self) -> None:
        app1 = Application[UUID](env=self.dynamodb_env())
        app2 = Application[UUID](env=self.dynamodb_env())
        aggregate = Aggregate()
        app1.save(aggregate)
        copy1: Aggregate = app1.repository.get(aggregate.id)
        copy2: Aggregate = app2.repository.get(aggregate.id)
        copy1.trigger_event(Aggregate.Event)
        copy2.trigger_event(Aggregate.Event)
        app1.save(copy1)
        with self.assertRaises(StreamConflictError) as caught:
            app2.save(copy2)
        self.assertEqual(
            (caught.exception.expected_version, caught.exception.actual_version), (1, 2)
        )
        app1.close()
        app2.close()

    def test_the_check_holds_whatever_batches_earlier_saves_were_cut_into(self) -> None:
        # 5 events of 150 KB make 3 batches (2 + 2 + 1); every version in them is guarded.
        store = self.recorder()
        originator_id = uuid4()
        store.insert_events(events(originator_id, range(1, 6), state=b"x" * (150 * KB)))
        for first in range(1, 6):
            with self.table_unchanged(), self.assertRaises(StreamConflictError):
                store.insert_events(events(originator_id, range(first, 7)))
        store.insert_events(events(originator_id, range(6, 7)))


class TestReads(StoreTestCase):
    def test_select_events_over_packed_batches(self) -> None:
        store = self.recorder()
        originator_id = uuid4()
        # Saves of 1-3, 4-8 (packed two per item: 4-5, 6-7, 8) and 9-10.
        store.insert_events(events(originator_id, range(1, 4)))
        store.insert_events(events(originator_id, range(4, 9), state=b"x" * (150 * KB)))
        store.insert_events(events(originator_id, range(9, 11)))
        self.assert_selects_like_a_list(store, originator_id)

    def test_select_events_of_the_aggregate_recorder(self) -> None:
        store = DynamoDBAggregateRecorder(self.datastore, events_namespace="snapshots")
        originator_id = uuid4()
        store.insert_events(events(originator_id, range(1, 4)))
        for version in (7, 4, 10, 5, 8, 6, 9):  # Any order.
            store.insert_events(events(originator_id, range(version, version + 1)))
        self.assert_selects_like_a_list(store, originator_id)

    def assert_selects_like_a_list(
        self, store: DynamoDBAggregateRecorder | DynamoDBApplicationRecorder, originator_id: UUID
    ) -> None:
        """Every combination of gt, lte, desc and limit selects versions 1-10 as a list would."""
        for gt in (None, 0, 3, 4, 5, 9, 10):
            for lte in (None, 1, 4, 5, 6, 8, 10, 11):
                for desc in (False, True):
                    for limit in (None, 1, 2, 20):
                        expected = [
                            v
                            for v in range(1, 11)
                            if (gt is None or v > gt) and (lte is None or v <= lte)
                        ]
                        expected = (expected[::-1] if desc else expected)[:limit]
                        selected = store.select_events(
                            originator_id, gt=gt, lte=lte, desc=desc, limit=limit
                        )
                        self.assertEqual(
                            [e.originator_version for e in selected],
                            expected,
                            f"gt={gt} lte={lte} desc={desc} limit={limit}",
                        )

    def test_one_save_of_several_streams_is_numbered_in_the_order_given(self) -> None:
        store = self.recorder()
        a, b = uuid4(), "a-string-id"
        save = [
            StoredEvent(a, 1, "t", b"a1"),
            StoredEvent(b, 1, "t", b"b1"),
            StoredEvent(a, 2, "t", b"a2"),
        ]
        self.assertEqual(store.insert_events(save), [1, 2, 3])
        notifications = store.select_notifications(None, 10)
        self.assertEqual(
            [(n.id, n.originator_id, n.state) for n in notifications],
            [(1, a, b"a1"), (2, b, b"b1"), (3, a, b"a2")],
        )
        self.assertEqual([e.state for e in store.select_events(a)], [b"a1", b"a2"])
        self.assertEqual([e.state for e in store.select_events(b)], [b"b1"])

    def test_a_reader_stops_before_an_id_not_yet_visible(self) -> None:
        store = self.recorder()
        store.insert_events(events(uuid4(), range(1, 3)))
        # Id 4 visible while 3 is not (as a read racing two commits could see it).
        late, early = events(uuid4(), range(1, 2)), events(uuid4(), range(1, 2))
        self.put_log_batch(4, late)
        self.assertEqual([n.id for n in store.select_notifications(None, 10)], [1, 2])
        self.assertEqual(store.select_notifications(2, 10, inclusive_of_start=False), [])
        self.put_log_batch(3, early)
        self.assertEqual([n.id for n in store.select_notifications(None, 10)], [1, 2, 3, 4])

    def test_a_reader_going_on_inside_the_log_item_read_last_reads_nothing_more(self) -> None:
        store = self.recorder()
        store.insert_events(events(uuid4(), range(1, 91)))  # One log item of 90 events.
        metrics = self.datastore.metrics
        before = metrics.snapshot()
        pages = [store.select_notifications(start, 30) for start in (1, 31, 61)]
        self.assertEqual([n.id for page in pages for n in page], list(range(1, 91)))
        self.assertEqual((metrics.snapshot() - before).by_operation["Query"].calls, 1)

        store.insert_events(events(uuid4(), range(1, 11)))  # A new item, read from the table.
        self.assertEqual(store.select_notifications(91, 30)[-1].id, 100)
        self.assertEqual([n.id for n in store.select_notifications(85, 10)], list(range(85, 95)))

    def put_log_batch(self, notification_id: int, saved: list[StoredEvent]) -> None:
        encoded = [encode_log_event(e) for e in saved]
        item = batch_item(log_pk("app_events"), notification_id, notification_id, encoded)
        self.client.put_item(TableName=self.table_name, Item=item)


class TestNotificationLog(StoreTestCase):
    def test_saves_through_two_recorders_are_renumbered_not_refused(self) -> None:
        first, second = self.recorder(), self.recorder()
        self.assertEqual(first.insert_events(events(uuid4(), range(1, 3))), [1, 2])
        second.claim_write_mode()  # Once per recorder, before its first save.
        before = self.datastore.metrics.snapshot()
        # The second recorder starts from 0: its first try loses, the head comes back with
        # the cancellation, the retry takes 3 and 4.
        self.assertEqual(second.insert_events(events(uuid4(), range(1, 3))), [3, 4])
        sent = (self.datastore.metrics.snapshot() - before).by_operation
        self.assertEqual(sent["TransactWriteItems"].calls, 2)
        self.assertEqual(sent["TransactWriteItems"].errors, 1)
        self.assertNotIn("GetItem", sent)

    def test_a_save_refused_for_its_version_still_learns_the_log_head(self) -> None:
        first, second = self.recorder(), self.recorder()
        order_id = uuid4()
        first.insert_events(events(order_id, range(1, 2)))
        second.insert_events(events(uuid4(), range(1, 3)))  # The log head moves to 3.
        with self.assertRaises(StreamConflictError):
            first.insert_events(events(order_id, range(1, 2)))  # Stale: version 1 is taken.
        before = self.datastore.metrics.snapshot()
        # The refusal returned the log head too, so the retry numbers right the first time.
        self.assertEqual(first.insert_events(events(order_id, range(2, 3))), [4])
        sent = (self.datastore.metrics.snapshot() - before).by_operation
        self.assertEqual(
            (sent["TransactWriteItems"].calls, sent["TransactWriteItems"].errors), (1, 0)
        )

    def test_concurrent_saves_through_many_recorders_make_a_gapless_log(self) -> None:
        recorders = [self.recorder() for _ in range(4)]
        saves: dict[UUID, list[int]] = {}

        def save_many(recorder: DynamoDBApplicationRecorder) -> None:
            for size in (1, 3, 2, 5, 1, 4):
                originator_id = uuid4()
                ids = recorder.insert_events(events(originator_id, range(1, size + 1)))
                assert ids is not None
                saves[originator_id] = list(ids)

        threads = [Thread(target=save_many, args=(r,)) for r in recorders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log = recorders[0].select_notifications(None, 1000)
        self.assertEqual([n.id for n in log], list(range(1, 16 * 4 + 1)))
        for originator_id, ids in saves.items():
            self.assertEqual(ids, list(range(ids[0], ids[0] + len(ids))))
            self.assertEqual(
                [n.originator_id for n in log if n.id in ids], [originator_id] * len(ids)
            )
        self.assertEqual(recorders[1].max_notification_id(), 64)

    def test_a_subscription_sees_saves_of_other_processes_by_polling(self) -> None:
        reader = DynamoDBApplicationRecorder(
            DynamoDBDatastore(self.server.client(), self.table_name, poll_interval=0.05),
            events_namespace="app_events",
        )
        writer = self.recorder()
        received: list[Notification] = []
        with reader.subscribe(gt=None) as subscription:
            writer.insert_events(events(uuid4(), range(1, 3)))
            for notification in subscription:
                received.append(notification)
                if len(received) == 2:
                    break
        self.assertEqual([n.id for n in received], [1, 2])


class TestProcessAndSnapshots(StoreTestCase):
    def test_tracking_is_written_with_the_events_or_not_at_all(self) -> None:
        store = DynamoDBProcessRecorder(self.datastore, "proc_events", "proc_tracking")
        store.insert_events(events(uuid4(), range(1, 2)), tracking=Tracking("up", 5))
        with self.table_unchanged(), self.assertRaises(IntegrityError) as caught:
            store.insert_events(events(uuid4(), range(1, 3)), tracking=Tracking("up", 5))
        self.assertIn("tracking position already recorded (found 5)", str(caught.exception))
        stale = uuid4()
        store.insert_events(events(stale, range(1, 2)), tracking=Tracking("up", 6))
        with self.table_unchanged(), self.assertRaises(StreamConflictError):
            store.insert_events(events(stale, range(1, 2)), tracking=Tracking("up", 7))
        self.assertEqual(store.max_tracking_id("up"), 6)
        self.assertEqual(store.max_notification_id(), 2)

    def test_snapshots_have_their_own_key_space(self) -> None:
        env = {**self.dynamodb_env(), "IS_SNAPSHOTTING_ENABLED": "y"}
        app = Application[UUID](env=env)
        aggregate = Aggregate()
        aggregate.trigger_event(Aggregate.Event)
        app.save(aggregate)
        aggregate.trigger_event(Aggregate.Event)
        app.save(aggregate)
        app.take_snapshot(aggregate.id, version=3)
        app.take_snapshot(aggregate.id, version=2)  # An older one after a newer one.
        with self.table_unchanged(), self.assertRaises(IntegrityError) as caught:
            app.take_snapshot(aggregate.id, version=2)
        self.assertIn(f"already stored: {aggregate.id} version 2", str(caught.exception))
        self.assertEqual(app.recorder.max_notification_id(), 3)
        self.assertEqual([n.id for n in app.recorder.select_notifications(None, 10)], [1, 2, 3])
        self.assertEqual(app.repository.get(aggregate.id, version=2).version, 2)
        self.assertEqual(app.repository.get(aggregate.id).version, 3)
        assert app.snapshots is not None
        self.assertEqual([s.originator_version for s in app.snapshots.get(aggregate.id)], [2, 3])
        keys = {item["pk"]["S"].split("#")[0:2][0] for item in self.scan_table()}
        self.assertEqual(keys, {"application_events", "application_snapshots"})
        app.close()


class TestProvisioning(DynamoDBLocalTestCase):
    def test_the_factory_creates_a_missing_table_only_when_told(self) -> None:
        env = {**self.dynamodb_env(), "DYNAMODB_TABLE_NAME": f"new-{uuid4().hex}"}
        factory = DynamoDBFactory(env)
        with self.assertRaises(ProgrammingError) as caught:
            factory.application_recorder().max_notification_id()
        self.assertIn("DYNAMODB_CREATE_TABLE=y", str(caught.exception))
        factory.close()
        factory = DynamoDBFactory({**env, "DYNAMODB_CREATE_TABLE": "y"})
        self.assertIsNone(factory.application_recorder().max_notification_id())
        self.assertFalse(factory.datastore.create_table_if_missing())
        factory.datastore.client.delete_table(TableName=factory.datastore.table_name)
        factory.close()

    def test_the_factory_needs_a_table_name(self) -> None:
        with self.assertRaises(OSError) as caught:
            DynamoDBFactory({"PERSISTENCE_MODULE": "adapters.dynamodb"})
        self.assertIn("DYNAMODB_TABLE_NAME", str(caught.exception))


class TestMetrics(StoreTestCase):
    def test_every_call_is_counted_with_its_capacity(self) -> None:
        store = self.recorder()
        store.claim_write_mode()  # Once per recorder, before its first save.
        before = self.datastore.metrics.snapshot()
        store.insert_events(events(uuid4(), range(1, 3)))
        store.select_notifications(None, 10)
        store.max_notification_id()
        cost = self.datastore.metrics.snapshot() - before
        self.assertEqual(cost.calls, 3)
        self.assertEqual(cost.round_trips, 3)
        self.assertEqual(cost.errors, 0)
        self.assertGreater(cost.capacity_units, 0.0)  # DynamoDB Local's own rules.
        # AWS's rules: four items (stream head, stream batch, log batch, log head), each
        # under 1 KB, in a transaction; one Query and one GetItem under 4 KB.
        self.assertEqual(cost.by_operation["TransactWriteItems"].estimated_units, 8.0)
        self.assertEqual(cost.by_operation["Query"].estimated_units, 1.0)
        self.assertEqual(cost.by_operation["GetItem"].estimated_units, 1.0)

    def test_the_estimate_counts_each_started_kilobyte_of_each_item(self) -> None:
        store = self.recorder()
        before = self.datastore.metrics.snapshot()
        # 3 KB of state, stored twice (stream and log batches of about 3.1 KB: 4 KB each).
        store.insert_events(events(uuid4(), range(1, 4), state=b"x" * KB))
        cost = self.datastore.metrics.snapshot() - before
        self.assertEqual(
            cost.by_operation["TransactWriteItems"].estimated_units, 2 * (1 + 4 + 4 + 1)
        )
