"""Benchmark of the two write modes, in separate processes, beside a raw boto3 baseline.

Run on demand (it is not a test)::

    .venv/bin/python -m tests.benchmarks.bench_write_modes

It starts a DynamoDB Local of its own for each row (a long-serving one slows down) and
prints, for the 1-event command (``OrderService.change_lines`` on an order of the process's
own: load, decide, save):

1. per mode and for 1 and 8 writer PROCESSES (each its own service and client, with the
   default aggregate cache; and the indexed mode at 1 process without it), commands per
   second, requests and write/read capacity per command (AWS's billing rules, as the store's
   metrics estimate them), p50/p99 latency; and, in the SAME processes right after, the raw
   baseline: a plain boto3 client sending the minimal checked append (a consistent ``Query``
   of the stream, one ``PutItem`` under ``attribute_not_exists`` of an item as big as the
   framework's event) to orders of its own; the ratio framework / raw.
   After one untimed round of each (the server's JIT, the first loads), framework and raw
   alternate in rounds with nothing else running (the write path alone).
   Then the processes write flat out again while a reader in this process tails the log
   and, in the indexed mode, the indexer runs in a process of its own: the lag from a
   command's return to its event's id being readable (p50/p99) is printed.
2. the indexer's throughput on a backlog (writers done, indexer started afterwards), beside
   a raw ``GetRecords`` loop reading the same records.

Every phase is bounded in commands and by ``PHASE_SECONDS``; figures vary a lot on a small,
busy machine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.dynamodb import DynamoDBApplicationRecorder
from adapters.dynamodb.indexer import Indexer, indexing
from adapters.dynamodb.metrics import DynamoDBMetrics
from orders import OrderService
from tests.stress.processes import SPAWN, IndexerProcess, line_of, percentile
from tests.support.dynamodb_local import DynamoDBLocal, local_client

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PROCESS_COUNTS = (1, 8)
COMMANDS_PER_PROCESS = {1: 300, 8: 120}
ORDERS_PER_PROCESS = 10
"""Each process works round-robin on orders of its own, so streams stay short."""
PHASE_SECONDS = 40.0
"""Cap on the time of one kind's rounds together."""
ROUNDS = 4
"""Framework and raw alternate in rounds (each a quarter of the commands)."""
BACKLOG_PROCESSES = 8
BACKLOG_COMMANDS = 1500
START_DELAY = 2.0
READS = frozenset({"Query", "GetItem"})

# -- in each worker process -------------------------------------------------------------------

_service: OrderService | None = None
_raw: tuple[DynamoDBClient, str, DynamoDBMetrics] | None = None
_orders: list[Any] = []
_raw_orders: list[str] = []
_payload_bytes = 0
_done = 0


def _init(env: dict[str, str], raw_table: str, endpoint: str) -> None:
    """Builds this process's service and raw client, and their orders (not timed)."""
    global _service, _raw, _orders, _raw_orders, _payload_bytes  # noqa: PLW0603
    _service = OrderService(env=env)
    worker = os.getpid()
    _orders = [
        _service.place_order("customer", [line_of(worker, -1 - n)], "EUR").order_id
        for n in range(ORDERS_PER_PROCESS)
    ]
    sample = _service.recorder.select_events(_orders[0])[0]
    _payload_bytes = len(sample.state) + len(sample.topic)
    client = local_client(endpoint)
    metrics = DynamoDBMetrics()
    metrics.attach(client)
    _raw = (client, raw_table, metrics)
    _raw_orders = [f"raw#{uuid4()}" for _ in range(ORDERS_PER_PROCESS)]
    for pk in _raw_orders:
        _raw_append(pk)


def _raw_append(pk: str) -> None:
    """The minimal checked append: read the stream, put the next version if still free."""
    assert _raw is not None
    client, table, _ = _raw
    items = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    )["Items"]
    version = max((int(i["sk"]["N"]) for i in items), default=0) + 1
    client.put_item(
        TableName=table,
        Item={"pk": {"S": pk}, "sk": {"N": str(version)}, "e": {"B": b"x" * _payload_bytes}},
        ConditionExpression="attribute_not_exists(pk)",
    )


@dataclass(frozen=True)
class PhaseResult:
    started: float
    ended: float
    latencies: list[float]
    commits: list[tuple[str, int, float]]
    round_trips: int
    write_units: float
    read_units: float


def _phase(kind: str, commands: int, start_at: float, deadline: float) -> PhaseResult:
    """Runs ``commands`` commands (framework or raw) from ``start_at``, until ``deadline``."""
    global _done  # noqa: PLW0603
    assert _service is not None and _raw is not None
    metrics = _raw[2] if kind == "raw" else _service.factory.datastore.metrics  # type: ignore[attr-defined]
    worker = os.getpid()
    time.sleep(max(0.0, start_at - time.time()))
    before = metrics.snapshot()
    latencies: list[float] = []
    commits: list[tuple[str, int, float]] = []
    started = time.time()
    for n in range(commands):
        if time.time() > deadline:
            break
        t0 = time.perf_counter()
        if kind == "raw":
            _raw_append(_raw_orders[n % ORDERS_PER_PROCESS])
        else:
            order_id = _orders[_done % ORDERS_PER_PROCESS]
            version = _service.change_lines(order_id, [line_of(worker, _done)])
            _done += 1
            commits.append((str(order_id), version, time.time()))
        latencies.append(time.perf_counter() - t0)
    ended = time.time()
    cost = metrics.snapshot() - before
    reads = sum(c.estimated_units for name, c in cost.by_operation.items() if name in READS)
    return PhaseResult(
        started,
        ended,
        latencies,
        commits,
        cost.round_trips,
        cost.estimated_units - reads,
        reads,
    )


# -- in this process --------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    commands: int
    per_second: float
    round_trips: float
    write_units: float
    read_units: float
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, rounds: list[list[PhaseResult]], raw: bool) -> Figures:
        """The figures of the rounds of one kind (each round: one result per process)."""
        results = [r for round_ in rounds for r in round_]
        latencies = [t for r in results for t in r.latencies]
        commands = len(latencies)
        seconds = sum(max(r.ended for r in rs) - min(r.started for r in rs) for rs in rounds)
        return cls(
            commands,
            commands / seconds,
            sum(r.round_trips for r in results) / commands,
            1.0 if raw else sum(r.write_units for r in results) / commands,
            sum(r.read_units for r in results) / commands if not raw else float("nan"),
            1000 * percentile(latencies, 50),
            1000 * percentile(latencies, 99),
        )


class LogTail:
    """A reader tailing the log in this process: when each (order, version) became readable."""

    def __init__(self, recorder: DynamoDBApplicationRecorder) -> None:
        self.recorder = recorder
        self.seen: dict[tuple[str, int], float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._tail, daemon=True)
        self.last = 0
        self.gaps = 0

    def _tail(self) -> None:
        while not self.stopping.is_set():
            page = self.recorder.select_notifications(self.last + 1, 500)
            now = time.time()
            for notification in page:
                if notification.id != self.last + 1:
                    self.gaps += 1
                self.last = notification.id
                self.seen[str(notification.originator_id), notification.originator_version] = now
            if not page:
                time.sleep(0.02)


def run_mode(
    server: DynamoDBLocal, mode: str, processes: int, *, cached: bool = True
) -> tuple[Figures, Figures, str | None]:
    """The write path against raw boto3 (rounds, nothing else running), then (with the
    default cache) a run with a reader tailing the log (and, in the indexed mode, the indexer
    in a process of its own)."""
    table, raw_table = server.new_table(), server.new_table()
    env = {**server.env(table), "DYNAMODB_WRITE_MODE": mode}
    if not cached:
        env["AGGREGATE_CACHE_MAXSIZE"] = "0"
    commands = COMMANDS_PER_PROCESS[processes]
    with SPAWN.Pool(processes, _init, (env, raw_table, server.endpoint_url)) as pool:
        pool.map(time.sleep, [0.01] * processes)  # Every process initialised.

        def phase(kind: str, count: int, seconds: float) -> list[PhaseResult]:
            start_at = time.time() + START_DELAY
            arguments = (kind, count, start_at, start_at + seconds)
            return pool.starmap(_phase, [arguments] * processes)

        for kind in ("framework", "raw"):  # Warm-up, untimed: the server's JIT, first loads.
            phase(kind, commands // ROUNDS, PHASE_SECONDS / ROUNDS)
        results: dict[str, list[list[PhaseResult]]] = {"framework": [], "raw": []}
        for round_ in range(ROUNDS):
            # Alternate which kind goes first, so both see the same drift in load.
            for kind in ("framework", "raw") if round_ % 2 == 0 else ("raw", "framework"):
                results[kind].append(phase(kind, commands // ROUNDS, PHASE_SECONDS / ROUNDS))
        framework, raw = (
            Figures.of(results["framework"], raw=False),
            Figures.of(results["raw"], raw=True),
        )
        if not cached:
            return framework, raw, None
        with SPAWN.Pool(1) as settle:  # The indexed mode's backlog so far, indexed first.
            settle.apply(_catch_up, (env,))
        reader = OrderService(env=env)
        tail = LogTail(reader.recorder)  # type: ignore[arg-type]
        indexer = IndexerProcess(env) if mode == "indexed" else contextlib.nullcontext()
        try:
            with indexer:
                tail.thread.start()
                tailed = phase("framework", commands // 2, PHASE_SECONDS / 2)
                commits = [c for r in tailed for c in r.commits]
                deadline = time.monotonic() + 60
                while any((o, v) not in tail.seen for o, v, _ in commits):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the log did not catch up within 60 s")
                    time.sleep(0.05)
        finally:
            tail.stopping.set()
            tail.thread.join()
            reader.close()
    lags = [tail.seen[o, v] - t for o, v, t in commits]
    during = Figures.of([tailed], raw=False)
    lag = (
        f"{during.per_second:.0f} commands/s with a reader tailing the log"
        f"{' and the indexer running' if mode == 'indexed' else ''}; "
        f"lag from command to readable id: p50 {1000 * percentile(lags, 50):.0f} ms, "
        f"p99 {1000 * percentile(lags, 99):.0f} ms, max {1000 * max(lags):.0f} ms; "
        f"gaps seen by the reader {tail.gaps}"
    )
    return framework, raw, lag


def _catch_up(env: dict[str, str]) -> None:
    """Indexes what is in the stream (indexed mode only), in a process of its own."""
    service = OrderService(env=env)
    with indexing(service.factory):
        pass
    service.close()


def indexer_backlog(server: DynamoDBLocal) -> str:
    """The indexer on a backlog written by 8 processes, beside a raw GetRecords loop."""
    table, raw_table = server.new_table(), server.new_table()
    env = {**server.env(table), "DYNAMODB_WRITE_MODE": "indexed"}
    with SPAWN.Pool(BACKLOG_PROCESSES, _init, (env, raw_table, server.endpoint_url)) as pool:
        start_at = time.time() + START_DELAY
        pool.starmap(
            _phase,
            [("framework", BACKLOG_COMMANDS, start_at, start_at + 120)] * BACKLOG_PROCESSES,
        )
    datastore = OrderService(env=env).factory.datastore  # type: ignore[attr-defined]
    streams = server.streams_client()
    indexer = Indexer(datastore, streams, "orderservice_events")
    started = time.perf_counter()
    events = indexer.catch_up(timeout=300)
    indexer_seconds = time.perf_counter() - started

    arn = server.client().describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records = 0
    started = time.perf_counter()
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        ).get("ShardIterator")
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += len(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    raw_seconds = time.perf_counter() - started
    return (
        f"indexer on a backlog of {events} events: {events / indexer_seconds:,.0f} events/s "
        f"({indexer.writes} writes, {events / max(1, indexer.writes):.0f} events each); "
        f"raw GetRecords loop over the same stream ({records} records, the indexer's own "
        f"writes included): {records / raw_seconds:,.0f} records/s"
    )


def main() -> None:
    started = time.monotonic()
    lines = [
        f"Write modes: DynamoDB Local (a fresh server per row), {os.cpu_count()} CPUs; "
        "1-event command OrderService.change_lines, every writer its own process; raw = "
        "the same processes sending a consistent Query + conditional PutItem",
        f"{'mode':18} {'proc':>4} {'cmds':>5} {'cmd/s':>7} {'raw cmd/s':>9} {'ratio':>6} "
        f"{'req/cmd':>7} {'WCU':>5} {'RCU':>5} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'raw p99':>7}",
    ]
    notes = []
    runs = [(m, p, True) for m in ("transactional", "indexed") for p in PROCESS_COUNTS]
    runs.append(("indexed", 1, False))
    for mode, processes, cached in runs:
        server = DynamoDBLocal.start()  # DynamoDB Local slows down as tables come and go.
        try:
            f, raw, lag = run_mode(server, mode, processes, cached=cached)
        finally:
            server.stop()
        label = mode if cached else f"{mode}, no cache"
        lines.append(
            f"{label:18} {processes:>4} {f.commands:>5} {f.per_second:>7.0f} "
            f"{raw.per_second:>9.0f} {f.per_second / raw.per_second:>5.2f}x "
            f"{f.round_trips:>7.2f} {f.write_units:>5.1f} {f.read_units:>5.1f} "
            f"{f.p50_ms:>7.1f} {f.p99_ms:>7.1f} {raw.p99_ms:>7.1f}"
        )
        if lag is not None:
            notes.append(f"{mode}, {processes} processes: {lag}")
        print(lines[-1], flush=True)
    lines += notes
    server = DynamoDBLocal.start()
    try:
        lines.append(indexer_backlog(server))
    finally:
        server.stop()
    lines.append(f"total {time.monotonic() - started:.0f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
