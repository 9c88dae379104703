"""The template deployed to moto's CloudFormation (Lambda code aside), then the relay and a
consumer run against the tables, bus, rules and queues it created, as the functions would."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest

from adapters.bootstrap.consumers import record_handler_from_env
from adapters.bootstrap.projections import dynamodb_view_store
from adapters.bootstrap.relay import relay_for
from adapters.deploy.template import QUEUE_VISIBILITY_SECONDS, template
from adapters.eventbridge.bus import EventBridgePublisher
from adapters.sqs.worker import SqsConsumer, queue_url
from orders import OrderLine, OrderService
from projections.downstream import DownstreamQueries
from tests.relay.support import FAST, assert_keeps_the_contract
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


def test_the_relay_and_a_consumer_run_on_what_the_stack_created(
    stack: tuple[MotoServer, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, outputs = stack
    env = {
        **server.env(),
        "PERSISTENCE_MODULE": "adapters.dynamodb",
        "DYNAMODB_TABLE_NAME": outputs["EventsTableName"],
        "ORDERS_VIEWS_TABLE": outputs["ViewsTableName"],
        "ORDERS_CONSUMERS": "views",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    service = OrderService(env=env)
    for n in range(3):
        placed = service.place_order(f"customer-{n}", [OrderLine("A", 1, Decimal("4.50"))], "EUR")
        service.confirm_payment(placed.order_id, f"pay-{n}", Decimal("4.50"))
    stored = service.recorder.max_notification_id()
    assert stored == 6

    relay = relay_for(
        service,
        EventBridgePublisher(server.client("events"), outputs["EventBusName"]),
        settings=FAST,
    )
    assert relay.run_until_caught_up(time.time() + 30) == stored
    assert relay.status().lag == 0

    sqs = server.client("sqs")
    url = queue_url(sqs, "orders-test-views")
    bodies: list[str] = []
    handle = record_handler_from_env()

    def consume(body: str) -> None:
        assert_keeps_the_contract(body)
        handle(body)
        bodies.append(body)

    consumer = SqsConsumer(sqs, url, consume, wait_seconds=0)
    deadline = time.time() + 30
    while len(bodies) < stored and time.time() < deadline:
        outcome = consumer.poll()
        assert outcome.failed == []
    assert len(bodies) == stored

    queries = DownstreamQueries(dynamodb_view_store(service, outputs["EventsTableName"]))
    page = queries.customer_orders("customer-1")
    assert len(page.rows) == 1
    assert page.rows[0].data["status"] == "processing"

    # A poison message is dead-lettered on its third receive, to the queue the stack made.
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    poisoned = SqsConsumer(sqs, url, consume, wait_seconds=0, retry_delay=0)
    outcomes = [poisoned.poll() for _ in range(3)]
    assert [len(o.failed) for o in outcomes] == [1, 1, 1]
    assert outcomes[-1].dead_lettered == 1
    dead_letters = queue_url(sqs, "orders-test-views-dlq")
    (dead,) = sqs.receive_message(QueueUrl=dead_letters)["Messages"]
    assert dead["Body"] == "not json"
