"""Benchmark of the indexer beside raw ``GetRecords`` on the same stream, and of ``rebuild``.

Run on demand (it is not a test)::

    .venv/bin/python -m tests.benchmarks.bench_indexer [EVENTS]

On a DynamoDB Local of its own it writes a backlog of ``EVENTS`` events (default 20,000:
1-event saves and some 3-event saves, over 2,000 streams) with the indexer stopped, then:

1. a raw ``GetRecords`` loop reads the whole stream (records/s);
2. the indexer indexes the backlog (events/s, writes, requests); its transactions are
   recorded as sent;
3. the same transactions are sent again, raw, to a fresh table (the write half of the
   indexer's work with nothing of ours around it), so raw read + raw write time is the
   baseline doing the same reads and writes: the ratio says what bounds the indexer;
4. ``rebuild`` on the indexed table after ``EVENTS // 100`` more events were saved with the
   indexer stopped (events/s appended, requests by operation).

Every phase is bounded by the backlog's size; figures vary a lot on a small, busy machine.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventsourcing.persistence import StoredEvent

from adapters.dynamodb import DynamoDBDatastore, DynamoDBIndexedApplicationRecorder
from adapters.dynamodb.indexer import Indexer
from adapters.dynamodb.repair import rebuild
from tests.support.dynamodb_local import DynamoDBLocal

NAMESPACE = "bench_events"
STREAMS = 2_000
STATE = b'{"lines":[{"sku":"SKU-1","quantity":1,"unit_price":"2.50"}]}' * 3


def write_backlog(recorder: DynamoDBIndexedApplicationRecorder, events: int) -> dict[UUID, int]:
    """About ``events`` events: per stream, 1-event saves, every fifth save 3 events."""
    streams = {uuid4(): 0 for _ in range(STREAMS)}

    def write(stream: UUID) -> int:
        version, saves = 0, 0
        while version < events // STREAMS:
            size = 3 if saves % 5 == 4 else 1
            batch = [
                StoredEvent(stream, v, "topic", STATE)
                for v in range(version + 1, version + size + 1)
            ]
            recorder.insert_events(batch)
            version += size
            saves += 1
        return version

    with ThreadPoolExecutor(4) as pool:
        for stream, last in zip(streams, pool.map(write, streams), strict=True):
            streams[stream] = last
    return streams


def raw_get_records(server: DynamoDBLocal, table: str) -> tuple[int, float, int]:
    """Reads every record of the table's stream: records, seconds, requests."""
    streams = server.streams_client()
    arn = server.client().describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records = requests = 0
    started = time.perf_counter()
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        ).get("ShardIterator")
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            requests += 1
            records += len(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records, time.perf_counter() - started, requests


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    server = DynamoDBLocal.start()
    try:
        table = server.new_table()
        datastore = DynamoDBDatastore(server.client(), table)
        recorder = DynamoDBIndexedApplicationRecorder(datastore, events_namespace=NAMESPACE)
        started = time.perf_counter()
        streams = write_backlog(recorder, events)
        total = sum(streams.values())
        print(f"backlog: {total:,} events in {time.perf_counter() - started:.1f} s", flush=True)

        records, raw_read_seconds, raw_requests = raw_get_records(server, table)
        print(
            f"raw GetRecords loop: {records:,} records in {raw_read_seconds:.2f} s = "
            f"{records / raw_read_seconds:,.0f} records/s ({raw_requests} requests)",
            flush=True,
        )

        sent: list[list[Any]] = []
        datastore.client.meta.events.register(
            "provide-client-params.dynamodb.TransactWriteItems",
            lambda params, **kwargs: sent.append(params["TransactItems"]),
        )
        indexer = Indexer(datastore, server.streams_client(), NAMESPACE)
        before = datastore.metrics.snapshot()
        started = time.perf_counter()
        indexed = indexer.catch_up(timeout=600)
        indexer_seconds = time.perf_counter() - started
        cost = datastore.metrics.snapshot() - before
        print(
            f"indexer: {indexed:,} events in {indexer_seconds:.2f} s = "
            f"{indexed / indexer_seconds:,.0f} events/s; {indexer.writes} writes "
            f"({indexed / max(1, indexer.writes):.0f} events each), "
            f"{cost.round_trips} DynamoDB requests",
            flush=True,
        )

        replay = server.new_table()
        client = server.client()
        started = time.perf_counter()
        for actions in sent:
            items = [
                {kind: {**body, "TableName": replay}}
                for action in actions
                for kind, body in action.items()
            ]
            client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        raw_write_seconds = time.perf_counter() - started
        raw_seconds = raw_read_seconds + raw_write_seconds
        print(
            f"raw, the same writes replayed: {len(sent)} transactions in "
            f"{raw_write_seconds:.2f} s; raw reads + writes = {total / raw_seconds:,.0f} "
            f"events/s; indexer / raw GetRecords = "
            f"{raw_read_seconds / indexer_seconds:.2f}x, indexer / (raw reads + the same "
            f"writes) = {raw_seconds / indexer_seconds:.2f}x",
            flush=True,
        )

        late = list(streams)[: max(1, events // 300)]
        for stream in late:
            version = streams[stream]
            recorder.insert_events(
                [StoredEvent(stream, v, "topic", STATE) for v in range(version + 1, version + 4)]
            )
        before = datastore.metrics.snapshot()
        started = time.perf_counter()
        appended = rebuild(Indexer(datastore, server.streams_client(), NAMESPACE))
        seconds = time.perf_counter() - started
        cost = datastore.metrics.snapshot() - before
        calls = ", ".join(f"{name} {c.calls}" for name, c in sorted(cost.by_operation.items()))
        print(
            f"rebuild over {total + 3 * len(late):,} stored events ({len(streams):,} streams):"
            f" {appended:,} appended in {seconds:.2f} s "
            f"({(total + 3 * len(late)) / seconds:,.0f} stored events/s scanned); "
            f"requests: {calls}",
            flush=True,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
