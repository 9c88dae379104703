"""Benchmark of the write path in the production shape, in separate processes, beside raw boto3.

Run on demand (it is not a test; about 6 minutes)::

    .venv/bin/python -m tests.benchmarks.bench_write_modes

Every writer is a process of its own with its own service and client. In the indexed mode the
indexer runs in a process of its own during the whole row, as on Lambda. Each row alternates,
in rounds after an untimed warm-up, the framework and the raw baseline in the same processes:
a plain boto3 client sending the minimal checked append (a consistent ``Query`` of the stream,
one ``PutItem`` under ``attribute_not_exists`` of an item as big as the framework's event).
The command is ``OrderService.change_lines`` (1 event). Rows:

- transactional and indexed, distinct orders (each process its own), 1 and 8 processes;
- indexed, 8 processes, on a server that has just served the transactional 8-process row
  (a previous workload's data on it);
- indexed, 8 processes on ONE order: every command applied once (versions contiguous, each
  returned once), requests per accepted command; raw: the same append retried on refusal;
- replay: load every order of the 8-process indexed row with no cache (1 and 8 processes)
  beside a raw consistent ``Query`` loop over the same stream items.

Every phase is bounded in commands and by ``PHASE_SECONDS``; the machine is shared, so compare
ratios within a run.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from botocore.exceptions import ClientError

from adapters.dynamodb.items import stream_pk
from adapters.dynamodb.metrics import DynamoDBMetrics
from orders import OrderService
from tests.stress.processes import SPAWN, IndexerProcess, line_of, percentile
from tests.support.dynamodb_local import DynamoDBLocal, local_client

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COMMANDS = {1: 240, 8: 60}
"""Commands per process and kind in one row (split over the rounds)."""
ORDERS_PER_PROCESS = 10
PHASE_SECONDS = 16.0
"""Cap on the time of one kind's rounds together in a row."""
ROUNDS = 4
START_DELAY = 1.5
NAMESPACE = "orderservice_events"

# -- in each worker process -------------------------------------------------------------------

_service: OrderService | None = None
_raw: tuple[DynamoDBClient, str, DynamoDBMetrics] | None = None
_orders: list[UUID] = []
_raw_orders: list[str] = []
_payload_bytes = 0
_done = 0


def _init(env: dict[str, str], raw_table: str, endpoint: str, shared: str | None) -> None:
    """This process's service, raw client and orders (untimed); ``shared``: one order for all."""
    global _service, _raw, _orders, _raw_orders, _payload_bytes  # noqa: PLW0603
    _service = OrderService(env=env)
    worker = os.getpid()
    if shared is None:
        _orders = [
            _service.place_order("customer", [line_of(worker, -1 - n)], "EUR").order_id
            for n in range(ORDERS_PER_PROCESS)
        ]
        _raw_orders = [f"raw#{uuid4()}" for _ in range(ORDERS_PER_PROCESS)]
    else:
        _orders, _raw_orders = [UUID(shared)], [f"raw#{shared}"]
    sample = _service.recorder.select_events(_orders[0])[0]
    _payload_bytes = len(sample.state) + len(sample.topic)
    client = local_client(endpoint)
    metrics = DynamoDBMetrics()
    metrics.attach(client)
    _raw = (client, raw_table, metrics)
    for pk in _raw_orders:
        _raw_append(pk)


def _raw_append(pk: str) -> None:
    """The minimal checked append: read the stream, put the next version if still free;
    refused (another writer took it): read and try again."""
    assert _raw is not None
    client, table, _ = _raw
    while True:
        items = client.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )["Items"]
        version = max((int(i["sk"]["N"]) for i in items), default=0) + 1
        try:
            client.put_item(
                TableName=table,
                Item={
                    "pk": {"S": pk},
                    "sk": {"N": str(version)},
                    "e": {"B": b"x" * _payload_bytes},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        else:
            return


@dataclass(frozen=True)
class PhaseResult:
    started: float
    ended: float
    latencies: list[float]
    versions: list[int]
    round_trips: int


def _phase(kind: str, commands: int, start_at: float, deadline: float) -> PhaseResult:
    """Runs ``commands`` commands (framework or raw) from ``start_at``, until ``deadline``."""
    global _done  # noqa: PLW0603
    assert _service is not None and _raw is not None
    metrics = _raw[2] if kind == "raw" else _service.factory.datastore.metrics  # type: ignore[attr-defined]
    worker = os.getpid()
    time.sleep(max(0.0, start_at - time.time()))
    before = metrics.snapshot()
    latencies: list[float] = []
    versions: list[int] = []
    started = time.time()
    for n in range(commands):
        if time.time() > deadline:
            break
        t0 = time.perf_counter()
        if kind == "raw":
            _raw_append(_raw_orders[n % len(_raw_orders)])
        else:
            order_id = _orders[_done % len(_orders)]
            versions.append(_service.change_lines(order_id, [line_of(worker, _done)]))
            _done += 1
        latencies.append(time.perf_counter() - t0)
    ended = time.time()
    return PhaseResult(
        started, ended, latencies, versions, (metrics.snapshot() - before).round_trips
    )


def _load_all(
    env: dict[str, str], order_ids: list[str], raw: bool, start_at: float
) -> tuple[float, float, int]:
    """Loads each order (no cache), or sends a raw consistent Query of its stream items."""
    service = OrderService(env={**env, "AGGREGATE_CACHE_MAXSIZE": "0"})
    client = local_client(env["AWS_ENDPOINT_URL_DYNAMODB"])
    table = env["DYNAMODB_TABLE_NAME"]
    ids = [UUID(i) for i in order_ids]
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    for order_id in ids:
        if raw:
            client.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": stream_pk(NAMESPACE, order_id)}},
                ConsistentRead=True,
            )
        else:
            service.get_order(order_id)
    ended = time.time()
    service.close()
    return started, ended, len(ids)


# -- in this process --------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    commands: int
    per_second: float
    round_trips: float
    p99_ms: float

    @classmethod
    def of(cls, rounds: list[list[PhaseResult]]) -> Figures:
        """The figures of the rounds of one kind (each round: one result per process)."""
        results = [r for round_ in rounds for r in round_]
        latencies = [t for r in results for t in r.latencies]
        seconds = sum(max(r.ended for r in rs) - min(r.started for r in rs) for rs in rounds)
        return cls(
            len(latencies),
            len(latencies) / seconds,
            sum(r.round_trips for r in results) / len(latencies),
            1000 * percentile(latencies, 99),
        )


def row(
    server: DynamoDBLocal, mode: str, processes: int, *, shared: bool = False
) -> tuple[Figures, Figures, dict[str, str], list[PhaseResult]]:
    """One row: framework and raw in alternating rounds (the indexer running if indexed)."""
    table, raw_table = server.new_table(), server.new_table()
    env = {**server.env(table), "DYNAMODB_WRITE_MODE": mode, "ORDERS_MAX_ATTEMPTS": "1000"}
    order = None
    if shared:
        with OrderService(env=env) as placing:
            order = str(placing.place_order("customer", [line_of(0, -1)], "EUR").order_id)
    commands = COMMANDS[processes] // ROUNDS
    indexer: AbstractContextManager[Any] = (
        IndexerProcess(env) if mode == "indexed" else nullcontext()
    )
    arguments = (env, raw_table, server.endpoint_url, order)
    with indexer, SPAWN.Pool(processes, _init, arguments) as pool:
        pool.map(time.sleep, [0.01] * processes)  # Every process initialised.

        def phase(kind: str) -> list[PhaseResult]:
            start_at = time.time() + START_DELAY
            deadline = start_at + PHASE_SECONDS / ROUNDS
            return pool.starmap(_phase, [(kind, commands, start_at, deadline)] * processes)

        for kind in ("framework", "raw"):  # Warm-up, untimed: the server's JIT, first loads.
            phase(kind)
        results: dict[str, list[list[PhaseResult]]] = {"framework": [], "raw": []}
        for round_ in range(ROUNDS):
            for kind in ("framework", "raw") if round_ % 2 == 0 else ("raw", "framework"):
                results[kind].append(phase(kind))
    flat = [r for rs in results["framework"] for r in rs]
    return Figures.of(results["framework"]), Figures.of(results["raw"]), env, flat


def replay(env: dict[str, str], processes: int) -> tuple[float, float]:
    """Orders loaded per second, framework and raw, each process a share of every order."""
    order_ids: set[str] = set()
    with OrderService(env=env) as service:  # The orders in the log (the indexer caught up).
        start: int | None = None
        while page := service.recorder.select_notifications(start, 1000):
            order_ids.update(str(n.originator_id) for n in page)
            start = page[-1].id + 1
    ids = sorted(order_ids)
    rates = []
    for raw in (False, True, False, True):  # Alternating, the second pair counted.
        start_at = time.time() + START_DELAY
        shares = [(env, ids[p::processes], raw, start_at) for p in range(processes)]
        with SPAWN.Pool(processes) as pool:
            spans = pool.starmap(_load_all, shares)
        seconds = max(e for _, e, _ in spans) - min(s for s, _, _ in spans)
        rates.append(sum(n for _, _, n in spans) / seconds)
    return rates[2], rates[3]


def line(label: str, processes: int, f: Figures, raw: Figures) -> str:
    return (
        f"{label:34} {processes:>4} {f.commands:>5} {f.per_second:>7.0f} {raw.per_second:>9.0f} "
        f"{f.per_second / raw.per_second:>5.2f}x {f.round_trips:>7.2f} {raw.round_trips:>7.2f} "
        f"{f.p99_ms:>7.1f} {raw.p99_ms:>7.1f}"
    )


def main() -> None:
    started = time.monotonic()
    print(
        f"DynamoDB Local, {os.cpu_count()} CPUs; OrderService.change_lines (1 event), every "
        "writer its own process; indexed rows with the indexer in its own process; raw = the "
        "same processes sending a consistent Query + conditional PutItem\n"
        f"{'row':34} {'proc':>4} {'cmds':>5} {'cmd/s':>7} {'raw cmd/s':>9} {'ratio':>6} "
        f"{'req/cmd':>7} {'raw req':>7} {'p99 ms':>7} {'raw p99':>7}",
        flush=True,
    )

    def distinct(mode: str, processes: int) -> Callable[[DynamoDBLocal], list[str]]:
        def run(server: DynamoDBLocal) -> list[str]:
            f, raw, _, _ = row(server, mode, processes)
            out = [line(f"{mode}, distinct orders", processes, f, raw)]
            if mode == "transactional" and processes == 8:  # Then the same server, indexed.
                f, raw, _, _ = row(server, "indexed", 8)
                out.append(line("indexed, previous workload's data", 8, f, raw))
            return out

        return run

    def indexed_8_then_one_order_and_replay(server: DynamoDBLocal) -> list[str]:
        f, raw, env, _ = row(server, "indexed", 8)
        out = [line("indexed, distinct orders", 8, f, raw)]
        f, raw, _, results = row(server, "indexed", 8, shared=True)
        versions = sorted(v for r in results for v in r.versions)
        applied = versions == list(range(versions[0], versions[0] + len(versions)))
        out.append(
            line("indexed, one order", 8, f, raw)
            + f"  (each command applied once, versions contiguous: {applied})"
        )
        for processes in (1, 8):
            framework, raw_rate = replay(env, processes)
            out.append(
                f"{'replay: load every order (no cache)':34} {processes:>4} {'':>5} "
                f"{framework:>7.0f} {raw_rate:>9.0f} {framework / raw_rate:>5.2f}x  orders/s"
            )
        return out

    runs: list[Callable[[DynamoDBLocal], list[str]]] = [
        distinct("transactional", 1),
        distinct("transactional", 8),
        distinct("indexed", 1),
        indexed_8_then_one_order_and_replay,
    ]
    for run in runs:
        server = DynamoDBLocal.start()  # A fresh server per group of rows.
        try:
            for text in run(server):
                print(text, flush=True)
        finally:
            server.stop()
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
