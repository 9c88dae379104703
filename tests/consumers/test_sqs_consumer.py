"""The SQS worker on moto's server: batches, partial failure, dead letters, visibility, stop."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, Dispatcher
from adapters.sqs.dead_letters import dead_letters, redrive
from adapters.sqs.worker import SqsConsumer
from projections.downstream import DownstreamProjection, store_reader
from projections.memory import InMemoryViewStore
from schemas.contract import Envelope, to_json
from tests.consumers.builders import demo_service, logged_envelopes, replayed, view_contents
from tests.consumers.queues import queue_depth, queue_with_dead_letters, send_bodies
from tests.support.moto_server import MotoServer


def body(envelope: BaseModel) -> str:
    """The JSON text of an envelope, as a queue receives it."""
    return to_json(envelope)


def drain(consumer: SqsConsumer, sqs: Any, url: str, limit: int = 500) -> None:
    """Poll until the queue holds nothing, within ``limit`` polls."""
    for _ in range(limit):
        consumer.poll()
        if queue_depth(sqs, url) == 0:
            return
    pytest.fail(f"queue not drained after {limit} polls")


def test_views_from_every_message_twice_and_shuffled_equal_the_replay(moto: MotoServer) -> None:
    service = demo_service(40)
    envelopes = logged_envelopes(service)
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "views")
    bodies = [body(envelope) for envelope in envelopes] * 2
    random.Random(5).shuffle(bodies)
    send_bodies(sqs, url, bodies)

    store = InMemoryViewStore()
    projection = DownstreamProjection(store, store_events=store_reader(service))
    dispatcher = Dispatcher([(ORDER_DETAIL_TYPES, projection)])
    drain(SqsConsumer(sqs, url, dispatcher, wait_seconds=0, retry_delay=0), sqs, url)

    assert view_contents(store, envelopes) == view_contents(replayed(envelopes), envelopes)
    assert queue_depth(sqs, dead_letter_url) == 0


def test_poison_messages_fail_alone_and_reach_the_dlq_after_three_receives(
    moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    envelopes = logged_envelopes(demo_service(3))
    valid = [body(envelope) for envelope in envelopes]
    schema_invalid = json.loads(valid[0])
    schema_invalid["detail"]["status"] = "lost"
    poison = {
        "not json": "{not json",
        "schema-invalid": json.dumps(schema_invalid),
        "unknown detail-type": json.dumps({**schema_invalid, "detail-type": "OrderTeleported"}),
    }
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "poisoned")
    send_bodies(sqs, url, [*valid[:4], *poison.values(), *valid[4:]])

    handled: list[str] = []
    dispatcher = Dispatcher([(ORDER_DETAIL_TYPES, lambda e: handled.append(str(e.id)))])
    consumer = SqsConsumer(sqs, url, dispatcher, wait_seconds=0, retry_delay=0)
    with caplog.at_level(logging.WARNING, logger="adapters.sqs.worker"):
        drain(consumer, sqs, url)

    assert sorted(handled) == sorted(str(envelope.id) for envelope in envelopes)
    dead = {letter.body: letter for letter in dead_letters(sqs, dead_letter_url)}
    assert set(dead) == set(poison.values())
    assert "body is not JSON" in dead[poison["not json"]].reason
    assert "detail.status" in dead[poison["schema-invalid"]].reason
    assert "unknown detail-type 'OrderTeleported'" in dead[poison["unknown detail-type"]].reason
    assert {letter.receives for letter in dead.values()} == {"3"}
    failures = [r.getMessage() for r in caplog.records if "failed (receive" in r.getMessage()]
    assert len(failures) == 9  # one line per failed receive, each naming the problem
    assert all("poison message:" in line for line in failures)


def test_redrive_returns_dead_letters_to_their_queue_once(moto: MotoServer) -> None:
    envelopes = logged_envelopes(demo_service(2))
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "fixed")
    send_bodies(sqs, url, [body(envelope) for envelope in envelopes])
    fixed = threading.Event()
    handled: list[str] = []

    def handler(envelope: Envelope) -> None:
        if not fixed.is_set():
            msg = "the handler's bug"
            raise RuntimeError(msg)
        handled.append(str(envelope.id))

    dispatcher = Dispatcher([(ORDER_DETAIL_TYPES, handler)])
    drain(SqsConsumer(sqs, url, dispatcher, wait_seconds=0, retry_delay=0), sqs, url)
    assert {letter.reason for letter in dead_letters(sqs, dead_letter_url)} == {
        "RuntimeError: the handler's bug"
    }

    fixed.set()
    assert redrive(sqs, dead_letter_url, url) == len(envelopes)
    drain(SqsConsumer(sqs, url, dispatcher, wait_seconds=0, retry_delay=0), sqs, url)
    assert sorted(handled) == sorted(str(envelope.id) for envelope in envelopes)
    assert queue_depth(sqs, dead_letter_url) == 0


def test_a_slow_handler_keeps_its_message_hidden_and_it_is_handled_once(moto: MotoServer) -> None:
    (envelope,) = logged_envelopes(demo_service(1))[:1]
    sqs = moto.client("sqs")
    url, _ = queue_with_dead_letters(sqs, "slow", visibility_timeout=2)
    send_bodies(sqs, url, [body(envelope)])
    calls: list[float] = []

    def slow(_: Envelope) -> None:
        calls.append(time.monotonic())
        time.sleep(4)

    consumer = SqsConsumer(
        sqs, url, Dispatcher([(ORDER_DETAIL_TYPES, slow)]), wait_seconds=0, visibility_timeout=2
    )
    worker = threading.Thread(target=consumer.poll)
    worker.start()
    time.sleep(3)  # past the 2 s visibility timeout the message was received with
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []
    worker.join()
    assert len(calls) == 1
    assert queue_depth(sqs, url) == 0


def test_the_worker_finishes_its_batch_and_stops_when_asked(moto: MotoServer) -> None:
    envelopes = logged_envelopes(demo_service(5))
    sqs = moto.client("sqs")
    url, _ = queue_with_dead_letters(sqs, "stopping")
    send_bodies(sqs, url, [body(envelope) for envelope in envelopes])
    stop = threading.Event()
    handled: list[str] = []

    def handler(envelope: Envelope) -> None:
        handled.append(str(envelope.id))
        stop.set()  # asked to stop while the first batch is in work

    consumer = SqsConsumer(sqs, url, Dispatcher([(ORDER_DETAIL_TYPES, handler)]), wait_seconds=1)
    worker = threading.Thread(target=consumer.run, args=(stop, lambda _: None))
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(handled) == min(10, len(envelopes))  # the whole first batch, then no more
    assert queue_depth(sqs, url) == len(envelopes) - len(handled)


def test_dead_letters_sqs_moved_itself_are_diagnosed_from_their_bodies(moto: MotoServer) -> None:
    (envelope,) = logged_envelopes(demo_service(1))[:1]
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "lambda-path")
    send_bodies(sqs, url, [body(envelope), "{oops"])
    for _ in range(4):  # what a failing Lambda leaves to SQS: 3 receives, moved on the 4th
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    reasons = {letter.body: letter.reason for letter in dead_letters(sqs, dead_letter_url)}
    assert reasons[body(envelope)] == "no reason recorded (moved by SQS after its receives ran out)"
    assert reasons["{oops"].startswith("poison message: body is not JSON")
