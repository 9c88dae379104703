"""Verifying and rebuilding the indexed mode's log from the stream items in the table.

- :func:`verify` compares the log with the stream items in memory bounded by the number of
  streams (a count, a last version and a digest each), never by their payloads: one pass
  over the log, then one ``Scan`` of the stream items, page by page.
- :func:`rebuild` indexes every stream item the log is missing (after an outage longer than
  the stream's 24 hours) on a table of any size: it reads the indexed versions first, then
  goes through the stream items a ``Scan`` page at a time, indexing only what is missing.
  It is safe while an indexer runs (the log head's condition lets one writer advance at a
  time) and safe to repeat or resume after a failure: what is indexed already is skipped
  (known from the indexed versions, or learned from a refused write, which is progress).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import OperationalError

from adapters.dynamodb.datastore import DynamoDBDatastore, translate_errors
from adapters.dynamodb.indexer import Indexer
from adapters.dynamodb.items import (
    EVENTS,
    FIRST,
    LAST,
    NOTIFICATION_ID,
    VERSION,
    decode_originator,
    indexed_pk,
    key,
    log_head_pk,
    log_pk,
    stream_pk,
)
from adapters.dynamodb.log_writes import IndexerFencedError
from adapters.dynamodb.shards import StreamBatch
from orders.backoff import Backoff

MAX_FENCED = 50
"""Writes in a row a rebuild lets a running indexer's writes fence off before it gives up."""


@dataclass
class VerifyReport:
    """What :func:`verify` found; ``ok`` when the log is exactly the stream items' events."""

    log_events: int = 0
    stored_events: int = 0
    last_id: int = 0
    gaps: list[int] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    not_stored: list[tuple[str, int]] = field(default_factory=list)
    differing: list[tuple[str, int]] = field(default_factory=list)
    """Streams whose logged events differ from the stored ones, with their last version."""
    not_indexed: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        problems = (
            self.gaps,
            self.duplicates,
            self.out_of_order,
            self.not_stored,
            self.differing,
            self.not_indexed,
        )
        return not any(problems)


def scan_stream_items(
    datastore: DynamoDBDatastore, events_namespace: str
) -> Iterator[list[StreamBatch]]:
    """The indexed-mode event items of the namespace, one ``Scan`` page (1 MB) at a time."""
    kwargs: dict[str, Any] = {
        "TableName": datastore.table_name,
        "ConsistentRead": True,
        "FilterExpression": "begins_with(pk, :prefix) AND attribute_exists(#l)",
        "ExpressionAttributeValues": {":prefix": {"S": stream_pk(events_namespace, "")}},
        "ExpressionAttributeNames": {"#l": LAST},
        "ReturnConsumedCapacity": "TOTAL",
    }
    while True:
        with translate_errors(datastore.table_name):
            page = datastore.client.scan(**kwargs)
        consumed = page.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0)
        datastore.metrics.add_estimate("Scan", float(consumed))
        yield [StreamBatch.from_item(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stream_items(datastore: DynamoDBDatastore, events_namespace: str) -> list[StreamBatch]:
    """Every event item of the namespace, sorted by stream and version (small tables, tests)."""
    batches = [b for page in scan_stream_items(datastore, events_namespace) for b in page]
    return sorted(batches, key=lambda b: (str(b.originator_id), b.first))


def indexed_versions(datastore: DynamoDBDatastore, events_namespace: str) -> dict[str, int]:
    """Per stream, the version its indexed-version item holds (one ``Scan`` of those items)."""
    prefix = indexed_pk(events_namespace, "")
    found = {}
    for item in datastore.scan("begins_with(pk, :p)", {":p": {"S": prefix}}, "pk, v"):
        found[item["pk"]["S"][len(prefix) :]] = int(item[VERSION]["N"])
    return found


class _Digests:
    """Per stream: events seen, the last version, and a digest of the events in order."""

    def __init__(self) -> None:
        self.streams: dict[str, tuple[int, int, bytes]] = {}

    def add(self, name: str, version: int, fields: dict[str, Any]) -> int:
        """Adds an event; returns the stream's last version before it."""
        count, last, digest = self.streams.get(name, (0, 0, b""))
        step = hashlib.blake2b(digest, digest_size=16)
        step.update(str(version).encode() + fields["t"]["S"].encode() + bytes(fields["s"]["B"]))
        if version > last:
            self.streams[name] = (count + 1, version, step.digest())
        return last


def verify(datastore: DynamoDBDatastore, events_namespace: str) -> VerifyReport:
    """Compares the log (every log item) with the stream items, stream by stream."""
    report = VerifyReport()
    head = datastore.get_item(key(log_head_pk(events_namespace))) or {}
    report.last_id = int(head[NOTIFICATION_ID]["N"]) if NOTIFICATION_ID in head else 0
    logged = _read_log(datastore, events_namespace, report)
    stored = _Digests()
    for page in scan_stream_items(datastore, events_namespace):
        for batch in page:
            name = str(batch.originator_id)
            log_last = logged.streams.get(name, (0, 0, b""))[1]
            for encoded in batch.events:
                version = int(encoded["M"][VERSION]["N"])
                report.stored_events += 1
                if version <= log_last:
                    stored.add(name, version, encoded["M"])
                else:
                    report.not_indexed.append((name, version))
    for name, (count, last, digest) in logged.streams.items():
        stored_count, stored_last, stored_digest = stored.streams.get(name, (0, 0, b""))
        if stored_last < last:
            report.not_stored += [(name, v) for v in range(stored_last + 1, last + 1)]
        elif digest != stored_digest and count == stored_count:
            report.differing.append((name, last))
    report.not_indexed.sort()
    return report


def _read_log(datastore: DynamoDBDatastore, namespace: str, report: VerifyReport) -> _Digests:
    """One pass over the log: gaps, duplicates and order into ``report``; digests back."""
    logged = _Digests()
    skipped: dict[str, set[int]] = {}  # Versions a stream's log jumped over (out of order).
    expected_id = 1
    for item in datastore.query("pk = :pk", {":pk": {"S": log_pk(namespace)}}):
        if int(item[FIRST]["N"]) != expected_id:
            report.gaps.append(expected_id)
        expected_id = int(item["sk"]["N"]) + 1
        for element in item[EVENTS]["L"]:
            fields = element["M"]
            name = str(decode_originator(fields))
            version = int(fields[VERSION]["N"])
            report.log_events += 1
            last = logged.add(name, version, fields)
            if version <= last:
                if version in skipped.get(name, set()):
                    skipped[name].discard(version)
                    report.out_of_order.append(f"{name} version {version}")
                else:
                    report.duplicates.append((name, version))
            elif version > last + 1:
                skipped.setdefault(name, set()).update(range(last + 1, version))
    if expected_id - 1 != report.last_id:
        report.gaps.append(expected_id)
    return logged


@dataclass
class RebuildProgress:
    """How far a rebuild is: stream items scanned, events appended, writes refused."""

    items_scanned: int = 0
    events_appended: int = 0
    pages: int = 0


def rebuild(indexer: Indexer, *, progress: Callable[[RebuildProgress], None] | None = None) -> int:
    """Indexes every stream item of the namespace the log is missing; events appended.

    ``progress`` is called after each ``Scan`` page with the figures so far.
    """
    datastore, namespace = indexer.datastore, indexer.events_namespace
    known = indexed_versions(datastore, namespace)
    state = RebuildProgress()
    backoff = Backoff(base=0.05, cap=2.0)
    indexer.load()
    indexer.know(known)
    for page in scan_stream_items(datastore, namespace):
        todo = [b for b in page if b.last > known.get(str(b.originator_id), 0)]
        for fenced in range(1, MAX_FENCED + 1):
            try:
                state.events_appended += indexer.index(todo)
                break
            except IndexerFencedError:
                # A running indexer advanced the head: number from where it is now.
                backoff.pause(fenced)
                indexer.load()
                indexer.know(known)
        else:
            msg = "rebuild: the log head kept moving (is an indexer writing flat out?)"
            raise OperationalError(msg)
        state.items_scanned += len(page)
        state.pages += 1
        if progress is not None:
            progress(state)
    return state.events_appended
