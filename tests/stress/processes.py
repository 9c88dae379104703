"""Writers and an indexer in separate processes, each with its own client and recorder.

Threads of one process share a recorder (whose lock serialises their saves) and the GIL, so
they hide races; these helpers start real processes (``spawn``), released together at a
wall-clock moment, and bring back what each did. Used by the stress tests and the benchmark.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from multiprocessing.synchronize import Event
from typing import Any
from uuid import UUID, uuid4

from adapters.dynamodb.indexer import indexer_of
from orders import OrderLine, OrderService

SPAWN = multiprocessing.get_context("spawn")
START_DELAY = 3.0
"""Seconds between starting the processes and releasing them (they import meanwhile)."""


@dataclass(frozen=True)
class WriterResult:
    """What one writer process did: per command, the order, the version it returned, the sku
    it set, and when (``time.time()``) the command returned; and its DynamoDB figures."""

    commands: list[tuple[str, int, str, float]]
    seconds: float
    round_trips: int
    estimated_wcu: float
    estimated_rcu: float
    latencies: list[float] = field(default_factory=list)


def line_of(worker: int, command: int) -> OrderLine:
    return OrderLine(f"w{worker}-c{command}", 1 + command % 3, Decimal("1.00"))


def writer(
    env: dict[str, str], worker: int, orders: int, commands: int, start_at: float
) -> WriterResult:
    """Places ``orders`` orders of its own, then changes their lines round-robin
    ``commands`` times (one event each), through its own ``OrderService``."""
    service = OrderService(env=env)
    try:
        order_ids = [uuid4() for _ in range(orders)]
        for n, order_id in enumerate(order_ids):
            service.place_order(
                f"customer-{worker}", [line_of(worker, -1 - n)], "EUR", order_id=order_id
            )
        metrics = service.factory.datastore.metrics  # type: ignore[attr-defined]
        time.sleep(max(0.0, start_at - time.time()))
        before = metrics.snapshot()
        done: list[tuple[str, int, str, float]] = []
        latencies = []
        started = time.perf_counter()
        for n in range(commands):
            line = line_of(worker, n)
            order_id = order_ids[n % orders]
            t0 = time.perf_counter()
            version = service.change_lines(order_id, [line])
            latencies.append(time.perf_counter() - t0)
            done.append((str(order_id), version, line.sku, time.time()))
        seconds = time.perf_counter() - started
        cost = metrics.snapshot() - before
        reads = sum(c.estimated_units for n, c in cost.by_operation.items() if n in READS)
        return WriterResult(
            done,
            seconds,
            cost.round_trips,
            cost.estimated_units - reads,
            reads,
            latencies,
        )
    finally:
        service.close()


READS = frozenset({"Query", "GetItem", "BatchGetItem", "Scan"})


def run_writers(
    env: dict[str, str], processes: int, orders: int, commands: int, *, timeout: float
) -> list[WriterResult]:
    """Runs :func:`writer` in ``processes`` processes at once; their results."""
    start_at = time.time() + START_DELAY + 0.5 * processes
    with SPAWN.Pool(processes) as pool:
        pending = [
            pool.apply_async(writer, (env, w, orders, commands, start_at)) for w in range(processes)
        ]
        return [p.get(timeout=timeout) for p in pending]


def indexer_process(env: dict[str, str], stopping: Event, poll_interval: float) -> None:
    """Runs the application's indexer until ``stopping`` is set."""
    service = OrderService(env=env)
    try:
        indexer = indexer_of(service.factory, poll_interval=poll_interval)  # type: ignore[arg-type]
        while not stopping.is_set():
            if indexer.poll_once() == 0:
                stopping.wait(poll_interval)
    finally:
        service.close()


class IndexerProcess:
    """The indexer in a process of its own, stopped (and joined) on exit."""

    def __init__(self, env: dict[str, str], poll_interval: float = 0.05) -> None:
        self.stopping = SPAWN.Event()
        self.process = SPAWN.Process(
            target=indexer_process, args=(env, self.stopping, poll_interval), daemon=True
        )

    def __enter__(self) -> IndexerProcess:
        self.process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def percentile(values: Sequence[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[p - 1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.05)


def order_uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
