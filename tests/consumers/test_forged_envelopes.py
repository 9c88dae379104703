"""Forged and inconsistent envelopes, through the SQS worker (moto) and the Lambda handler: each
fails with its reason (dead-lettered after its receives), and the views equal a replay of the
store, as a neighbour service or an attacker on the bus would have them otherwise."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from adapters.cli.demo import run_demo
from adapters.consumers.dispatcher import ORDER_DETAIL_TYPES, Dispatcher
from adapters.dynamodb.datastore import DynamoDBDatastore
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.lambdas import consumers as lambda_consumers
from adapters.lambdas.consumers import batch_handler
from adapters.sqs.dead_letters import dead_letters
from adapters.sqs.worker import SqsConsumer
from orders import OrderService
from projections.downstream import TRACKER_VIEW, DownstreamProjection, store_reader
from projections.memory import InMemoryViewStore
from schemas.contract import Envelope, encode_json
from tests.consumers.builders import demo_service, logged_envelopes, replayed, view_contents
from tests.consumers.queues import queue_depth, queue_with_dead_letters, send_bodies
from tests.consumers.test_lambda import sqs_event
from tests.consumers.test_sqs_consumer import body, drain
from tests.support.dynamodb_local import dynamodb_local
from tests.support.moto_server import MotoServer


def document(envelope: Envelope) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(body(envelope))
    return parsed


def forgeries(envelopes: list[Envelope]) -> tuple[dict[str, str], dict[str, str], str]:
    """Bodies sent before the real ones, bodies sent after them (by the reason each must
    fail with), and the ghost order's id."""
    by_order: dict[str, list[Envelope]] = {}
    for envelope in envelopes:
        by_order.setdefault(str(envelope.detail.order_id), []).append(envelope)
    first, second, third = [events for events in by_order.values() if len(events) > 1][:3]

    ghost = document(first[0])
    ghost["id"] = str(uuid4())
    ghost["detail"]["orderId"] = ghost_order = str(uuid4())

    copy_first = document(first[1])  # a forged copy of a real event, arriving before it
    copy_first["detail"]["amount"] = Decimal(999999)

    forged_id = document(second[0])
    forged_id["id"] = str(uuid4())

    wrong_source = document(third[0])
    wrong_source["source"] = "payment-service"

    next_version = document(second[-1])  # the order's next version, which the store never held
    next_version["id"] = str(uuid4())
    next_version["detail-type"] = "OrderCancelled"
    next_version["detail"] |= {
        "streamVersion": second[-1].detail.stream_version + 1,
        "status": "cancelled",
        "reason": "forged",
    }
    for name in ("lines", "paymentId"):
        next_version["detail"].pop(name, None)

    changed = document(third[-1])  # a known id, already applied, with other content
    changed["detail"]["customerId"] = "someone-else"

    before = {
        "forged envelope: ghost order": encode_json(ghost),
        "forged envelope: changed payload": encode_json(copy_first),
        "forged envelope: forged id": encode_json(forged_id),
        "source: Input should be 'order-service'": encode_json(wrong_source),
    }
    after = {
        "forged envelope: forged version": encode_json(next_version),
        "forged envelope: changed payload: ": encode_json(changed),
    }
    return before, after, ghost_order


def projection(service: OrderService) -> tuple[InMemoryViewStore, Dispatcher]:
    store = InMemoryViewStore()
    views = DownstreamProjection(store, store_events=store_reader(service))
    return store, Dispatcher([(ORDER_DETAIL_TYPES, views)])


def assert_views_are_the_replay(
    store: InMemoryViewStore, envelopes: list[Envelope], ghost_order: str
) -> None:
    assert view_contents(store, envelopes) == view_contents(replayed(envelopes), envelopes)
    assert store.get(TRACKER_VIEW, ghost_order, "") is None


def test_forgeries_through_the_sqs_worker_are_dead_lettered_with_their_reasons(
    moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    service = demo_service(12)
    envelopes = logged_envelopes(service)
    before, after, ghost_order = forgeries(envelopes)
    sqs = moto.client("sqs")
    url, dead_letter_url = queue_with_dead_letters(sqs, "forged")
    store, dispatcher = projection(service)
    consumer = SqsConsumer(sqs, url, dispatcher, wait_seconds=0, retry_delay=0)

    send_bodies(sqs, url, [*before.values(), *(body(envelope) for envelope in envelopes)])
    drain(consumer, sqs, url)
    send_bodies(sqs, url, after.values())
    with caplog.at_level(logging.ERROR, logger="projections.downstream"):
        drain(consumer, sqs, url)

    reasons = {letter.body: letter.reason for letter in dead_letters(sqs, dead_letter_url)}
    assert len(reasons) == len(before) + len(after)
    for reason, forged in {**before, **after}.items():
        assert reason in reasons[forged], (reason, reasons[forged])
    assert any("duplicate with other content" in r.getMessage() for r in caplog.records)
    assert_views_are_the_replay(store, envelopes, ghost_order)
    assert queue_depth(sqs, url) == 0


def test_forgeries_through_the_lambda_handler_fail_alone_with_their_reasons(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = demo_service(12)
    envelopes = logged_envelopes(service)
    before, after, ghost_order = forgeries(envelopes)
    store, dispatcher = projection(service)
    handle = batch_handler(dispatcher)

    with caplog.at_level(logging.WARNING, logger="adapters.lambdas.consumers"):
        for bodies in (
            [*before.values(), *(body(envelope) for envelope in envelopes)],
            list(after.values()),
        ):
            event = sqs_event(bodies)
            failed = {item["itemIdentifier"] for item in handle(event, None)["batchItemFailures"]}
            forged = set(before.values()) | set(after.values())
            expected = {r["messageId"] for r in event["Records"] if r["body"] in forged}
            assert failed == expected
            for record in event["Records"]:
                if record["body"] in forged:
                    reason = next(k for k, v in {**before, **after}.items() if v == record["body"])
                    lines = [r.getMessage() for r in caplog.records]
                    assert any(record["messageId"] in line and reason in line for line in lines)
    assert_views_are_the_replay(store, envelopes, ghost_order)


@pytest.mark.dynamodb
def test_the_deployed_lambda_handler_verifies_against_the_store_on_dynamodb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deployed entry point, built from the environment as the template gives it (the
    event store and the views on DynamoDB Local): each forgery fails, the rest is applied,
    and the views on DynamoDB equal a replay of the store."""
    server = dynamodb_local()
    table = server.new_table()
    env = {**server.env(table), "ORDERS_CONSUMERS": "views", "DYNAMODB_CREATE_TABLE": "y"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    service = OrderService(env=env)
    run_demo(service, 8, seed=21)
    envelopes = logged_envelopes(service)
    before, after, ghost_order = forgeries(envelopes)
    lambda_consumers._configured.cache_clear()
    try:
        for bodies in (
            [*before.values(), *(body(envelope) for envelope in envelopes)],
            list(after.values()),
        ):
            event = sqs_event(bodies)
            response = lambda_consumers.handler(event, None)
            failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
            forged = set(before.values()) | set(after.values())
            assert failed == {r["messageId"] for r in event["Records"] if r["body"] in forged}
        views = DynamoDBViewStore(DynamoDBDatastore(server.client(), f"{table}-views"))
        assert view_contents(views, envelopes) == view_contents(replayed(envelopes), envelopes)
        assert views.get(TRACKER_VIEW, ghost_order, "") is None
    finally:
        lambda_consumers._configured.cache_clear()
        for name in (f"{table}-views", table):
            if name in server.client().list_tables()["TableNames"]:
                server.delete_table(name)
