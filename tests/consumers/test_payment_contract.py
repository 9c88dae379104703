"""The payment service's contract as published: the README's boto3 example, through the
template's own saga rule and transformer (moto's CloudFormation), confirms an order once; and
the template's transformers, applied as EventBridge documents it, deliver each producer's
envelope unchanged. The relay's bus entry carries the envelope once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

from adapters.consumers.dispatcher import PAYMENT_DETAIL_TYPES, Dispatcher, parse_envelope
from adapters.consumers.saga import PaymentSaga
from adapters.deploy.template import template
from adapters.eventbridge.bus import EventBridgePublisher
from adapters.eventbridge.wiring import bus_entry
from adapters.sqs.worker import SqsConsumer, queue_url
from orders import OrderEvent, OrderLine, OrderService
from schemas import to_envelope, to_json
from schemas.payments import PAYMENT_ENVELOPE, payment_failed, payment_succeeded
from tests.consumers.queues import queue_depth
from tests.consumers.test_sqs_consumer import drain
from tests.relay.support import assert_keeps_the_contract, schema_validator, sqlite_service
from tests.support.moto_server import MotoServer, moto_server
from tests.test_readme import readme_blocks
from tests.test_stack import without_lambda_code

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")
ACCOUNT, REGION = "123456789012", "us-east-1"
TEE = [OrderLine(sku="TEE-003", quantity=2, unit_price=Decimal("19.00"))]


def assert_keeps_the_payment_contract(body: str) -> dict[str, Any]:
    """``body`` validates against its detail-type's schema file and Powertools' model."""
    document: dict[str, Any] = json.loads(body)
    schema_validator(f"{document['detail-type']}.schema.json").validate(document)
    EventBridgeModel.model_validate(document)
    return document


def readme_publish() -> Callable[..., None]:
    """The README's ``publish`` (the payment service's boto3 example), as written."""
    (block,) = [b for b in readme_blocks() if b.language == "python" and "def publish(" in b.text]
    names: dict[str, Any] = {}
    exec(compile(block.text, block.where(), "exec"), names)
    publish: Callable[..., None] = names["publish"]
    return publish


def deployed_stack(server: MotoServer, stage: str) -> dict[str, str]:
    """The template (less Lambda code) deployed on ``server``; its outputs."""
    cloudformation = server.client("cloudformation")
    name = f"orders-{stage}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps(without_lambda_code(template())),
        Parameters=[
            {"ParameterKey": "Stage", "ParameterValue": stage},
            {"ParameterKey": "CodeBucket", "ParameterValue": "unused"},
            {"ParameterKey": "CodeKey", "ParameterValue": "unused"},
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    (described,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


def test_the_readme_payment_example_confirms_an_order_once_through_the_template_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the template deployed to moto and two orders When the README's ``publish`` puts
    a PaymentSucceeded (twice, a retry) and a PaymentFailed on the stack's bus, and the saga
    consumes the stack's saga queue Then the paid order is confirmed exactly once, caused by the
    payment event, the other is cancelled, and nothing is dead-lettered."""
    server = moto_server()
    server.reset()
    outputs = deployed_stack(server, "contract")
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    service = sqlite_service(tmp_path)
    paid_order = service.place_order("c-9", TEE, "EUR").order_id
    declined_order = service.place_order("c-10", TEE, "EUR").order_id
    paid = payment_succeeded(paid_order, "pay-9", Decimal("38.00"), "EUR")
    declined = payment_failed(declined_order, "pay-10", Decimal("38.00"), "EUR", "card declined")

    publish = readme_publish()
    for envelope in (paid, paid, declined):
        publish(envelope, bus_name=outputs["EventBusName"])

    sqs = server.client("sqs")
    url = queue_url(sqs, f"{outputs['EventBusName']}-saga")
    bodies: list[str] = []
    saga = Dispatcher([(PAYMENT_DETAIL_TYPES, PaymentSaga(service))])

    def consume(body: str) -> None:
        assert_keeps_the_payment_contract(body)
        bodies.append(body)
        saga(body)

    drain(SqsConsumer(sqs, url, consume, wait_seconds=0), sqs, url, limit=20)
    assert len(bodies) == 3
    confirmed = service.history(paid_order)
    assert [entry.type_name for entry in confirmed] == ["OrderPlaced", "PaymentConfirmed"]
    assert confirmed[1].causation_id == str(paid.id)
    assert [e.type_name for e in service.history(declined_order)] == [
        "OrderPlaced",
        "OrderCancelled",
    ]
    assert queue_depth(sqs, queue_url(sqs, f"{outputs['EventBusName']}-saga-dlq")) == 0


def aws_event(entry: dict[str, str]) -> dict[str, Any]:
    """The event EventBridge builds from a ``PutEvents`` entry, as it documents it."""
    return {
        "version": "0",
        "id": str(uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": json.loads(entry["Detail"]),
    }


def apply_as_aws(transformer: dict[str, Any], event: dict[str, Any]) -> str:
    """An ``InputTransformer`` applied as EventBridge documents it: each path (dot notation,
    dashes) is looked up in the event; a placeholder in quotes gets a string value's text, a
    bare one the value's JSON. The account and region are the template's ``Fn::Sub``."""
    text = transformer["InputTemplate"]["Fn::Sub"]
    text = text.replace("${AWS::AccountId}", ACCOUNT).replace("${AWS::Region}", REGION)
    values: dict[str, Any] = {}
    for name, path in transformer["InputPathsMap"].items():
        value: Any = event
        for step in path.removeprefix("$.").split("."):
            value = value[step]
        values[name] = value

    def fill(match: re.Match[str]) -> str:
        quote, name = match.group(1), match.group(2)
        value = values[name]
        if quote:
            assert isinstance(value, str) and not set(value) & {'"', "\\"}, value
            return f'"{value}"'
        return json.dumps(value)

    return re.sub(r'("?)<([A-Za-z]+)>\1', fill, text)


def template_target(route: str) -> dict[str, Any]:
    resources = template()["Resources"]
    (target,) = resources[f"{route.capitalize()}Rule"]["Properties"]["Targets"]
    transformer: dict[str, Any] = target["InputTransformer"]
    return transformer


def test_the_template_transformers_deliver_each_producers_envelope_as_aws_applies_them() -> None:
    """Given a payment service's and the relay's entries When the template's saga and views
    transformers are applied as EventBridge applies them Then the queue gets exactly the
    envelope each producer published, valid against the contract and Powertools' model."""
    service = OrderService()
    placed = service.place_order("c-1", TEE, "EUR")
    paid = payment_succeeded(placed.order_id, "pay-1", Decimal("38.00"), "EUR", correlation_id="x")
    body = apply_as_aws(template_target("saga"), aws_event(bus_entry(paid)))
    assert PAYMENT_ENVELOPE.validate_json(body) == paid
    assert assert_keeps_the_payment_contract(body)["account"] == ACCOUNT

    (event,) = [e for e in service.events.get(placed.order_id) if isinstance(e, OrderEvent)]
    envelope = to_envelope(event)
    body = apply_as_aws(template_target("views"), aws_event(bus_entry(envelope)))
    assert parse_envelope(body) == envelope
    assert_keeps_the_contract(body)


def test_the_relays_bus_entry_carries_the_envelope_once() -> None:
    """Given an order event When the relay makes its ``PutEvents`` entry Then ``Detail`` is
    exactly the contract envelope, and the entry's size counts it once."""
    service = OrderService()
    placed = service.place_order("c-1", TEE, "EUR")
    notification = service.recorder.select_notifications(1, 1)[0]
    event = service.mapper.to_domain_event(notification)
    assert isinstance(event, OrderEvent)
    envelope = to_envelope(event)
    assert envelope.detail.order_id == UUID(str(placed.order_id))
    entry = EventBridgePublisher(client=None, bus_name="orders").entry(notification, envelope)  # type: ignore[arg-type]
    assert entry.body["Detail"] == to_json(envelope)
    text = to_json(envelope)
    assert entry.size == 14 + len(b"order-service") + len(b"OrderPlaced") + len(text.encode())
