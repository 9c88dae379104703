"""What the README's AWS-side commands need, made on an endpoint by API calls (``orders aws
setup``): for DynamoDB Local, moto and development accounts; the stack itself is
``template.json``.

:func:`set_up_aws` creates what is missing and brings what exists up to what is asked, so it is
safe to repeat: the event store table (with its stream when the write mode needs one, turned on
if the table has none), the view table, the idempotency table of the notifications, the bus with
its rules, queues and dead-letter queues (:func:`~adapters.eventbridge.bus.set_up_bus`), and the
SNS topics (notifications, alarms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from adapters.dynamodb.table import create_table_if_missing
from adapters.eventbridge.bus import BusResources, set_up_bus
from adapters.eventbridge.wiring import BusWiring
from adapters.sns.idempotency import create_idempotency_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

TOPICS: Final = ("notifications", "alarms")
"""The SNS topics, named ``<prefix>-<topic>``."""


@dataclass(frozen=True)
class AwsTables:
    """The tables to set up: the event store's (``stream``: the indexed write mode reads it),
    the view store's and the notifications' idempotency table."""

    events: str
    views: str
    idempotency: str
    stream: bool


@dataclass(frozen=True)
class AwsResources:
    """What :func:`set_up_aws` made or found: the tables, the bus's resources, topic ARNs."""

    tables: AwsTables
    bus: BusResources
    topic_arns: Mapping[str, str]


def set_up_aws(
    dynamodb: DynamoDBClient,
    events: EventBridgeClient,
    sqs: SQSClient,
    sns: SNSClient,
    *,
    tables: AwsTables,
    wiring: BusWiring,
    topics: Sequence[str] = TOPICS,
) -> AwsResources:
    """Creates (or brings up to date) every resource of ``tables``, ``wiring`` and ``topics``."""
    create_table_if_missing(dynamodb, tables.events, "N", stream=tables.stream)
    if tables.stream:
        _stream_on(dynamodb, tables.events)
    create_table_if_missing(dynamodb, tables.views, "S", stream=False)
    create_idempotency_table(dynamodb, tables.idempotency)
    bus = set_up_bus(events, sqs, wiring)
    arns = {
        topic: sns.create_topic(Name=f"{wiring.prefix}-{topic}")["TopicArn"] for topic in topics
    }
    return AwsResources(tables, bus, arns)


def _stream_on(dynamodb: DynamoDBClient, table: str) -> None:
    """Turns on the table's stream (``NEW_IMAGE``, as the indexer reads it) if it has none."""
    description = dynamodb.describe_table(TableName=table)["Table"]
    if description.get("StreamSpecification", {}).get("StreamEnabled"):
        return
    dynamodb.update_table(
        TableName=table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    dynamodb.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
