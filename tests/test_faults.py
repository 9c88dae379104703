"""The fault model reaches botocore as AWS's own faults would, and is reproducible."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from adapters.dynamodb.table import create_table_if_missing
from tests.support.dynamodb_local import dynamodb_local
from tests.support.faults import Faults
from tests.support.moto_server import moto_server

pytestmark = pytest.mark.dynamodb

RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 3})


def dynamodb() -> Any:
    local = dynamodb_local()
    return boto3.client(
        "dynamodb",
        endpoint_url=local.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=RETRIES,
    )


@pytest.fixture(scope="module")
def table() -> str:
    name = "faults-model"
    create_table_if_missing(dynamodb_local().client(), name)
    return name


def put(client: Any, table: str, key: str) -> Any:
    return client.put_item(
        TableName=table,
        Item={"pk": {"S": key}, "sk": {"N": "1"}},
        ConditionExpression="attribute_not_exists(pk)",
    )


@pytest.mark.parametrize(
    ("kind", "raised"),
    [
        ("throttle", ClientError),
        ("server_error", ClientError),
        ("reset", ConnectionClosedError),
        ("lost_answer", ConnectionClosedError),
    ],
)
def test_every_attempt_faulted_reaches_the_caller_after_botocores_retries(
    table: str, kind: str, raised: type[Exception]
) -> None:
    client = dynamodb()
    faults = Faults(seed=1, operations=("PutItem",), **{kind: 1.0})  # type: ignore[arg-type]
    faults.install(client)
    with pytest.raises(raised):
        put(client, table, kind)
    assert faults.injected == {(kind, "PutItem"): 3}
    stored = (
        dynamodb_local()
        .client()
        .get_item(TableName=table, Key={"pk": {"S": kind}, "sk": {"N": "1"}}, ConsistentRead=True)
    )
    assert ("Item" in stored) == (kind == "lost_answer")  # Only a lost answer was applied.


def test_one_lost_answer_is_retried_into_a_condition_failure_on_the_callers_own_item(
    table: str,
) -> None:
    client = dynamodb()
    faults = Faults(seed=1, operations=("PutItem",))
    faults.install(client)
    with faults.once("lost_answer"), pytest.raises(ClientError, match="ConditionalCheckFailed"):
        put(client, table, "own-item")


def test_a_burst_outlasts_botocores_retries_then_ends(table: str) -> None:
    client = dynamodb()
    faults = Faults(seed=1, operations=("PutItem",))
    faults.install(client)
    faults.start_burst(4)
    with pytest.raises(ClientError, match="ThrottlingException"):
        put(client, table, "burst")
    assert put(client, table, "burst")["ResponseMetadata"]["RetryAttempts"] == 1


@pytest.mark.parametrize(
    ("service", "operation", "code"),
    [
        ("sqs", "CreateQueue", "RequestThrottled"),
        ("sns", "CreateTopic", "Throttling"),
        ("events", "PutEvents", "ThrottlingException"),
        ("cloudwatch", "PutMetricData", "Throttling"),
    ],
)
def test_throttling_is_spoken_in_each_services_protocol(
    service: str, operation: str, code: str
) -> None:
    client = moto_server().client(service, retries={"mode": "standard", "total_max_attempts": 2})
    Faults(seed=1, throttle=1.0, operations=(operation,)).install(client)
    calls = {
        "CreateQueue": lambda: client.create_queue(QueueName="throttled"),
        "CreateTopic": lambda: client.create_topic(Name="throttled"),
        "PutEvents": lambda: client.put_events(
            Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}]
        ),
        "PutMetricData": lambda: client.put_metric_data(
            Namespace="n", MetricData=[{"MetricName": "m", "Value": 1.0}]
        ),
    }
    with pytest.raises(ClientError) as raised:
        calls[operation]()
    assert raised.value.response["Error"]["Code"] == code


def test_the_same_seed_injects_the_same_faults() -> None:
    def drawn(seed: int) -> list[str | None]:
        faults = Faults(seed=seed, throttle=0.2, reset=0.2, lost_answer=0.2)
        return [faults._draw() for _ in range(200)]

    assert drawn(7) == drawn(7)
    assert drawn(7) != drawn(8)
