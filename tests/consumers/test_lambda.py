"""The Lambda handler, fed SQS events in the shape AWS sends, reports exactly the failures."""

from __future__ import annotations

import hashlib
import json
import time
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from adapters.bootstrap.consumers import ConsumerConfigError, record_handler
from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, Dispatcher
from adapters.lambdas import consumers as lambda_consumers
from adapters.lambdas.consumers import batch_handler
from adapters.settings import Settings
from schemas.contract import Envelope, to_json
from schemas.payments import payment_succeeded
from tests.consumers.builders import demo_service, logged_envelopes
from tests.consumers.test_sqs_consumer import body

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:order-views"


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    """An SQS event as Lambda's event source mapping delivers it, checked by ``SqsModel``."""
    now = str(int(time.time() * 1000))
    event = {
        "Records": [
            {
                "messageId": str(uuid4()),
                "receiptHandle": f"AQEB{uuid4().hex}",
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-1",
            }
            for text in bodies
        ]
    }
    SqsModel.model_validate(event)
    return event


def test_the_lambda_handler_returns_exactly_the_failed_message_ids() -> None:
    envelopes = logged_envelopes(demo_service(3))
    broken = json.loads(body(envelopes[0]))
    del broken["detail"]["orderId"]
    bodies = [body(envelopes[0]), "not json", body(envelopes[1]), json.dumps(broken)]
    bodies += [body(envelope) for envelope in envelopes[2:]]
    refused = envelopes[-1].id
    handled: list[Envelope] = []

    def handler(envelope: Envelope) -> None:
        if envelope.id == refused:
            msg = "refused by the handler"
            raise RuntimeError(msg)
        handled.append(envelope)

    event = sqs_event(bodies)
    response = batch_handler(Dispatcher([(ORDER_DETAIL_TYPES, handler)]))(event, None)

    records = event["Records"]
    expected = {records[1]["messageId"], records[3]["messageId"], records[-1]["messageId"]}
    assert {item["itemIdentifier"] for item in response["batchItemFailures"]} == expected
    assert len(response["batchItemFailures"]) == 3
    assert len(handled) == len(envelopes) - 1


def test_a_batch_that_fails_whole_is_reported_not_raised() -> None:
    event = sqs_event(["{", "[]"])
    response = batch_handler(Dispatcher([]))(event, None)
    assert [item["itemIdentifier"] for item in response["batchItemFailures"]] == [
        record["messageId"] for record in event["Records"]
    ]


def test_a_clean_batch_reports_no_failures() -> None:
    envelopes = logged_envelopes(demo_service(2))
    response = batch_handler(Dispatcher([]))(sqs_event([body(e) for e in envelopes]), None)
    assert response["batchItemFailures"] == []


def test_the_deployed_handler_builds_its_consumers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERS_BACKEND", "memory")
    monkeypatch.setenv("ORDERS_CONSUMERS", "saga")
    lambda_consumers._configured.cache_clear()
    unknown_order = to_json(payment_succeeded(uuid4(), "pay-1", Decimal("5"), "EUR"))
    event = sqs_event([unknown_order, body(logged_envelopes(demo_service(1))[0])])
    try:
        response = lambda_consumers.handler(event, None)
    finally:
        lambda_consumers._configured.cache_clear()
    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]


def test_an_unknown_consumer_is_named() -> None:
    with pytest.raises(ConsumerConfigError, match="unknown consumer"):
        record_handler(Settings.load(backend="memory", consumers="views,bogus"))


def test_the_deployed_handler_counts_poison_messages_as_failures_in_emf(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORDERS_BACKEND", "memory")
    monkeypatch.setenv("ORDERS_CONSUMERS", "saga")
    monkeypatch.setenv("ORDERS_METRICS", "emf")
    monkeypatch.setenv("ORDERS_METRICS_NAMESPACE", "Test/Lambda")
    lambda_consumers._configured.cache_clear()
    orders = [body(envelope) for envelope in logged_envelopes(demo_service(2))]
    unknown_order = to_json(payment_succeeded(uuid4(), "pay-1", Decimal("5"), "EUR"))
    event = sqs_event(["not json", *orders, unknown_order, '{"id": "poison"}'])
    capsys.readouterr()
    try:
        response = lambda_consumers.handler(event, None)
    finally:
        lambda_consumers._configured.cache_clear()

    assert len(response["batchItemFailures"]) == 3
    counts: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        blob = json.loads(line)
        if "_aws" in blob:
            assert blob["Consumer"] == "saga"
            for name in ("ConsumerSuccesses", "ConsumerFailures"):
                counts[name] = counts.get(name, 0) + sum(blob.get(name, []))
    assert counts == {"ConsumerSuccesses": len(orders), "ConsumerFailures": 3}
