"""Queues with dead-letter queues on the test moto server, and sending envelopes to them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from tests.support.moto_server import MotoServer, moto_server


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    """The session's moto server, emptied for this test."""
    server = moto_server()
    server.reset()
    yield server


def queue_with_dead_letters(
    sqs: Any, name: str, *, max_receives: int = 3, visibility_timeout: int = 30
) -> tuple[str, str]:
    """Create queue ``name`` whose messages go to ``name-dlq`` after ``max_receives``."""
    dead_letter_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(
        QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(max_receives)}
            ),
        },
    )["QueueUrl"]
    return url, dead_letter_url


def send_bodies(sqs: Any, url: str, bodies: Iterable[str]) -> None:
    """Send each body as one message, ten per call, in the order given."""
    pending = list(bodies)
    for start in range(0, len(pending), 10):
        chunk = pending[start : start + 10]
        response = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)],
        )
        assert not response.get("Failed"), response


def queue_depth(sqs: Any, url: str) -> int:
    """Messages on the queue, visible or in flight."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
