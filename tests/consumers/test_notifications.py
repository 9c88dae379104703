"""Notifications: one per status change under redelivery, read back from a subscribed queue."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, Dispatcher
from adapters.consumers.notifications import STATUS_CHANGES, Notifier, notification_text
from adapters.sns.idempotency import (
    create_idempotency_table,
    dynamodb_persistence,
    once_per_event,
    register_lambda_context,
)
from adapters.sns.publisher import SnsPublisher
from adapters.sqs.worker import SqsConsumer
from tests.consumers.builders import demo_service, logged_envelopes
from tests.consumers.queues import queue_with_dead_letters, send_bodies
from tests.consumers.test_sqs_consumer import body, drain
from tests.support.dynamodb_local import dynamodb_local
from tests.support.moto_server import MotoServer

NO_RETRIES = {"mode": "standard", "total_max_attempts": 1}


@pytest.fixture
def idempotency_table() -> Iterator[tuple[Any, str]]:
    server = dynamodb_local()
    client = server.client()
    name = f"idempotency-{random.randrange(10**9)}"
    create_idempotency_table(client, name)
    yield client, name
    client.delete_table(TableName=name)


def subscribed_queue(moto: MotoServer) -> tuple[str, str]:
    sns, sqs = moto.client("sns"), moto.client("sqs")
    topic_arn = sns.create_topic(Name="order-notifications")["TopicArn"]
    url = sqs.create_queue(QueueName="customer-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return topic_arn, url


def read_all(sqs: Any, url: str) -> list[str]:
    texts: list[str] = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        texts += [message["Body"] for message in messages]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return texts


def test_one_notification_per_status_change_under_redelivery(
    moto: MotoServer, idempotency_table: tuple[Any, str]
) -> None:
    envelopes = logged_envelopes(demo_service(15))
    topic_arn, inbox_url = subscribed_queue(moto)
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "notifications")
    deliveries = [body(envelope) for envelope in envelopes] * 3
    random.Random(8).shuffle(deliveries)
    send_bodies(sqs, url, deliveries)

    client, table = idempotency_table
    notify = once_per_event(
        Notifier(SnsPublisher(moto.client("sns", retries=NO_RETRIES), topic_arn)),
        dynamodb_persistence(client, table),
        name="notifications",
    )
    dispatcher = Dispatcher([(ORDER_DETAIL_TYPES, notify)])
    drain(SqsConsumer(sqs, url, dispatcher, wait_seconds=0, retry_delay=0), sqs, url)

    received = Counter(read_all(sqs, inbox_url))
    expected = Counter(
        notification_text(envelope)
        for envelope in envelopes
        if envelope.detail_type in STATUS_CHANGES
    )
    assert received == expected
    assert set(received.values()) == {1}
    assert any("is now processing" in text for text in received)
    assert sqs.receive_message(QueueUrl=dead_letter_url).get("Messages", []) == []


def test_a_failed_publish_is_not_recorded_so_the_retry_notifies(
    moto: MotoServer, idempotency_table: tuple[Any, str]
) -> None:
    (placed,) = logged_envelopes(demo_service(1))[:1]
    sent: list[str] = []
    failures = iter([RuntimeError("SNS unavailable")])

    def flaky(text: str, _: object) -> None:
        if (failure := next(failures, None)) is not None:
            raise failure
        sent.append(text)

    client, table = idempotency_table
    notify = once_per_event(
        Notifier(flaky), dynamodb_persistence(client, table), name="notifications"
    )
    with pytest.raises(RuntimeError, match="SNS unavailable"):
        notify(placed)
    notify(placed)
    notify(placed)
    assert sent == [notification_text(placed)]


class Crash(BaseException):
    """The process dying mid-handler: no ``except Exception`` sees it, so nothing cleans up."""


def test_after_a_crash_mid_handler_the_event_is_held_then_notified_once(
    idempotency_table: tuple[Any, str],
) -> None:
    (placed,) = logged_envelopes(demo_service(1))[:1]
    sent: list[str] = []
    crash = [Crash()]

    def publish(text: str, _: object) -> None:
        if crash:
            raise crash.pop()
        sent.append(text)

    client, table = idempotency_table
    notify = once_per_event(
        Notifier(publish),
        dynamodb_persistence(client, table),
        name="notifications",
        in_progress_seconds=1,
    )
    with pytest.raises(Crash):
        notify(placed)
    with pytest.raises(IdempotencyAlreadyInProgressError):
        notify(placed)  # redelivered at once: held, the message will be retried
    time.sleep(1.2)
    notify(placed)
    notify(placed)
    assert sent == [notification_text(placed)]


class _LambdaContext:
    def get_remaining_time_in_millis(self) -> int:
        return 600_000


def test_the_in_progress_window_follows_the_real_lambda_context(
    idempotency_table: tuple[Any, str],
) -> None:
    """Given a handler wrapped with a 1 s stand-in window When a Lambda invocation with 600 s
    left registers its context and the handler crashes Then the stored INPROGRESS record
    expires with the invocation, not after the stand-in's 1 s."""
    (placed,) = logged_envelopes(demo_service(1))[:1]

    def publish(text: str, _: object) -> None:
        raise Crash

    client, table = idempotency_table
    notify = once_per_event(
        Notifier(publish),
        dynamodb_persistence(client, table),
        name="notifications",
        in_progress_seconds=1,
    )
    register_lambda_context(_LambdaContext())
    before_ms = time.time() * 1000
    with pytest.raises(Crash):
        notify(placed)
    (item,) = client.scan(TableName=table)["Items"]
    assert item["status"]["S"] == "INPROGRESS"
    assert int(item["in_progress_expiration"]["N"]) >= before_ms + 590_000
