"""Benchmark of the projections on DynamoDB Local: rebuild speed and cost, and live runner lag.

Run on demand (it is not a test)::

    .venv/bin/python -m tests.benchmarks.bench_projections [ORDERS] [LAG_SECONDS]

For each part it starts a DynamoDB Local of its own on a loopback port, stores ``ORDERS``
orders (default 2,000) of 10 events each (each order's events consecutive in the log, 40 orders
per save), stops the server after the part, and prints:

1. per projection, a full rebuild (``Rebuild.run``: replay, switch, drop) in events per second,
   beside raw boto3 sending the very requests the rebuild sent (recorded on an untimed run,
   then replayed on a fresh table: the same log reads, the same ``TransactWriteItems``), and
   their ratio; runs alternate framework / raw, the best of each is shown, and the ratio is
   the median of each round's (raw time / framework time);
2. the rebuild's cost per event by AWS's billing rules (as ``datastore.metrics`` estimates:
   2 WCU per started KB of each item in a transaction), and its round trips;
3. the live runner's lag at ``100`` commands per second for ``LAG_SECONDS`` (default 20), sent
   by 4 load processes in the indexed write mode (the mode for many writer processes; in the
   transactional mode they would race for the log head), with the indexer in a process of
   its own; the rate achieved is printed. The runner is ``orders projections run`` in a
   process of its own; a sampler reads the log head and the three positions every 50 ms;
   lag in events is head minus position, lag in seconds is how long ago the head reached
   the position a sample saw.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from botocore import xform_name

from adapters.dynamodb import DynamoDBDatastore, DynamoDBMetrics
from adapters.dynamodb.views import DynamoDBViewStore
from orders import OrderLine, OrderService
from projections.generations import live_generation, view_name
from projections.rebuild import Rebuild
from projections.views import PROJECTIONS
from tests.benchmarks.workloads import RequestLog
from tests.projections.support import seed_orders
from tests.stress.processes import SPAWN, IndexerProcess
from tests.support.dynamodb_local import DynamoDBLocal

REBUILT = ("order_summary", "orders_by_status", "customer_orders")
ROUNDS = 5
COMMANDS_PER_SECOND = 100
LOAD_PROCESSES = 4


class Bench:
    def __init__(self, server: DynamoDBLocal, orders: int, write_mode: str) -> None:
        self.server = server
        self.events_table = server.new_table()
        self.env = {**server.env(self.events_table), "DYNAMODB_WRITE_MODE": write_mode}
        self.service = OrderService(env=self.env)
        started = time.perf_counter()
        self.events = seed_orders(self.service, orders, orders_per_save=40)
        self.seed_seconds = time.perf_counter() - started

    def views_table(self) -> tuple[str, DynamoDBDatastore]:
        table = f"views-{uuid.uuid4().hex}"
        datastore = DynamoDBDatastore(self.server.client(), table, metrics=DynamoDBMetrics())
        DynamoDBViewStore(datastore).create_table_if_missing()
        return table, datastore

    def rebuild(self, name: str, log: RequestLog | None = None) -> tuple[float, DynamoDBDatastore]:
        """One full rebuild into a fresh view table; seconds taken and the view datastore.

        With ``log``, on clients of their own that ``log`` records (an untimed run).
        """
        _, datastore = self.views_table()
        service = self.service
        if log is not None:
            service = OrderService(env=self.env)
            log.attach(service.recorder.datastore.client)  # type: ignore[attr-defined]
            log.attach(datastore.client)
        recorder = service.recorder
        events_metrics = recorder.datastore.metrics  # type: ignore[attr-defined]
        events_metrics.reset()
        job = Rebuild(
            PROJECTIONS[name],
            DynamoDBViewStore(datastore),
            recorder,
            service.mapper.to_domain_event,
            grace_seconds=0,
        )
        started = time.perf_counter()
        if log is not None:
            with log.group():
                job.run()
        else:
            job.run()
        seconds = time.perf_counter() - started
        self.log_metrics = events_metrics.snapshot()
        return seconds, datastore

    def raw(self, requests: list[tuple[str, dict[str, Any]]], recorded_table: str) -> float:
        """Raw boto3 sending ``requests`` again: view writes to a fresh table, log reads as
        they were; the seconds taken."""
        table, _ = self.views_table()
        client = self.server.client()
        prepared = [
            (getattr(client, xform_name(name)), retarget(params, recorded_table, table))
            for name, params in requests
        ]
        started = time.perf_counter()
        for method, params in prepared:
            method(**params)
        seconds = time.perf_counter() - started
        self.server.delete_table(table)
        return seconds

    def measure(self, name: str) -> dict[str, Any]:
        log = RequestLog()
        _, recorded = self.rebuild(name, log)
        requests = log.groups[0]
        self.server.delete_table(recorded.table_name)
        framework: list[float] = []
        raw: list[float] = []
        cost = None
        for _ in range(ROUNDS):
            seconds, datastore = self.rebuild(name)
            framework.append(seconds)
            cost = (datastore.metrics.snapshot(), self.log_metrics)
            self.server.delete_table(datastore.table_name)
            raw.append(self.raw(requests, recorded.table_name))
        assert cost is not None
        views, reads = cost
        print(
            f"  {name}: framework runs {', '.join(f'{t:.2f}' for t in framework)} s, "
            f"raw runs {', '.join(f'{t:.2f}' for t in raw)} s",
            file=sys.stderr,
        )
        return {
            "name": name,
            "framework": min(framework),
            "raw": min(raw),
            "ratio": statistics.median(r / f for f, r in zip(framework, raw, strict=True)),
            "wcu": sum(
                count.estimated_units
                for operation, count in views.by_operation.items()
                if operation in ("TransactWriteItems", "PutItem", "UpdateItem")
            ),
            "rcu": reads.estimated_units
            + sum(
                count.estimated_units
                for operation, count in views.by_operation.items()
                if operation in ("GetItem", "Query", "Scan")
            ),
            "round_trips": views.round_trips + reads.round_trips,
            "transactions": views.by_operation["TransactWriteItems"].calls,
        }

    def live_lag(self, seconds: float) -> dict[str, Any]:
        """Commands at 100/s from 4 processes (the indexed write mode, the indexer in a
        process of its own) while ``orders projections run`` follows the log."""
        views_table, datastore = self.views_table()
        store = DynamoDBViewStore(datastore)
        for name in PROJECTIONS:  # start the live views at the head: lag is about new events
            Rebuild(
                PROJECTIONS[name],
                store,
                self.service.recorder,
                self.service.mapper.to_domain_event,
                grace_seconds=0,
            ).run()
        env = {**os.environ, **self.env, "ORDERS_VIEWS_TABLE": views_table}
        orders = str(Path(sys.executable).with_name("orders"))
        command = [orders, "--backend", "dynamodb", "--table", self.events_table, "projections"]
        runner = subprocess.Popen(
            [*command, "run", "--poll-interval", "0.05"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        samples: list[tuple[float, int, list[int]]] = []
        stop = threading.Event()

        def positions() -> list[int]:
            return [
                store.position(view_name(name, live_generation(store, name))) or 0
                for name in PROJECTIONS
            ]

        def sample() -> None:
            recorder = self.service.recorder
            while not stop.wait(0.05):
                head = recorder.max_notification_id() or 0
                samples.append((time.monotonic(), head, positions()))

        with IndexerProcess(self.env):
            # The runner is up once it has these.
            commands_at(self.service, COMMANDS_PER_SECOND, 0.01)
            deadline = time.monotonic() + 60
            head = 0
            while head == 0 and time.monotonic() < deadline:  # Indexed: the indexer numbers it.
                head = self.service.recorder.max_notification_id() or 0
                time.sleep(0.05)
            deadline = time.monotonic() + 120
            while positions() != [head] * len(PROJECTIONS) and time.monotonic() < deadline:
                time.sleep(0.1)

            with SPAWN.Pool(LOAD_PROCESSES) as pool:
                pool.map(time.sleep, [0.01] * LOAD_PROCESSES)  # Every load process started.
                sampler = threading.Thread(target=sample)
                sampler.start()
                try:
                    start_at, load_started = time.time() + 1.0, time.monotonic() + 1.0
                    arguments = (
                        self.env,
                        COMMANDS_PER_SECOND / LOAD_PROCESSES,
                        start_at,
                        seconds,
                    )
                    sent = sum(pool.starmap(commands_in_process, [arguments] * LOAD_PROCESSES))
                    elapsed = time.time() - start_at
                    time.sleep(2)
                finally:
                    stop.set()
                    sampler.join()
                    runner.terminate()
                    runner.wait(timeout=30)
        self.server.delete_table(views_table)
        event_lags, time_lags = lags([s for s in samples if s[0] >= load_started])
        return {
            "rate": sent / elapsed,
            "events": event_lags,
            "seconds": time_lags,
            "runner_status": runner.returncode,
        }


def lags(samples: list[tuple[float, int, list[int]]]) -> tuple[list[int], list[float]]:
    """Per sample (moment, log head, positions): the lag in events (head minus the lowest
    position) and in seconds (how long ago the head passed that position)."""
    head_times: list[tuple[int, float]] = []
    for moment, head, _ in samples:
        if not head_times or head > head_times[-1][0]:
            head_times.append((head, moment))
    event_lags = [head - min(seen) for _, head, seen in samples]
    time_lags = []
    for moment, _, seen in samples:
        position = min(seen)
        reached = next((t for h, t in head_times if h > position), moment)
        time_lags.append(max(0.0, moment - reached))
    return event_lags, time_lags


def retarget(value: Any, old: str, new: str) -> Any:
    """``value`` with every ``TableName`` (and key of ``RequestItems``) ``old`` set to ``new``."""
    if isinstance(value, dict):
        return {
            (new if k == old else k): (
                new if k == "TableName" and v == old else retarget(v, old, new)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [retarget(v, old, new) for v in value]
    return value


def commands_in_process(env: dict[str, str], rate: float, start_at: float, seconds: float) -> int:
    """:func:`commands_at` from ``start_at`` in a load process, with a service of its own."""
    service = OrderService(env=env)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        return commands_at(service, rate, seconds)
    finally:
        service.close()


def commands_at(service: OrderService, rate: float, seconds: float) -> int:
    """Order journeys (place, pay, ship, complete) at ``rate`` commands per second."""
    line = [OrderLine("BOOK-001", 1, Decimal("12.50"))]
    sent = 0
    started = time.monotonic()
    order_id = None
    while time.monotonic() - started < seconds:
        step = sent % 4
        if step == 0 or order_id is None:
            order_id = service.place_order("customer-lag", line, "EUR").order_id
        elif step == 1:
            service.confirm_payment(order_id, "pay", Decimal("12.50"))
        elif step == 2:
            service.ship(order_id)
        else:
            service.complete(order_id)
        sent += 1
        pause = started + sent / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    return sent


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def fresh_bench(orders: int, write_mode: str = "transactional") -> Bench:
    """A bench on a DynamoDB Local of its own (DynamoDB Local slows down as a long session's
    tables come and go, which would favour whichever side ran first)."""
    server = DynamoDBLocal.start()
    try:
        return Bench(server, orders, write_mode)
    except BaseException:
        server.stop()
        raise


def main() -> None:
    orders = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    lag_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    print(
        f"each part on a fresh DynamoDB Local: {orders * 10:,} events over {orders:,} orders; "
        f"best of {ROUNDS} runs each"
    )
    print(
        f"{'rebuild':18} {'events/s':>9} {'raw ev/s':>9} {'ratio':>6} {'WCU/event':>10} "
        f"{'RCU/event':>10} {'round trips':>12} {'transactions':>13}"
    )
    for name in REBUILT:
        bench = fresh_bench(orders)
        try:
            figures = bench.measure(name)
        finally:
            bench.server.stop()
        events = bench.events
        print(
            f"{name:18} {events / figures['framework']:>9,.0f} "
            f"{events / figures['raw']:>9,.0f} {figures['ratio']:>5.2f}x "
            f"{figures['wcu'] / events:>10.3f} {figures['rcu'] / events:>10.3f} "
            f"{figures['round_trips']:>12,} {figures['transactions']:>13,}"
        )
    bench = fresh_bench(0, "indexed")
    try:
        lag = bench.live_lag(lag_seconds)
    finally:
        bench.server.stop()
    print(
        f"live runner (orders projections run, own process) at {lag['rate']:.0f} commands/s "
        f"for {lag_seconds:.0f} s: lag in events median {statistics.median(lag['events']):.0f}"
        f", p95 {percentile(lag['events'], 0.95):.0f}, max {max(lag['events'])}; in seconds "
        f"median {statistics.median(lag['seconds']):.2f}, p95 "
        f"{percentile(lag['seconds'], 0.95):.2f}, max {max(lag['seconds']):.2f} "
        f"(runner exit status {lag['runner_status']})"
    )


if __name__ == "__main__":
    main()
