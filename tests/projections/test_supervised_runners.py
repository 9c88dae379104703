"""The projections worker under its supervisors, on DynamoDB Local: faults past botocore's
retries pause a runner and it goes on; a permanent error stops that runner alone."""

from __future__ import annotations

import threading

import pytest

from adapters.bootstrap.projections import run_worker
from adapters.cli.demo import run_demo
from adapters.dynamodb import DynamoDBDatastore
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.supervisor import WorkerStoppedError
from orders import OrderService
from orders.backoff import Backoff
from projections.runtime import Runner
from projections.views import PROJECTIONS
from tests.projections.support import all_contents, replayed
from tests.support.dynamodb_local import DynamoDBLocalTestCase
from tests.support.faults import FaultPlan

pytestmark = pytest.mark.dynamodb

FAST = Backoff(base=0.01, cap=0.2)


class TestSupervisedRunners(DynamoDBLocalTestCase):
    def setUp(self) -> None:
        super().setUp()
        views_table = f"{self.table_name}-views"
        self.store = DynamoDBViewStore(DynamoDBDatastore(self.client, views_table))
        self.store.create_table_if_missing()
        self.addCleanup(self.server.delete_table, views_table)
        self.service = OrderService(env=self.dynamodb_env())
        run_demo(self.service, 20, seed=3)
        decode = self.service.mapper.to_domain_event
        self.runners = [
            Runner(p, self.store, self.service.recorder, decode, batch_size=7)
            for p in PROJECTIONS.values()
        ]

    def _caught_up(self, runners: list[Runner]) -> bool:
        return all(r.progress().position == r.progress().head for r in runners)

    def test_faults_past_botocore_retries_pause_the_runners_and_every_view_equals_a_replay(
        self,
    ) -> None:
        faults = FaultPlan(self.client, "*", ["throttle"] * 12 + ["5xx"] * 6 + ["reset"] * 6)
        stop = threading.Event()
        worker = threading.Thread(
            target=run_worker, args=(self.runners, stop, 0.05), kwargs={"backoff": FAST}
        )
        worker.start()
        try:
            for _ in range(600):  # bounded: each round waits at most 0.1 s
                if faults.exhausted and self._caught_up(self.runners):
                    break
                stop.wait(0.1)
            assert worker.is_alive()
        finally:
            stop.set()
            worker.join(timeout=30)
        assert not worker.is_alive()
        assert faults.injected == 24
        decode = self.service.mapper.to_domain_event
        assert all_contents(self.store, self.service.recorder, decode) == replayed(
            self.service.recorder, decode
        )

    def test_a_permanent_error_stops_its_runner_alone_and_is_raised(self) -> None:
        failing = self.runners[0].projection.name
        FaultPlan(self.client, "*", ["denied"] * 1000, marker=failing)
        stop = threading.Event()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                run_worker(self.runners, stop, 0.05, backoff=FAST)
            except WorkerStoppedError as error:
                errors.append(error)

        worker = threading.Thread(target=work)
        worker.start()
        try:
            for _ in range(600):  # bounded: each round waits at most 0.1 s
                if self._caught_up(self.runners[1:]):
                    break
                stop.wait(0.1)
            assert worker.is_alive()  # the others still run
        finally:
            stop.set()
            worker.join(timeout=30)
        assert self._caught_up(self.runners[1:])
        assert len(errors) == 1
        assert str(errors[0]).startswith(f"projection {failing} stopped: DatabaseError: ")
        assert "AccessDeniedException" in str(errors[0])
