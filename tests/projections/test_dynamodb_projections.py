"""Projections on DynamoDB Local: the runner on the DynamoDB recorder into the DynamoDB view
store, rebuild with verify, and the Lambda handler."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from adapters.bootstrap import projections as projection_workers
from adapters.cli.demo import run_demo
from adapters.dynamodb import DynamoDBDatastore, DynamoDBFactory
from adapters.dynamodb.indexer import indexer_of
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.lambdas import projections as projections_lambda
from orders import OrderService
from projections.generations import live_generation
from projections.rebuild import Rebuild
from projections.runtime import Runner
from projections.views import PROJECTIONS, OrderViews
from tests.projections.support import all_contents, replayed
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb


class TestProjectionsOnDynamoDB(DynamoDBLocalTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.views_table = f"{self.table_name}-views"
        self.store = DynamoDBViewStore(DynamoDBDatastore(self.client, self.views_table))
        self.store.create_table_if_missing()
        self.addCleanup(self.server.delete_table, self.views_table)
        self.service = OrderService(env=self.dynamodb_env())

    def test_runners_and_a_rebuild_give_the_views_of_a_replay(self) -> None:
        run_demo(self.service, 30, seed=4)
        decode = self.service.mapper.to_domain_event
        for projection in PROJECTIONS.values():
            Runner(projection, self.store, self.service.recorder, decode, batch_size=40).catch_up()
        expected = replayed(self.service.recorder, decode)
        assert all_contents(self.store, self.service.recorder, decode) == expected

        projection = PROJECTIONS["customer_orders"]
        result = Rebuild(
            projection, self.store, self.service.recorder, decode, grace_seconds=0
        ).run(verify=True)
        assert result.differences == []
        assert result.dropped_rows > 0
        assert live_generation(self.store, projection.name) == 2
        assert all_contents(self.store, self.service.recorder, decode) == expected

    def test_runners_read_the_indexed_mode_log_as_its_indexer_fills_it(self) -> None:
        service = OrderService(env={**self.dynamodb_env(), "DYNAMODB_WRITE_MODE": "indexed"})
        self.addCleanup(service.close)
        summary = run_demo(service, 15, seed=6)
        decode = service.mapper.to_domain_event
        runners = [
            Runner(projection, self.store, service.recorder, decode, batch_size=10)
            for projection in PROJECTIONS.values()
        ]
        assert [runner.catch_up() for runner in runners] == [0, 0, 0]  # no ids assigned yet
        views = OrderViews(self.store)
        order_id = summary.placed[0]
        version = service.get_order(order_id).version
        with pytest.raises(TimeoutError):
            views.wait_for_order(order_id, version, timeout=0.1)
        assert isinstance(service.factory, DynamoDBFactory)
        indexed = indexer_of(service.factory).catch_up()
        assert indexed > 0
        assert [runner.catch_up() for runner in runners] == [indexed] * 3
        views.wait_for_order(order_id, version, timeout=0.1)
        assert all_contents(self.store, service.recorder, decode) == replayed(
            service.recorder, decode
        )

    def test_the_lambda_handler_processes_what_is_new_and_returns(self) -> None:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in self.dynamodb_env().items():
                patch.setenv(name, value)
            patch.setenv("ORDERS_VIEWS_TABLE", self.views_table)
            projections_lambda._runners.cache_clear()
            context = SimpleNamespace(get_remaining_time_in_millis=lambda: 60_000)
            run_demo(self.service, 10, seed=2)
            head = self.service.recorder.max_notification_id()
            first = projections_lambda.handler({}, context)
            assert first["processed"] == dict.fromkeys(PROJECTIONS, head)
            assert first["positions"] == dict.fromkeys(PROJECTIONS, head)
            assert projections_lambda.handler({}, context)["processed"] == dict.fromkeys(
                PROJECTIONS, 0
            )
        projections_lambda._runners.cache_clear()

    def test_the_workers_view_store_counts_its_calls_in_the_services_metrics_once(self) -> None:
        store = projection_workers.dynamodb_view_store(self.service, self.views_table)
        factory = self.service.factory
        assert isinstance(factory, DynamoDBFactory)
        metrics = {id(m): m for m in (factory.datastore.metrics, store.datastore.metrics)}
        before = {key: m.snapshot() for key, m in metrics.items()}
        store.position("order_summary@1")
        calls = sum((m.snapshot() - before[key]).calls for key, m in metrics.items())
        self.assertEqual(calls, 1)  # One GetItem, counted once across every metrics object.
