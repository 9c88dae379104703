"""Dead-letter tools on moto's server: redrive drains, sizes by bytes, deletes what it sent before
it reports a refusal, and dead letters keep within SQS's 10 attributes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, Dispatcher
from adapters.sqs.dead_letters import (
    MAX_ATTRIBUTES,
    MAX_REQUEST_BYTES,
    RedriveError,
    dead_letters,
    redrive,
)
from adapters.sqs.worker import SqsConsumer
from schemas.contract import Envelope
from tests.consumers.builders import demo_service, logged_envelopes
from tests.consumers.queues import queue_depth, queue_with_dead_letters, send_bodies
from tests.consumers.test_sqs_consumer import body, drain
from tests.support.moto_server import MotoServer


def received_bodies(sqs: Any, url: str) -> Counter[str]:
    """Every body on the queue, each received and deleted once (a bounded number of polls)."""
    bodies: Counter[str] = Counter()
    for _ in range(200):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if not messages:
            return bodies
        bodies.update(message["Body"] for message in messages)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    pytest.fail("queue not drained after 200 polls")


def test_redrive_moves_more_than_one_poll_returns_each_once(moto: MotoServer) -> None:
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "many")
    bodies = [json.dumps({"n": n}) for n in range(47)]
    send_bodies(sqs, dead_letter_url, bodies)

    assert redrive(sqs, dead_letter_url, url, wait_seconds=1) == 47

    assert queue_depth(sqs, dead_letter_url) == 0
    assert received_bodies(sqs, url) == Counter(bodies)


def test_redrive_cuts_batches_by_bytes_not_only_by_count(moto: MotoServer) -> None:
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "big")
    size = 300_000  # ten of them are about three times the 1 MiB a request may carry
    bodies = [f"{n:03d}" + "x" * size for n in range(10)]
    for text in bodies:
        sqs.send_message(QueueUrl=dead_letter_url, MessageBody=text)
    assert 10 * size > MAX_REQUEST_BYTES

    assert redrive(sqs, dead_letter_url, url, wait_seconds=1) == 10

    assert queue_depth(sqs, dead_letter_url) == 0
    assert received_bodies(sqs, url) == Counter(bodies)


def test_a_message_of_ten_attributes_is_dead_lettered_and_redriven_with_all_of_them(
    moto: MotoServer,
) -> None:
    envelope = logged_envelopes(demo_service(1))[0]
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "attributed", max_receives=1)
    attributes: dict[str, Any] = {
        f"a{n}": {"DataType": "String", "StringValue": f"value {n}"} for n in range(9)
    }
    attributes["blob"] = {"DataType": "Binary", "BinaryValue": b"\x00\xffbytes"}
    assert len(attributes) == MAX_ATTRIBUTES
    sqs.send_message(QueueUrl=url, MessageBody=body(envelope), MessageAttributes=attributes)

    def broken(_: Envelope) -> None:
        msg = "the handler's bug"
        raise RuntimeError(msg)

    consumer = SqsConsumer(sqs, url, Dispatcher([(ORDER_DETAIL_TYPES, broken)]), wait_seconds=0)
    drain(consumer, sqs, url)

    (raw,) = sqs.receive_message(
        QueueUrl=dead_letter_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    assert len(raw["MessageAttributes"]) <= MAX_ATTRIBUTES  # moto does not enforce SQS's limit
    sqs.change_message_visibility(
        QueueUrl=dead_letter_url, ReceiptHandle=raw["ReceiptHandle"], VisibilityTimeout=0
    )
    (letter,) = dead_letters(sqs, dead_letter_url, wait_seconds=1)
    assert letter.reason == "RuntimeError: the handler's bug"
    assert (letter.receives, letter.source) == ("1", url)
    assert redrive(sqs, dead_letter_url, url, wait_seconds=1) == 1
    (back,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1)[
        "Messages"
    ]
    assert back["Body"] == body(envelope)
    assert back["MessageAttributes"] == attributes
    assert queue_depth(sqs, dead_letter_url) == 0


def test_a_partly_refused_redrive_deletes_what_was_sent_and_the_rerun_moves_the_rest(
    moto: MotoServer,
) -> None:
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "refusing")
    bodies = [json.dumps({"n": n}) for n in range(6)]
    send_bodies(sqs, dead_letter_url, bodies)
    refused = bodies[2]

    def refuse_one(params: dict[str, Any], **_: Any) -> None:
        # Below our code: SQS itself refuses this entry (an out-of-range delay).
        for entry in params["Entries"]:
            if entry["MessageBody"] == refused:
                entry["DelaySeconds"] = 1000

    hook = "provide-client-params.sqs.SendMessageBatch"
    sqs.meta.events.register(hook, refuse_one, unique_id="refuse-one")
    with pytest.raises(RedriveError, match="refused 1 message") as raised:
        redrive(sqs, dead_letter_url, url, wait_seconds=1)
    sqs.meta.events.unregister(hook, unique_id="refuse-one")

    moved = raised.value.moved  # those received with the refused one, and any before them
    assert moved < 6
    assert queue_depth(sqs, dead_letter_url) == 6 - moved
    assert redrive(sqs, dead_letter_url, url, wait_seconds=1) == 6 - moved
    assert queue_depth(sqs, dead_letter_url) == 0
    assert received_bodies(sqs, url) == Counter(bodies)
