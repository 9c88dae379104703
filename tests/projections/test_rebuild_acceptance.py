"""Acceptance: rebuild of 100,000 events over 10,000 orders on DynamoDB Local, killed halfway and
resumed, while a reader queries the view throughout.

Behind the ``acceptance`` marker (several minutes)::

    .venv/bin/python -m pytest tests/projections/test_rebuild_acceptance.py -m acceptance -s
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from adapters.dynamodb import DynamoDBDatastore
from adapters.dynamodb.views import DynamoDBViewStore
from orders import OrderService
from projections.generations import live_generation, view_name
from projections.runtime import Runner
from projections.views import PROJECTIONS, OrderViews, StatusTotal
from tests.projections.support import seed_orders
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = [pytest.mark.dynamodb, pytest.mark.acceptance, pytest.mark.timeout(1800)]

ORDERS = 10_000
NAME = "orders_by_status"


class Reader(threading.Thread):
    """Queries the view every 50 ms on a client of its own until stopped, keeping each answer
    (generation, totals) and each error."""

    def __init__(self, store: DynamoDBViewStore) -> None:
        super().__init__()
        self.views = OrderViews(store)
        self.reads: list[tuple[int, list[StatusTotal]]] = []
        self.failures: list[BaseException] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.reads.append(self.views.totals())
            except BaseException as error:
                self.failures.append(error)
            time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


class TestRebuildOf100000Events(DynamoDBLocalTestCase):
    store: DynamoDBViewStore

    def build_live_view(self) -> tuple[int, list[StatusTotal]]:
        """Store the events, build generation 1 of the view; the events and its totals."""
        service = OrderService(env=self.dynamodb_env())
        started = time.monotonic()
        events = seed_orders(service, ORDERS, orders_per_save=40)
        print(f"\n{events:,} events stored in {time.monotonic() - started:.0f} s")
        decode = service.mapper.to_domain_event
        Runner(PROJECTIONS[NAME], self.store, service.recorder, decode, batch_size=5000).catch_up()
        old_generation, expected = OrderViews(self.store).totals()
        assert old_generation == 1
        assert sum(total.orders for total in expected) == ORDERS
        return events, expected

    def kill_halfway(self, rebuild: list[str], env: dict[str, str], events: int) -> int:
        """Start the rebuild, SIGKILL it once it is past half the log; where it stopped."""
        first = subprocess.Popen(rebuild, env=env, stdout=subprocess.PIPE, text=True)
        new_view = view_name(NAME, 2)
        deadline = time.monotonic() + 600
        try:
            while (self.store.position(new_view) or 0) < events // 2:
                assert first.poll() is None, first.communicate()[0]
                assert time.monotonic() < deadline, "the rebuild did not reach halfway"
                time.sleep(0.1)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        killed_at = self.store.position(new_view) or 0
        assert live_generation(self.store, NAME) == 1
        print(f"rebuild SIGKILLed at notification {killed_at:,}")
        return killed_at

    def test_rebuild_killed_halfway_resumes_and_readers_never_see_a_mix(self) -> None:
        views_table = f"{self.table_name}-views"
        self.store = DynamoDBViewStore(DynamoDBDatastore(self.server.client(), views_table))
        self.store.create_table_if_missing()
        self.addCleanup(self.server.delete_table, views_table)
        events, expected = self.build_live_view()

        reader = Reader(DynamoDBViewStore(DynamoDBDatastore(self.server.client(), views_table)))
        reader.start()
        env = {**os.environ, **self.dynamodb_env(), "ORDERS_VIEWS_TABLE": views_table}
        orders = str(Path(sys.executable).with_name("orders"))
        rebuild = [orders, "--backend", "dynamodb", "--table", self.table_name, "projections"]
        rebuild += ["rebuild", NAME, "--grace", "1"]
        try:
            killed_at = self.kill_halfway(rebuild, env, events)
            second = subprocess.run(
                [*rebuild, "--verify"],
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
        finally:
            reader.stop()
        print(second.stdout)
        assert second.returncode == 0, second.stderr
        assert f"resuming from notification {killed_at}" in second.stdout
        assert "rebuilding orders_by_status" in second.stdout  # the progress bar
        built = re.search(r"built from notification (\d+) \(([\d,]+) notifications", second.stdout)
        assert built, second.stdout
        assert int(built[1]) == killed_at
        assert int(built[2].replace(",", "")) == events - killed_at  # nothing redone
        assert "verify: the rebuilt view equals the live one" in second.stdout

        assert reader.failures == []
        generations = [generation for generation, _ in reader.reads]
        assert generations[0] == 1 and generations[-1] == 2
        assert generations == sorted(generations)  # old, then new, never back
        assert all(totals == expected for _, totals in reader.reads)  # never a partial one
        assert OrderViews(self.store).totals() == (2, expected)
        assert self.store.query(view_name(NAME, 1), "totals").rows == []  # old one dropped
        print(f"{len(reader.reads)} reads: {generations.count(1)} of generation 1, then 2")
