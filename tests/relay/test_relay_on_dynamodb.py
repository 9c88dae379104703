"""The relay on the DynamoDB event store (DynamoDB Local): as the Lambda function runs it, and
on the indexed write mode's log."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from unittest import mock

import pytest

from adapters.bootstrap.relay import eventbridge_destination, relay_for, relay_name
from adapters.cli.demo import run_demo
from adapters.dynamodb import DynamoDBFactory
from adapters.dynamodb.indexer import indexer_of
from adapters.dynamodb.lease import DynamoDBLease
from adapters.lambdas import relay as relay_lambda
from adapters.local.bus import InProcessBus, LocalDeadLetters
from orders import OrderLine, OrderService
from schemas import Envelope, event_id, parse_envelope
from tests.relay.support import (
    FAST,
    assert_keeps_the_contract,
    fresh_moto,
    stored_order_events,
    wired_bus,
)
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb


class Context:
    """What the handler reads of Lambda's context object."""

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class TestRelayLambdaOnDynamoDB(DynamoDBLocalTestCase):
    def test_the_lambda_publishes_the_dynamodb_log_once_and_then_nothing(self) -> None:
        """Given 20 orders' events in a DynamoDB event store When the Lambda handler runs
        Then the queue receives each event once, valid, with the lease kept in the table;
        a second invocation publishes nothing (lag 0)."""
        server = fresh_moto()
        bus = wired_bus(server)
        env = {**self.dynamodb_env(), **server.env(), "ORDERS_RELAY_LEASE_SECONDS": "5"}
        with mock.patch.dict(os.environ, env):
            service = OrderService(env=self.dynamodb_env())
            for number in range(20):
                placed = service.place_order(
                    f"c-{number}", [OrderLine("A", 2, Decimal("0.10"))], "EUR"
                )
                service.confirm_payment(placed.order_id, f"pay-{number}", Decimal("0.20"))
            stored = [str(event_id(event)) for event in stored_order_events(service)]
            relay_lambda._relay.cache_clear()
            self.addCleanup(relay_lambda._relay.cache_clear)

            first = relay_lambda.handler({}, Context())
            second = relay_lambda.handler({}, Context())

        bodies = bus.received("views")
        self.assertEqual(first, {"published": 40, "position": 40, "lag": 0, "parked": 0})
        self.assertEqual(second, {"published": 0, "position": 40, "lag": 0, "parked": 0})
        self.assertEqual(sorted(json.loads(b)["id"] for b in bodies), sorted(stored))
        for body in bodies:
            assert_keeps_the_contract(body)
        name = relay_name(eventbridge_destination(bus.wiring.bus_name))
        holder = DynamoDBLease(self.datastore, name, "orderservice_lease").holder()
        self.assertIsNotNone(holder)

    def test_the_relay_publishes_the_indexed_mode_log_as_its_indexer_fills_it(self) -> None:
        """Given orders saved in the indexed write mode (no log ids until the indexer runs)
        When the relay runs before and after the indexer caught up
        Then it publishes nothing first, then every stored event once, each order's events in
        version order, with the lease on DynamoDB."""
        service = OrderService(env={**self.dynamodb_env(), "DYNAMODB_WRITE_MODE": "indexed"})
        self.addCleanup(service.close)
        run_demo(service, 15, seed=6)
        received: list[Envelope] = []

        def receive(body: str) -> None:
            received.append(parse_envelope(body))

        bus = InProcessBus({"views": receive}, LocalDeadLetters(":memory:"))
        relay = relay_for(service, bus, settings=FAST)

        self.assertEqual(relay.run_until_caught_up(deadline=float("inf")), 0)
        assert isinstance(service.factory, DynamoDBFactory)
        indexed = indexer_of(service.factory).catch_up()
        published = relay.run_until_caught_up(deadline=float("inf"))

        stored = {str(event_id(event)) for event in stored_order_events(service)}
        self.assertEqual((published, len(stored)), (indexed, indexed))
        self.assertEqual(sorted(str(e.id) for e in received), sorted(stored))
        versions: dict[object, list[int]] = {}
        for envelope in received:
            versions.setdefault(envelope.detail.order_id, []).append(envelope.detail.stream_version)
        self.assertTrue(all(v == list(range(1, len(v) + 1)) for v in versions.values()))
        self.assertIsInstance(relay.lease, DynamoDBLease)
