"""The indexer followed by ``orders indexer run``'s supervised loop, on DynamoDB Local: faults
past botocore's retries pause it and it goes on; a permanent error stops it."""

from __future__ import annotations

import threading
from uuid import uuid4

import pytest

from adapters.cli.indexer import follow
from adapters.dynamodb.repair import verify
from adapters.supervisor import WorkerStoppedError
from orders.backoff import Backoff
from tests.integration.test_dynamodb_indexed import NAMESPACE, IndexedTestCase, events
from tests.support.faults import FaultPlan

pytestmark = pytest.mark.dynamodb

FAST = Backoff(base=0.01, cap=0.2)


class TestSupervisedIndexer(IndexedTestCase):
    def test_faults_past_botocore_retries_pause_it_and_every_event_is_logged_once(self) -> None:
        store = self.recorder()
        orders = [uuid4() for _ in range(4)]
        for order_id in orders:
            store.insert_events(events(order_id, range(1, 4)))
        indexer = self.indexer(poll_interval=0.05)
        indexer.load()
        streams = FaultPlan(indexer.reader.streams, "GetRecords", ["throttle"] * 8 + ["reset"] * 4)
        table = FaultPlan(self.datastore.client, "*", ["5xx"] * 8 + ["throttle"] * 4)
        stop = threading.Event()
        worker = threading.Thread(target=follow, args=(indexer, stop), kwargs={"backoff": FAST})
        worker.start()
        try:
            for _ in range(600):  # bounded: each round waits at most 0.1 s
                if streams.exhausted and table.exhausted and (store.max_notification_id() == 12):
                    break
                stop.wait(0.1)
            assert worker.is_alive()
        finally:
            stop.set()
            worker.join(timeout=30)
        assert not worker.is_alive()
        assert streams.injected == 12
        assert table.injected == 12
        log = self.log(store)
        assert [i for i, _, _ in log] == list(range(1, 13))
        assert len({(o, v) for _, o, v in log}) == 12
        assert verify(self.datastore, NAMESPACE).ok

    def test_access_denied_stops_it_with_the_error(self) -> None:
        store = self.recorder()
        store.insert_events(events(uuid4(), range(1, 2)))
        indexer = self.indexer(poll_interval=0.05)
        indexer.load()
        FaultPlan(indexer.reader.streams, "GetRecords", ["denied"] * 100)
        with pytest.raises(WorkerStoppedError, match=r"indexer stopped: .*AccessDeniedException"):
            follow(indexer, threading.Event(), backoff=FAST)
