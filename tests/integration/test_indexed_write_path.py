"""The indexed write path on DynamoDB Local: whole saves, limits, repair at scale, bounded
checkpoint, and one write mode per table."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import pytest
from botocore.awsrequest import AWSResponse
from eventsourcing.persistence import OperationalError, StoredEvent
from eventsourcing.tests.persistence import ApplicationRecorderTestCase

from adapters.dynamodb import (
    DynamoDBApplicationRecorder,
    DynamoDBDatastore,
    DynamoDBIndexedApplicationRecorder,
    DynamoDBIndexedProcessRecorder,
    DynamoDBLimitError,
    WriteModeError,
)
from adapters.dynamodb.indexer import Indexer
from adapters.dynamodb.items import key, log_head_pk
from adapters.dynamodb.repair import rebuild, stream_items, verify
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb

NAMESPACE = "test_events"


def events(originator_id: UUID | str, versions: range, size: int = 2) -> list[StoredEvent]:
    return [StoredEvent(originator_id, v, f"topic-{v}", b"x" * size) for v in versions]


class WritePathCase(DynamoDBLocalTestCase):
    def recorder(self) -> DynamoDBIndexedProcessRecorder:
        return DynamoDBIndexedProcessRecorder(
            self.datastore, events_namespace=NAMESPACE, tracking_namespace="test_tracking"
        )

    def indexer(self, **options: Any) -> Indexer:
        return Indexer(self.datastore, self.server.streams_client(), NAMESPACE, **options)

    def head(self) -> dict[str, Any]:
        item: dict[str, Any] = self.client.get_item(
            TableName=self.table_name, Key=key(log_head_pk(NAMESPACE)), ConsistentRead=True
        )["Item"]
        return item


class TestWholeSaves(WritePathCase):
    def test_a_save_across_a_stream_read_boundary_is_never_seen_in_part(self) -> None:
        """998 one-event saves, then a 5-event save whose records straddle the 1,000 records
        of one ``GetRecords``, then more saves of 1 to 5 events: a reader tailing the log
        while the indexer works through the backlog only ever sees whole saves."""
        store = self.recorder()
        streams = [uuid4() for _ in range(10)]
        versions = dict.fromkeys(streams, 0)
        save_ends: dict[str, set[int]] = {str(s): {0} for s in streams}

        def save(stream: UUID, count: int) -> None:
            first = versions[stream] + 1
            store.insert_events(events(stream, range(first, first + count)))
            versions[stream] = first + count - 1
            save_ends[str(stream)].add(versions[stream])

        def save_singles(stream: UUID) -> None:
            for _ in range(998 // 10):
                save(stream, 1)

        with ThreadPoolExecutor(4) as pool:  # One stream per thread: versions stay in order.
            list(pool.map(save_singles, streams))
        for n in range(998 - 10 * (998 // 10)):
            save(streams[n], 1)
        save(streams[0], 5)
        for n in range(300):
            save(streams[n % 10], 1 + n % 5)
        total = sum(versions.values())
        reader = DynamoDBApplicationRecorder(self.datastore, events_namespace=NAMESPACE)
        seen: dict[str, int] = {}
        partial: list[tuple[str, int]] = []
        done = threading.Event()
        count = 0

        def tail() -> None:
            nonlocal count
            position = 0
            while not done.is_set() or position < total:
                read = reader.select_notifications(position + 1, 500)
                for n in read:
                    seen[str(n.originator_id)] = n.originator_version
                    position = n.id
                if len(read) < 500:  # The whole visible log: it must end at save ends.
                    count += 1
                    partial.extend((s, v) for s, v in seen.items() if v not in save_ends[s])

        thread = threading.Thread(target=tail)
        thread.start()
        indexer = self.indexer()
        try:
            self.assertEqual(indexer.catch_up(timeout=120), total)
        finally:
            done.set()
            thread.join()
        self.assertGreater(indexer.writes, 1)
        self.assertGreater(count, 1)
        self.assertEqual(partial, [])
        self.assertTrue(verify(self.datastore, NAMESPACE).ok)

    def test_the_rest_of_a_save_is_read_from_the_table_before_any_of_it_is_logged(self) -> None:
        store = self.recorder()
        order_id = uuid4()
        store.insert_events(events(order_id, range(1, 4)))
        batches = stream_items(self.datastore, NAMESPACE)
        self.assertEqual([b.save_last for b in batches], [3, 3, 3])
        self.assertEqual(self.indexer().index(batches[:2]), 3)
        self.assertTrue(verify(self.datastore, NAMESPACE).ok)


class TestLimits(WritePathCase):
    def test_mixed_large_and_small_events_stay_within_limits_even_after_a_failed_write(
        self,
    ) -> None:
        """73 small and 16 210 KB one-event saves (89 streams: 107 actions in one write
        before); the first indexer write is made to fail below our code; afterwards every
        event is logged once, and no write sent was over 100 actions or 4 MB."""
        store = self.recorder()
        for n in range(89):
            size = 210_000 if n % 6 == 0 and n < 96 else 10
            store.insert_events(events(uuid4(), range(1, 2), size))
        sent: list[tuple[int, int]] = []
        failing = [True]

        def check(params: dict[str, Any], **kwargs: Any) -> None:
            items = params["TransactItems"]
            sent.append((len(items), len(repr(items))))
            if failing[0]:
                raise OperationalError("injected: the write failed")

        self.datastore.client.meta.events.register(
            "provide-client-params.dynamodb.TransactWriteItems", check
        )
        indexer = self.indexer()
        with self.assertRaises(OperationalError):
            while True:
                indexer.poll_once()
        failing[0] = False
        self.assertEqual(indexer.catch_up(timeout=120), 89)
        report = verify(self.datastore, NAMESPACE)
        self.assertTrue(report.ok, report)
        self.assertEqual(report.log_events, 89)
        self.assertGreater(len(sent), 2)
        self.assertTrue(all(actions <= 100 for actions, _ in sent), sent)
        self.assertTrue(all(size <= 4 * 1024 * 1024 * 2 for _, size in sent), sent)

    def test_a_save_over_the_modes_limit_is_refused_in_its_terms_before_sending(self) -> None:
        store = self.recorder()
        with self.assertRaisesRegex(DynamoDBLimitError, "one item per event"):
            store.insert_events(events(uuid4(), range(1, 102)))
        self.assertEqual(self.scan_table(), [])


@pytest.mark.acceptance
class TestRepairAtScale(WritePathCase):
    """Rebuild on 10,000 already-indexed orders: about 3 minutes here, so on demand
    (``pytest -m acceptance``) to keep the default run within its 15 minutes."""

    ORDERS = 10_000

    def test_rebuild_finishes_on_a_large_table_of_indexed_orders(self) -> None:
        store = self.recorder()
        orders = [uuid4() for _ in range(self.ORDERS)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda o: store.insert_events(events(o, range(1, 2))), orders))
        self.assertEqual(self.indexer().catch_up(timeout=600), self.ORDERS)
        # A fresh indexer given every item learns from refused writes: progress, not failure.
        self.assertEqual(self.indexer().index(stream_items(self.datastore, NAMESPACE)), 0)
        late = orders[:50]
        for order_id in late:
            store.insert_events(events(order_id, range(2, 4)))
        pages: list[int] = []
        before = self.datastore.metrics.snapshot()
        appended = rebuild(self.indexer(), progress=lambda p: pages.append(p.items_scanned))
        cost = self.datastore.metrics.snapshot() - before
        self.assertEqual(appended, 100)
        self.assertGreater(len(pages), 1)
        self.assertEqual(pages[-1], self.ORDERS + 100)
        self.assertLess(cost.by_operation["TransactWriteItems"].calls, 10)
        self.assertEqual(rebuild(self.indexer()), 0)  # Resumed or repeated: nothing twice.
        report = verify(self.datastore, NAMESPACE)
        self.assertTrue(report.ok, report)
        self.assertEqual(report.log_events, self.ORDERS + 100)


@pytest.mark.acceptance
class TestRepairAtAcceptanceScale(TestRepairAtScale):
    """The same on 100,000 orders (``pytest -m acceptance``)."""

    ORDERS = 100_000


class TestCheckpoint(WritePathCase):
    def test_the_checkpoint_keeps_only_shards_the_stream_lists(self) -> None:
        """A shard gone from the stream (trimmed after 24 hours, or of an earlier stream)
        is dropped from the checkpoint at the next write."""
        store = self.recorder()
        store.insert_events(events(uuid4(), range(1, 2)))
        self.indexer().catch_up()
        head = self.head()
        listed = set(head["cp"]["M"])
        head["cp"]["M"]["shardId-00000000000000000000-gone"] = {"S": "12345"}
        self.client.put_item(TableName=self.table_name, Item=head)
        store.insert_events(events(uuid4(), range(1, 2)))
        self.assertEqual(self.indexer().catch_up(), 1)
        self.assertEqual(set(self.head()["cp"]["M"]), listed)


class TestWriteModes(WritePathCase):
    def test_a_writer_in_the_other_mode_is_refused_before_writing(self) -> None:
        transactional = DynamoDBApplicationRecorder(self.datastore, events_namespace=NAMESPACE)
        transactional.insert_events(events(uuid4(), range(1, 2)))
        items = self.scan_table()
        with self.assertRaisesRegex(WriteModeError, "transactional write mode"):
            self.recorder().insert_events(events(uuid4(), range(1, 2)))
        with self.assertRaises(WriteModeError):
            self.indexer().catch_up()
        self.assertEqual(self.scan_table(), items)

    def test_an_indexed_table_refuses_a_transactional_writer(self) -> None:
        self.recorder().insert_events(events(uuid4(), range(1, 2)))
        items = self.scan_table()
        other = DynamoDBApplicationRecorder(self.datastore, events_namespace=NAMESPACE)
        with self.assertRaisesRegex(WriteModeError, "indexed write mode"):
            other.insert_events(events(uuid4(), range(1, 2)))
        self.assertEqual(self.scan_table(), items)


class _WaitingForTheIndexer(DynamoDBIndexedApplicationRecorder):
    """The indexed recorder, whose saves then wait for the indexer and return the ids it
    assigned (checked against the log), for the library's assertions on synchronous ids."""

    indexer: Indexer

    def insert_events(self, stored_events: Any, **kwargs: Any) -> Any:
        super().insert_events(stored_events, **kwargs)
        if not stored_events:
            return None
        self.indexer.catch_up()
        last = self.indexer.last_id
        ids = list(range(last - len(stored_events) + 1, last + 1))
        logged = self.select_notifications(ids[0], len(ids))
        given = [(e.originator_id, e.originator_version) for e in stored_events]
        if [(n.originator_id, n.originator_version) for n in logged] != given:
            msg = f"the log does not end with the events saved: {logged}"
            raise AssertionError(msg)
        return ids


class TestIndexedApplicationRecorder(
    DynamoDBLocalTestCase, ApplicationRecorderTestCase[DynamoDBIndexedApplicationRecorder]
):
    """The library's application recorder case on the indexed recorder, with the indexer
    running beside it in a thread. Two tests assert the ids ``insert_events`` returns, which
    this mode assigns later; for those only, each save waits for the indexer and returns the
    ids it assigned:

    - ``test_insert_select``: ``insert_events`` returns ``[1, 2]``, then ``[3]``;
    - ``test_insert_subscribe`` (the library's ``optional_test_insert_subscribe``): the ids
      returned, and ``max_notification_id`` right after a save.

    Every other test runs on the recorder as shipped.
    """

    synchronous_ids = False

    def setUp(self) -> None:
        super().setUp()
        # The library's concurrent case makes DynamoDB Local time out transactions waiting for
        # its own lock ("This request will succeed in actual DynamoDB API", a 500 botocore
        # retries): give botocore the tries AWS's retry guidance allows for it.
        retries = {"mode": "standard", "total_max_attempts": 10}
        self.datastore = DynamoDBDatastore(self.server.client(retries=retries), self.table_name)

    def create_recorder(self) -> DynamoDBIndexedApplicationRecorder:
        streams = self.server.streams_client()
        indexer = Indexer(self.datastore, streams, NAMESPACE, poll_interval=0.05)
        if self.synchronous_ids:
            waiting = _WaitingForTheIndexer(self.datastore, events_namespace=NAMESPACE)
            waiting.indexer = indexer
            return waiting
        stopping = threading.Event()
        thread = threading.Thread(target=indexer.run, args=(stopping,), daemon=True)
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(stopping.set)
        return DynamoDBIndexedApplicationRecorder(self.datastore, events_namespace=NAMESPACE)

    def test_insert_select(self) -> None:
        self.synchronous_ids = True
        super().test_insert_select()

    def test_insert_subscribe(self) -> None:
        self.synchronous_ids = True
        self.optional_test_insert_subscribe()


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **kwargs: Any) -> Any:
        yield self.data


class TestNoPauseUnderTheLock(DynamoDBLocalTestCase):
    def test_a_throttled_save_lets_the_processs_other_saves_through_while_botocore_waits(
        self,
    ) -> None:
        """Save A is throttled (a ``ThrottlingException`` answer below our code); while
        botocore waits to send it again, save B of the same recorder goes through."""
        recorder = DynamoDBApplicationRecorder(self.datastore, events_namespace=NAMESPACE)
        recorder.claim_write_mode()
        a_throttled, b_done = threading.Event(), threading.Event()
        b_done_before_a_resent: list[bool] = []

        def throttle_a(request: Any, **kwargs: Any) -> Any:
            if threading.current_thread().name != "save-a":
                return None
            if not a_throttled.is_set():
                a_throttled.set()
                body = b'{"__type":"ThrottlingException","message":"slow down"}'
                headers: Any = {"x-amzn-ErrorType": "ThrottlingException"}
                return AWSResponse(request.url, 400, headers, _Body(body))
            b_done_before_a_resent.append(b_done.wait(timeout=30))
            return None

        self.client.meta.events.register(
            "before-send.dynamodb.TransactWriteItems", throttle_a, unique_id="throttle-a"
        )
        a = threading.Thread(
            target=recorder.insert_events, args=(events(uuid4(), range(1, 2)),), name="save-a"
        )
        a.start()
        self.assertTrue(a_throttled.wait(timeout=30))
        self.assertEqual(len(recorder.insert_events(events(uuid4(), range(1, 2))) or []), 1)
        b_done.set()
        a.join()
        # A's resends (the first loses the race to B and is numbered again) came after B.
        self.assertGreater(len(b_done_before_a_resent), 0)
        self.assertTrue(all(b_done_before_a_resent), b_done_before_a_resent)
        self.assertEqual(recorder.max_notification_id(), 2)


class TestVerify(WritePathCase):
    def test_a_logged_event_differing_from_the_stored_one_is_reported_by_stream(self) -> None:
        store = self.recorder()
        order_id = uuid4()
        store.insert_events(events(order_id, range(1, 4)))
        self.indexer().catch_up()
        self.assertTrue(verify(self.datastore, NAMESPACE).ok)
        log_item = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{NAMESPACE}#log"}},
        )["Items"][0]
        log_item["e"]["L"][1]["M"]["s"] = {"B": b"tampered"}
        self.client.put_item(TableName=self.table_name, Item=log_item)
        report = verify(self.datastore, NAMESPACE)
        self.assertEqual(report.differing, [(str(order_id), 3)])
        self.assertEqual((report.log_events, report.stored_events), (3, 3))
