"""Benchmark of the DynamoDB event store: cost and speed per command, and loading a long order.

Run on demand (it is not a test)::

    .venv/bin/python -m tests.benchmarks.bench_event_store

It starts its own DynamoDB Local on a loopback port through the test harness, stops it at
the end, and prints:

1. per command, for a 1-event command (without and with snapshotting) and a 10-event command
   (see :mod:`tests.benchmarks.workloads`):
   round trips, write and read capacity (by AWS's billing rules, as the store's metrics
   estimate them, and as DynamoDB Local reports them), the median time of the framework and
   of raw boto3 sending the same requests on the same server, and their ratio;
2. commands per second with 1 thread, with 8 threads sharing one service, and with 8
   services (8 clients racing for the log head, as 8 processes would), with round trips per
   command under that race;
3. loading an order of 1,000 events (one save per event) with and without snapshots.

Every run is bounded by a command count and a time cap (``PHASE_SECONDS``); a phase cut
short by the cap reports the commands it made. Figures vary a lot on a small, busy machine.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from adapters.dynamodb import DynamoDBApplicationRecorder
from orders import Order, OrderLine, OrderService
from tests.benchmarks.workloads import (
    ONE_EVENT,
    ONE_EVENT_SNAPSHOTTING,
    TEN_EVENTS,
    WRITE_OPERATIONS,
    RequestLog,
    Run,
    Workload,
    replay,
    run_commands,
)
from tests.stress.concurrency import recorder_of
from tests.support.dynamodb_local import DynamoDBLocal

THREADS = 8
COMMANDS_PER_TARGET = 10
"""Each thread works round-robin on orders (or tallies) of its own, each getting at most this
many commands, so streams stay as short as real orders' (tallies end with 101 events)."""
COMMANDS = {ONE_EVENT.name: 200, ONE_EVENT_SNAPSHOTTING.name: 200, TEN_EVENTS.name: 100}
"""Commands of the single-thread runs; each of the 8 threads makes a quarter of this."""
WARM_UP_COMMANDS = 40
PHASE_SECONDS = 40.0
"""Cap on the time of one measured run."""
ORDER_EVENTS = 1000
SNAPSHOT_INTERVAL = 100
LOADS = 5


@dataclass(frozen=True)
class CommandFigures:
    workload: Workload
    single: Run
    raw_ms: float
    shared: Run
    racing: Run


def is_write(name: str) -> bool:
    return name in WRITE_OPERATIONS


def is_read(name: str) -> bool:
    return name not in WRITE_OPERATIONS


def any_operation(name: str) -> bool:
    return True


class Bench:
    """The benchmark's server, and a fresh table and application for each run."""

    def __init__(self, server: DynamoDBLocal) -> None:
        self.server = server

    def app(self, workload: Workload, table: str | None = None, **env: str) -> Application[UUID]:
        table = table or self.server.new_table()
        return workload.new_app({**self.server.env(table), **env})

    def targets(
        self, workload: Workload, app: Application[UUID], threads: int, commands: int
    ) -> list[list[UUID]]:
        """For each thread, targets enough for ``commands`` commands."""
        count = -(-commands // COMMANDS_PER_TARGET)
        return [
            [workload.new_target(app, t * count + i) for i in range(count)] for t in range(threads)
        ]

    def measure(self, workload: Workload) -> CommandFigures:
        commands = COMMANDS[workload.name]
        self.single_thread(workload, WARM_UP_COMMANDS)
        single, raw_times = self.single_thread(workload, commands)

        app = self.app(workload)
        per_thread = commands // 4
        targets = self.targets(workload, app, THREADS, per_thread)
        shared = run_commands(workload, [app], targets, per_thread, _cap())

        table = self.server.new_table()
        apps = [self.app(workload, table) for _ in range(THREADS)]
        targets = [self.targets(workload, a, 1, per_thread)[0] for a in apps]
        racing = run_commands(workload, apps, targets, per_thread, _cap())
        return CommandFigures(workload, single, 1000 * statistics.median(raw_times), shared, racing)

    def single_thread(self, workload: Workload, commands: int) -> tuple[Run, list[float]]:
        """The framework's run of ``commands`` commands, and raw boto3's time for each.

        Three tables receive the same commands in step: the framework's timed run; a second
        framework run whose requests are captured; and their raw replay, timed. Interleaving
        them command by command exposes both sides to the same background load.
        """
        timed, captured = self.app(workload), self.app(workload)
        log = RequestLog()
        log.attach(recorder_of(captured).datastore.client)
        raw_table, raw_client = self.server.new_table(), self.server.client()
        timed_targets = self.targets(workload, timed, 1, commands)[0]
        with log.group():
            captured_targets = self.targets(workload, captured, 1, commands)[0]
        _, raw_errors = replay(raw_client, log.groups[-1:], raw_table)

        metrics = recorder_of(timed).datastore.metrics
        before = metrics.snapshot()
        framework_times: list[float] = []
        raw_times: list[float] = []
        deadline = _cap()
        for n in range(commands):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            workload.run(timed, timed_targets[n % len(timed_targets)], n)
            framework_times.append(time.perf_counter() - started)
            with log.group():
                workload.run(captured, captured_targets[n % len(captured_targets)], n)
            (seconds,), errors = replay(raw_client, log.groups[-1:], raw_table)
            raw_times.append(seconds)
            raw_errors += errors
        captured_errors = recorder_of(captured).datastore.metrics.snapshot().errors
        if raw_errors != captured_errors:
            msg = (
                f"the raw replay was refused {raw_errors} times, the framework "
                f"{captured_errors} times: the tables diverged"
            )
            raise RuntimeError(msg)
        cost = (metrics.snapshot() - before).by_operation
        run = Run(len(framework_times), sum(framework_times), framework_times, cost)
        return run, raw_times

    def load_long_order(self) -> list[tuple[str, float, float, float, int]]:
        """An order of ``ORDER_EVENTS`` events, one save each, loaded with and without
        snapshots: (label, median ms, RCU, round trips, events read) per way."""
        table = self.server.new_table()
        interval = {OrderService.SNAPSHOT_INTERVAL: str(SNAPSHOT_INTERVAL)}
        writer = self.app(ONE_EVENT, table, **interval)
        assert isinstance(writer, OrderService)
        order = Order.place("customer-1", [_line(0)], "EUR")
        writer.save(order)
        for n in range(1, ORDER_EVENTS):
            order.change_lines([_line(n)])
            writer.save(order)
        rows = []
        for label, env in (
            ("without snapshots", {}),
            (f"with snapshots (every {SNAPSHOT_INTERVAL})", interval),
        ):
            reader = self.app(ONE_EVENT, table, **env)
            assert isinstance(reader, OrderService)
            recorder = recorder_of(reader)
            metrics = recorder.datastore.metrics
            events_read = count_events_read(recorder)
            times = []
            before = metrics.snapshot()
            for _ in range(LOADS):
                started = time.perf_counter()
                loaded = reader.get_order(order.id)
                times.append(time.perf_counter() - started)
                if loaded.version != ORDER_EVENTS or loaded.lines != order.lines:
                    msg = f"loaded version {loaded.version}, not the order saved"
                    raise RuntimeError(msg)
            cost = metrics.snapshot() - before
            rows.append(
                (
                    label,
                    1000 * statistics.median(times),
                    cost.estimated_units / LOADS,
                    cost.round_trips / LOADS,
                    sum(events_read) // LOADS,
                )
            )
        return rows


def count_events_read(recorder: DynamoDBApplicationRecorder) -> list[int]:
    """From now on, the number of events each ``select_events`` of ``recorder`` returns."""
    select_events = recorder.select_events
    counts: list[int] = []

    def counting_select_events(*args: Any, **kwargs: Any) -> Sequence[StoredEvent]:
        selected = select_events(*args, **kwargs)
        counts.append(len(selected))
        return selected

    recorder.select_events = counting_select_events  # type: ignore[method-assign]
    return counts


def _line(n: int) -> OrderLine:
    return OrderLine(f"SKU-{n}", 1 + n % 5, Decimal("12.50"))


def _cap() -> float:
    return time.monotonic() + PHASE_SECONDS


def _per(run: Run, attribute: str, operations: Callable[[str], bool]) -> float:
    return run.per_command(attribute, operations)


def report(
    server: DynamoDBLocal,
    figures: list[CommandFigures],
    loads: list[tuple[str, float, float, float, int]],
    seconds: float,
) -> str:
    lines = [
        f"DynamoDB event store benchmark: DynamoDB Local on {server.endpoint_url}, "
        f"{os.cpu_count()} CPUs, {seconds:.0f} s",
        "10-event command: a benchmark aggregate (Tally) loaded, given 10 events and saved "
        "in one save, through an eventsourcing Application (not the recorder alone).",
        f"Each order or tally gets at most {COMMANDS_PER_TARGET} commands, so orders end with "
        f"at most {COMMANDS_PER_TARGET + 1} events, tallies with {10 * COMMANDS_PER_TARGET + 1}.",
        "Raw: a plain boto3 client sending, on a table in the same state, the very requests the "
        "framework sent for each command (captured as the framework passed them to boto3).",
        "WCU/RCU: AWS billing rules as the store's metrics estimate them; 'Local' is what "
        "DynamoDB Local reported (it counts transactions differently).",
        "",
        "Per command, 1 thread",
        f"{'command':36} {'n':>4} {'round trips':>11} {'WCU':>6} {'RCU':>5} "
        f"{'Local WCU/RCU':>13} {'framework ms':>12} {'raw ms':>7} {'ratio':>6}",
    ]
    for f in figures:
        run = f.single
        local_wcu = _per(run, "capacity_units", is_write)
        local_rcu = _per(run, "capacity_units", is_read)
        cells = [
            f"{f.workload.name:36}",
            f"{run.commands:>4}",
            f"{_per(run, 'round_trips', any_operation):>11.2f}",
            f"{_per(run, 'estimated_units', is_write):>6.1f}",
            f"{_per(run, 'estimated_units', is_read):>5.1f}",
            f"{f'{local_wcu:.1f}/{local_rcu:.1f}':>13}",
            f"{run.median_ms:>12.1f}",
            f"{f.raw_ms:>7.1f}",
            f"{run.median_ms / f.raw_ms:>5.2f}x",
        ]
        lines.append(" ".join(cells))
    lines += [
        "",
        "Throughput (commands per second; round trips per command in brackets)",
        f"{'command':36} {'1 thread':>14} {'8 threads, 1 service':>21} {'8 services racing':>18}",
    ]
    for f in figures:
        cells = [
            f"{run.per_second:.1f} ({_per(run, 'round_trips', any_operation):.2f})"
            for run in (f.single, f.shared, f.racing)
        ]
        lines.append(f"{f.workload.name:36} {cells[0]:>14} {cells[1]:>21} {cells[2]:>18}")
    lines += [
        "",
        f"Loading an order of {ORDER_EVENTS:,} events (one save each), median of {LOADS} loads",
        f"{'':36} {'ms':>7} {'RCU':>6} {'round trips':>11} {'events read':>11}",
    ]
    for label, ms, rcu, trips, events in loads:
        lines.append(f"{label:36} {ms:>7.1f} {rcu:>6.1f} {trips:>11.1f} {events:>11}")
    return "\n".join(lines)


def main() -> None:
    started = time.monotonic()
    server = DynamoDBLocal.start()
    try:
        bench = Bench(server)
        workloads = (ONE_EVENT, ONE_EVENT_SNAPSHOTTING, TEN_EVENTS)
        figures = [bench.measure(workload) for workload in workloads]
        loads = bench.load_long_order()
        print(report(server, figures, loads, time.monotonic() - started))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
