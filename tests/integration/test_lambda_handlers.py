"""The deployed Lambda entry points report their metrics (on DynamoDB Local)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from adapters.deploy.template import HANDLERS
from adapters.lambdas import indexer as indexer_module
from adapters.lambdas.indexer import handler as indexer
from orders import OrderLine, OrderService
from tests.support.dynamodb_local import DynamoDBLocalTestCase


class TestIndexerHandler(DynamoDBLocalTestCase):
    @pytest.fixture(autouse=True)
    def _capsys(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def test_it_indexes_the_batch_and_reports_the_age_of_its_newest_record(self) -> None:
        env = {**self.dynamodb_env(), "DYNAMODB_WRITE_MODE": "indexed"}
        service = OrderService(env=env)
        placed = service.place_order("c-1", [OrderLine("A", 1, Decimal("2.00"))], "EUR")
        service.confirm_payment(placed.order_id, "pay-1", Decimal("2.00"))
        records = self.stream_records()
        lambda_env = {
            **env,
            "ORDERS_METRICS": "emf",
            "ORDERS_METRICS_NAMESPACE": "Test/Indexer",
        }
        with pytest.MonkeyPatch.context() as patch:
            for name, value in lambda_env.items():
                patch.setenv(name, value)
            indexer_module._indexer.cache_clear()
            self.capsys.readouterr()
            result = indexer({"Records": records}, None)

        assert result["indexed"] == 2
        assert service.recorder.max_notification_id() == 2
        (line,) = [json.loads(text) for text in self.capsys.readouterr().out.splitlines()]
        assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Test/Indexer"
        (lag,) = (
            line["IndexerLag"] if isinstance(line["IndexerLag"], list) else [line["IndexerLag"]]
        )
        assert 0 <= lag < 120_000
        assert HANDLERS["Indexer"] == "adapters.lambdas.indexer.handler"
