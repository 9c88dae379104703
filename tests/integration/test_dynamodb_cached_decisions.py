"""Cached decisions on DynamoDB Local, in both write modes: two services, each its own cache."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.dynamodb import DynamoDBFactory
from orders import OrderRuleError, OrderService
from tests.support import cached_decisions
from tests.support.cached_decisions import LINES, OTHER_LINES
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb


class CachedDecisions(DynamoDBLocalTestCase):
    write_mode = "transactional"

    def service(self) -> OrderService:
        env = {
            **self.dynamodb_env(),
            "DYNAMODB_WRITE_MODE": self.write_mode,
            "ORDERS_RETRY_BACKOFF_SECONDS": "0",
        }
        service = OrderService(env)
        self.addCleanup(service.close)
        return service

    def test_every_scenario_of_two_caches(self) -> None:
        for scenario in cached_decisions.SCENARIOS:
            with self.subTest(scenario.__name__):
                scenario(self.service(), self.service())

    def test_a_command_on_a_cached_order_is_one_request_and_a_refusal_one_read(self) -> None:
        service = self.service()
        assert isinstance(service.factory, DynamoDBFactory)
        metrics = service.factory.datastore.metrics
        order_id = service.place_order("customer-1", LINES.items, "EUR").order_id

        before = metrics.snapshot()
        self.assertEqual(service.change_lines(order_id, OTHER_LINES.items), 2)
        changed = metrics.snapshot() - before
        self.assertEqual(changed.round_trips, 1)
        self.assertNotIn("Query", changed.by_operation)

        before = metrics.snapshot()
        with self.assertRaises(OrderRuleError):
            service.ship(order_id)
        refused = metrics.snapshot() - before
        self.assertEqual((refused.round_trips, refused.by_operation["Query"].calls), (1, 1))

        before = metrics.snapshot()
        self.assertEqual(service.confirm_payment(order_id, "pay-1", Decimal("9.00")), 3)
        self.assertEqual((metrics.snapshot() - before).round_trips, 1)


class TestCachedDecisionsTransactional(CachedDecisions):
    write_mode = "transactional"


class TestCachedDecisionsIndexed(CachedDecisions):
    write_mode = "indexed"


del CachedDecisions  # Only its two modes run.
