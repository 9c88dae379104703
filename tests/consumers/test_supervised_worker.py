"""The SQS worker under its supervisor: faults past botocore's retries, a permanent error."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, Dispatcher
from adapters.sqs.worker import SqsConsumer
from adapters.supervisor import Supervisor, WorkerStoppedError
from orders.backoff import Backoff
from projections.downstream import DownstreamProjection, store_reader
from projections.memory import InMemoryViewStore
from schemas.contract import to_json
from tests.consumers.builders import demo_service, logged_envelopes, replayed, view_contents
from tests.consumers.queues import queue_depth, queue_with_dead_letters, send_bodies
from tests.support.faults import FaultPlan
from tests.support.moto_server import MotoServer

# Longer than one botocore call's retries (legacy mode: 5 attempts, standard: 3).
BURST = ["throttle"] * 12 + ["5xx"] * 6 + ["reset"] * 6


def test_the_worker_outlives_faults_past_botocore_retries_and_applies_everything_once(
    moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    service = demo_service(12)
    envelopes = logged_envelopes(service)
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "faulty")
    send_bodies(sqs, url, [to_json(envelope) for envelope in envelopes])
    receives = FaultPlan(sqs, "ReceiveMessage", BURST)
    deletes = FaultPlan(sqs, "DeleteMessageBatch", ["throttle"] * 8)
    store = InMemoryViewStore()
    projection = DownstreamProjection(store, store_events=store_reader(service))
    consumer = SqsConsumer(
        sqs,
        url,
        Dispatcher([(ORDER_DETAIL_TYPES, projection)]),
        wait_seconds=0,
        retry_delay=0,
        visibility_timeout=1,  # a batch whose delete failed returns soon
    )
    stop = threading.Event()
    worker = threading.Thread(
        target=consumer.run, args=(stop,), kwargs={"backoff": Backoff(base=0.01, cap=0.2)}
    )
    worker.start()
    try:
        for _ in range(600):  # bounded: each round waits at most 0.1 s
            if receives.exhausted and deletes.exhausted and queue_depth(sqs, url) == 0:
                break
            stop.wait(0.1)
        assert worker.is_alive()
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()
    assert receives.injected == len(BURST)
    assert queue_depth(sqs, url) == 0
    assert queue_depth(sqs, dead_letter_url) == 0
    assert view_contents(store, envelopes) == view_contents(replayed(envelopes), envelopes)
    episodes = [r for r in caplog.records if "pausing on transient errors" in r.getMessage()]
    assert 1 <= len(episodes) <= 2  # once per episode (receives, then deletes), not per error


def test_a_deleted_queue_stops_the_worker_with_its_error(moto: MotoServer) -> None:
    sqs = moto.client("sqs")
    url, _ = queue_with_dead_letters(sqs, "gone")
    consumer = SqsConsumer(sqs, url, Dispatcher([]), wait_seconds=0)
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(WorkerStoppedError, match="sqs-worker stopped: QueueDoesNotExist"):
        consumer.run(threading.Event())


def test_the_supervisor_stops_on_access_denied_and_counts_transient_errors() -> None:
    calls: list[int] = []

    def step() -> Any:
        calls.append(1)
        code = "ThrottlingException" if len(calls) < 4 else "AccessDeniedException"
        raise ClientError({"Error": {"Code": code, "Message": "m"}}, "PutEvents")

    supervisor = Supervisor("relay", threading.Event(), backoff=Backoff(base=0.001, cap=0.01))
    with pytest.raises(WorkerStoppedError, match="AccessDeniedException"):
        supervisor.run(step)
    assert supervisor.transient_errors == 3
    assert supervisor.episodes == 1
