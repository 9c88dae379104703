"""Lost ``Publish`` answers: the request reaches SNS (moto's server), its answer never comes back.

The fault is a botocore ``before-send`` hook on the SNS client: it sends the request to the server
itself, then raises ``ReadTimeoutError`` as if the response was lost on the way back. Every
status change's first ``Publish`` is lost that way; the notifications are counted in a queue
subscribed to the topic.

Measured before this module's publisher (botocore's default retries re-sending ``Publish``):
one lost answer per status change gave 2 notifications each, two lost answers 3 each.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
import urllib3
from botocore.exceptions import ReadTimeoutError

from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, Dispatcher
from adapters.consumers.notifications import STATUS_CHANGES, Notifier
from adapters.sns.idempotency import dynamodb_persistence, once_per_event
from adapters.sns.publisher import SnsPublisher
from adapters.sqs.worker import SqsConsumer
from schemas.contract import Envelope
from tests.consumers.builders import demo_service, logged_envelopes
from tests.consumers.queues import queue_with_dead_letters, send_bodies
from tests.consumers.test_notifications import NO_RETRIES, idempotency_table
from tests.consumers.test_sqs_consumer import body, drain
from tests.support.moto_server import MotoServer

__all__ = ["idempotency_table"]


def lose_first_answers(sns: Any, times: int = 1, *, arrive: bool = True) -> list[bytes]:
    """Make the first ``times`` sends of each distinct ``Publish`` request reach SNS (or, if not
    ``arrive``, not) and lose their answers; returns the requests lost (once per loss)."""
    lost: list[bytes] = []
    http = urllib3.PoolManager()

    def deliver_then_lose(request: Any, **_: Any) -> None:
        payload = request.body if isinstance(request.body, bytes) else request.body.encode()
        if lost.count(payload) >= times:
            return  # sent normally this time
        if arrive:
            answer = http.request(
                request.method, request.url, body=payload, headers=dict(request.headers)
            )
            assert answer.status == 200, answer.data
        lost.append(payload)
        raise ReadTimeoutError(endpoint_url=request.url)

    sns.meta.events.register("before-send.sns.Publish", deliver_then_lose)
    return lost


def subscribed_inbox(moto: MotoServer, *, fifo: bool) -> tuple[str, str]:
    sns, sqs = moto.client("sns"), moto.client("sqs")
    suffix = ".fifo" if fifo else ""
    attributes = {"FifoTopic": "true"} if fifo else {}
    topic_arn = sns.create_topic(Name=f"order-notifications{suffix}", Attributes=attributes)[
        "TopicArn"
    ]
    queue_attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=f"inbox{suffix}", Attributes=queue_attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    return topic_arn, url


def inbox_event_ids(sqs: Any, url: str) -> list[str]:
    """The ``eventId`` attribute of every notification in the inbox (a bounded number of polls)."""
    ids: list[str] = []
    for _ in range(100):
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return ids
        ids += [m["MessageAttributes"]["eventId"]["StringValue"] for m in messages]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    pytest.fail("inbox not drained after 100 polls")


def notify_all(
    moto: MotoServer, idempotency: tuple[Any, str], publisher: SnsPublisher
) -> list[Envelope]:
    """Deliver every event of a small demo, each twice and shuffled, through the SQS worker and
    the once-per-event notifier; the envelopes that change a status."""
    envelopes = logged_envelopes(demo_service(6))
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "notifications")
    deliveries = [body(envelope) for envelope in envelopes] * 2
    random.Random(3).shuffle(deliveries)
    send_bodies(sqs, url, deliveries)
    client, table = idempotency
    notify = once_per_event(
        Notifier(publisher),
        dynamodb_persistence(client, table),
        name="notifications",
    )
    consumer = SqsConsumer(
        sqs, url, Dispatcher([(ORDER_DETAIL_TYPES, notify)]), wait_seconds=0, retry_delay=0
    )
    drain(consumer, sqs, url)
    assert sqs.receive_message(QueueUrl=dead_letter_url).get("Messages", []) == []
    return [envelope for envelope in envelopes if envelope.detail_type in STATUS_CHANGES]


@pytest.mark.parametrize("times", [1, 2])
def test_a_standard_topic_notifies_once_per_status_change_under_lost_answers(
    moto: MotoServer, idempotency_table: tuple[Any, str], times: int
) -> None:
    topic_arn, inbox = subscribed_inbox(moto, fifo=False)
    sns = moto.client("sns", retries=NO_RETRIES)
    lost = lose_first_answers(sns, times)

    changes = notify_all(moto, idempotency_table, SnsPublisher(sns, topic_arn))

    received = Counter(inbox_event_ids(moto.client("sqs"), inbox))
    assert len(lost) == len(changes)  # each status change lost one answer: not re-sent
    assert received == Counter({str(envelope.id): 1 for envelope in changes})


def test_the_price_of_once_a_request_lost_before_sns_is_not_sent(
    moto: MotoServer, idempotency_table: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    topic_arn, inbox = subscribed_inbox(moto, fifo=False)
    sns = moto.client("sns", retries=NO_RETRIES)
    lose_first_answers(sns, arrive=False)

    changes = notify_all(moto, idempotency_table, SnsPublisher(sns, topic_arn))

    assert inbox_event_ids(moto.client("sqs"), inbox) == []  # at most once: none arrived
    warned = [r.getMessage() for r in caplog.records if "outcome unknown" in r.getMessage()]
    assert len(warned) == len(changes)
    assert all(str(envelope.id) in " ".join(warned) for envelope in changes)


def test_resending_unknown_outcomes_gives_one_extra_per_lost_answer_with_the_event_id(
    moto: MotoServer, idempotency_table: tuple[Any, str]
) -> None:
    topic_arn, inbox = subscribed_inbox(moto, fifo=False)
    sns = moto.client("sns", retries=NO_RETRIES)
    lose_first_answers(sns)

    publisher = SnsPublisher(sns, topic_arn, resend_unknown=True)
    changes = notify_all(moto, idempotency_table, publisher)

    received = Counter(inbox_event_ids(moto.client("sqs"), inbox))
    assert received == Counter({str(envelope.id): 2 for envelope in changes})


def test_a_fifo_topic_sends_one_per_status_change_under_lost_answers(
    moto: MotoServer, idempotency_table: tuple[Any, str]
) -> None:
    topic_arn, inbox = subscribed_inbox(moto, fifo=True)
    sns = moto.client("sns")  # botocore's own retries re-send the same deduplication id
    lost = lose_first_answers(sns)

    changes = notify_all(moto, idempotency_table, SnsPublisher(sns, topic_arn))

    received = Counter(inbox_event_ids(moto.client("sqs"), inbox))
    assert len(lost) == len(changes)
    assert received == Counter({str(envelope.id): 1 for envelope in changes})


def test_a_client_that_retries_by_itself_is_refused_for_a_standard_topic(
    moto: MotoServer,
) -> None:
    topic_arn, _ = subscribed_inbox(moto, fifo=False)
    with pytest.raises(ValueError, match="publish_client_config"):
        SnsPublisher(moto.client("sns"), topic_arn)
