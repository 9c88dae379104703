"""AWS clients, each with an explicit botocore configuration chosen for its caller.

Every client uses botocore's ``standard`` retry mode (throttling and transient errors retried
with jittered backoff, within a bounded number of tries) and explicit connect and read
timeouts, never boto3's defaults (60 s each, legacy retries). The relay's EventBridge client
reads under a quarter of the relay's lease, so one hung ``PutEvents`` cannot outlast the lease's
half-term while a second relay takes over. Credentials, region and endpoints are boto3's usual
(``AWS_*``, profiles, roles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from adapters.settings import Settings
from adapters.sns.publisher import publish_client_config

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient


def client_config(settings: Settings, *, read_timeout: float | None = None) -> Config:
    """The botocore configuration of a client: standard retries, explicit timeouts."""
    return Config(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout if read_timeout is None else read_timeout,
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
    )


def relay_read_timeout(settings: Settings) -> float:
    """The relay's read timeout: the general one, and under a quarter of its lease term."""
    return min(settings.read_timeout, settings.relay_lease_seconds / 4)


def events_client(settings: Settings) -> EventBridgeClient:
    """EventBridge, for the relay (see :func:`relay_read_timeout`) and the bus set-up."""
    config = client_config(settings, read_timeout=relay_read_timeout(settings))
    return boto3.client("events", config=config)


def sqs_client(settings: Settings, *, wait_seconds: int = 20) -> SQSClient:
    """SQS; its read timeout outlasts a long poll of ``wait_seconds``."""
    config = client_config(settings, read_timeout=settings.read_timeout + wait_seconds)
    return boto3.client("sqs", config=config)


def sns_client(settings: Settings) -> SNSClient:
    """SNS without botocore's blind re-sends (a re-sent ``Publish`` to a standard topic is a
    second notification: see ``adapters.sns.publisher``)."""
    config = publish_client_config(settings.connect_timeout, settings.read_timeout)
    return boto3.client("sns", config=config)


def cloudwatch_client(settings: Settings) -> CloudWatchClient:
    return boto3.client("cloudwatch", config=client_config(settings))


def dynamodb_client(settings: Settings) -> DynamoDBClient:
    """DynamoDB for what is not the event store (the idempotency table)."""
    return boto3.client("dynamodb", config=client_config(settings))
