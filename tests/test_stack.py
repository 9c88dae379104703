"""The template deployed to moto's CloudFormation (Lambda code aside), its tables made again on
DynamoDB Local, then every function's handler invoked with exactly the environment the
template gives that function, against what the stack created."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from adapters.bootstrap.projections import view_store
from adapters.bootstrap.service import order_service
from adapters.deploy.template import QUEUE_VISIBILITY_SECONDS, template
from adapters.dynamodb import DynamoDBDatastore
from adapters.dynamodb.table import create_table_if_missing
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.lambdas import consumers as lambda_consumers
from adapters.lambdas import indexer as lambda_indexer
from adapters.lambdas import projections as lambda_projections
from adapters.lambdas import relay as lambda_relay
from adapters.settings import Settings
from adapters.sns.idempotency import create_idempotency_table
from orders import OrderLine
from projections.downstream import DownstreamQueries
from projections.views import PROJECTIONS
from schemas import to_json
from schemas.payments import payment_succeeded
from tests.relay.support import assert_keeps_the_contract
from tests.support.dynamodb_local import dynamodb_local
from tests.support.logs import logging_kept
from tests.support.moto_server import MotoServer, moto_server

LAMBDA_CODE = {
    "AWS::Lambda::Function",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Permission",
}
STACK = "orders-test"


def refers_to(value: Any, names: set[str]) -> bool:
    """Whether ``value`` has a ``Ref`` or ``Fn::GetAtt`` of one of ``names``."""
    if isinstance(value, dict):
        if value.get("Ref") in names:
            return True
        get_att = value.get("Fn::GetAtt")
        if isinstance(get_att, list) and get_att[0] in names:
            return True
        return any(refers_to(item, names) for item in value.values())
    if isinstance(value, list):
        return any(refers_to(item, names) for item in value)
    return False


def without_lambda_code(document: dict[str, Any]) -> dict[str, Any]:
    """The template less its functions and whatever refers to them (schedules, their alarms)."""
    resources = dict(document["Resources"])
    dropped = {name for name, r in resources.items() if r["Type"] in LAMBDA_CODE}
    while True:
        more = {n for n, r in resources.items() if n not in dropped and refers_to(r, dropped)}
        if not more:
            break
        dropped |= more
    kept = {name: r for name, r in resources.items() if name not in dropped}
    return {**document, "Resources": kept}


# moto's CloudFormation skips queue policies and alarms with a warning (their shape is tested
# in tests/test_template.py).
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")


@pytest.fixture(scope="module")
def stack() -> tuple[MotoServer, dict[str, str]]:
    server = moto_server()
    server.reset()
    cloudformation = server.client("cloudformation")
    document = without_lambda_code(template())
    assert {"EventsTable", "EventBus", "ViewsQueue", "ViewsRule"} <= set(document["Resources"])
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(document),
        Parameters=[
            {"ParameterKey": "Stage", "ParameterValue": "test"},
            {"ParameterKey": "CodeBucket", "ParameterValue": "unused"},
            {"ParameterKey": "CodeKey", "ParameterValue": "unused"},
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    (described,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    return server, outputs


def test_the_stack_creates_what_the_functions_need(
    stack: tuple[MotoServer, dict[str, str]],
) -> None:
    server, outputs = stack
    dynamodb = server.client("dynamodb")
    events_table = dynamodb.describe_table(TableName=outputs["EventsTableName"])["Table"]
    assert events_table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    assert events_table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    sqs = server.client("sqs")
    for route in ("views", "notifications", "saga"):
        url = sqs.get_queue_url(QueueName=f"orders-test-{route}")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["VisibilityTimeout"] == str(QUEUE_VISIBILITY_SECONDS)
        assert attributes["MessageRetentionPeriod"] == "1209600"
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["maxReceiveCount"] == 3
        assert redrive["deadLetterTargetArn"].endswith(f":orders-test-{route}-dlq")
    rules = server.client("events").list_rules(EventBusName=outputs["EventBusName"])["Rules"]
    assert {rule["Name"] for rule in rules} == {
        "orders-test-views",
        "orders-test-notifications",
        "orders-test-saga",
    }


def resolved(value: Any, names: dict[str, str]) -> Any:
    """A template value with ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` replaced by what the
    stack made (``names``: logical id or parameter -> physical name, ``X.Attr`` -> value)."""
    if isinstance(value, dict):
        if "Ref" in value:
            return names[value["Ref"]]
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            return names[f"{logical}.{attribute}"]
        if "Fn::Sub" in value:
            text: str = value["Fn::Sub"]
            for name, physical in names.items():
                text = text.replace("${" + name + "}", physical)
            return text
    return value


@pytest.fixture(scope="module")
def deployed(stack: tuple[MotoServer, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each function's ``Environment.Variables`` as the stack resolves them (its logical
    id -> variables), with the stack's tables made again on DynamoDB Local (the event store is
    never tested on moto)."""
    server, outputs = stack
    cloudformation = server.client("cloudformation")
    (described,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    names = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
    names["AWS::Region"] = server.env()["AWS_DEFAULT_REGION"]
    for resource in cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]:
        if "PhysicalResourceId" in resource:  # moto skips queue policies and alarms
            names[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    names["EventBus.Name"] = outputs["EventBusName"]
    local = dynamodb_local()
    client = local.client()
    create_table_if_missing(client, names["EventsTable"])
    DynamoDBViewStore(DynamoDBDatastore(client, names["ViewsTable"])).create_table_if_missing()
    create_idempotency_table(client, names["IdempotencyTable"])
    return {
        logical: {
            variable: str(resolved(value, names))
            for variable, value in resource["Properties"]["Environment"]["Variables"].items()
        }
        | {"AWS_LAMBDA_FUNCTION_NAME": str(resolved(resource["Properties"]["FunctionName"], names))}
        for logical, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


@contextlib.contextmanager
def function_environment(
    variables: dict[str, str], server: MotoServer
) -> Iterator[pytest.MonkeyPatch]:
    """The process environment of a function: exactly its template variables, plus what the
    Lambda runtime gives (region, credentials, and here the endpoints of moto and DynamoDB
    Local); no other setting of ours."""
    with pytest.MonkeyPatch.context() as patch, logging_kept():
        for variable in Settings.variables().values():
            patch.delenv(variable, raising=False)
        runtime = {**server.env(), "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local().endpoint_url}
        for name, value in {**runtime, **variables}.items():
            patch.setenv(name, value)
        for cached in (lambda_relay._relay, lambda_indexer._indexer, lambda_projections._runners):
            cached.cache_clear()
        lambda_consumers._configured.cache_clear()
        yield patch
        for cached in (lambda_relay._relay, lambda_indexer._indexer, lambda_projections._runners):
            cached.cache_clear()
        lambda_consumers._configured.cache_clear()


class Context:
    """The part of a Lambda context the handlers use."""

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def stream_records(table: str) -> list[Any]:
    """Every record of ``table``'s stream on DynamoDB Local, as an event source mapping
    would deliver them."""
    local = dynamodb_local()
    streams = local.streams_client()
    arn = local.client().describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records: list[Any] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records.extend(streams.get_records(ShardIterator=iterator)["Records"])
    return records


def sqs_event(sqs: Any, url: str, arn: str, expected: int) -> dict[str, Any]:
    """The messages of a queue as Lambda's SQS event source would hand them over."""
    messages: list[Any] = []
    deadline = time.monotonic() + 60
    while len(messages) < expected and time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        )
        messages.extend(answer.get("Messages", []))
    assert len(messages) == expected
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m["Attributes"],
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": "us-east-1",
        }
        for m in messages
    ]
    return {"Records": records}


def test_every_handler_runs_with_exactly_the_environment_the_template_gives_it(
    stack: tuple[MotoServer, dict[str, str]], deployed: dict[str, dict[str, str]]
) -> None:
    server, outputs = stack
    sqs = server.client("sqs")
    sns = server.client("sns")
    watch = sqs.create_queue(QueueName="notifications-watch")["QueueUrl"]
    watch_arn = sqs.get_queue_attributes(QueueUrl=watch, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=outputs["NotificationsTopicArn"],
        Protocol="sqs",
        Endpoint=watch_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )

    # A writer in the deployed configuration (the relay function's settings).
    with function_environment(deployed["RelayFunction"], server):
        service = order_service(Settings.load())
    placed = [
        service.place_order(f"customer-{n}", [OrderLine("A", 1, Decimal("4.50"))], "EUR")
        for n in range(3)
    ]
    for n, order in enumerate(placed):
        service.confirm_payment(order.order_id, f"pay-{n}", Decimal("4.50"))
    stored = 6

    with function_environment(deployed["IndexerFunction"], server):
        records = stream_records(deployed["IndexerFunction"]["DYNAMODB_TABLE_NAME"])
        assert lambda_indexer.handler({"Records": records}, Context())["indexed"] == stored
    assert service.recorder.max_notification_id() == stored

    with function_environment(deployed["ProjectionsFunction"], server):
        advanced = lambda_projections.handler({}, Context())
    assert advanced["positions"] == dict.fromkeys(PROJECTIONS, stored)

    with function_environment(deployed["RelayFunction"], server):
        relayed = lambda_relay.handler({}, Context())
    assert (relayed["published"], relayed["lag"]) == (stored, 0)

    views_url, notifications_url = outputs["ViewsQueueUrl"], outputs["NotificationsQueueUrl"]
    with function_environment(deployed["ViewsConsumerFunction"], server):
        event = sqs_event(sqs, views_url, "arn:aws:sqs:us-east-1:123456789012:views", stored)
        for record in event["Records"]:
            assert_keeps_the_contract(record["body"])
        assert lambda_consumers.handler(event, Context()) == {"batchItemFailures": []}
        views = DownstreamQueries(view_store(Settings.load(), order_service(Settings.load())))
        page = views.customer_orders("customer-1")
    assert [row.data["status"] for row in page.rows] == ["processing"]

    with function_environment(deployed["NotificationsConsumerFunction"], server):
        event = sqs_event(sqs, notifications_url, "arn:aws:sqs:::notifications", stored)
        assert lambda_consumers.handler(event, Context()) == {"batchItemFailures": []}
    notified = sqs_event(sqs, watch, "arn:aws:sqs:::watch", len(placed) * 2)["Records"]
    assert sorted(r["body"].split(" is now ")[1] for r in notified) == sorted(
        ["pending", "processing"] * len(placed)
    )

    unpaid = service.place_order("customer-9", [OrderLine("B", 2, Decimal("3.00"))], "EUR")
    payment = payment_succeeded(unpaid.order_id, "pay-9", Decimal("6.00"), "EUR")
    with function_environment(deployed["SagaConsumerFunction"], server):
        saga_url = outputs["SagaQueueUrl"]
        sqs.send_message(QueueUrl=saga_url, MessageBody=to_json(payment))
        event = sqs_event(sqs, saga_url, "arn:aws:sqs:::saga", 1)
        assert lambda_consumers.handler(event, Context()) == {"batchItemFailures": []}
    assert service.get_order(unpaid.order_id).status == "processing"
