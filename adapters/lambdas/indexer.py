"""The indexer as an AWS Lambda function: the table's stream through an event source mapping.

:func:`handler` indexes a batch of stream records, then reports ``IndexerLag``: the age of the
newest record of the batch, in embedded metric format (see :mod:`adapters.observability.telemetry`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cache
from typing import Any

from eventsourcing.persistence import OperationalError

from adapters.bootstrap.indexer import configured_indexer
from adapters.bootstrap.service import metrics_of
from adapters.dynamodb.indexer import Indexer
from adapters.dynamodb.log_writes import IndexerFencedError
from adapters.dynamodb.repair import MAX_FENCED
from adapters.dynamodb.shards import written_at
from adapters.observability.telemetry import INDEXER_LAG, MetricsSink, lambda_json_logs
from adapters.settings import Settings
from orders.backoff import Backoff

NEEDS = frozenset({"backend", "events_table", "write_mode"})


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Index the stream records of ``event``, then report how old the newest of them was."""
    indexer, metrics = _indexer()
    result = _index_records(indexer, event)
    written = [
        moment for record in event.get("Records", []) if (moment := written_at(record)) is not None
    ]
    if written:
        metrics.gauge(INDEXER_LAG, max(0.0, time.time() - max(written)) * 1000)
        metrics.flush()
    return result


@cache
def _indexer() -> tuple[Indexer, MetricsSink]:
    """One indexer per Lambda container, of the configured table and namespace."""
    settings = Settings.load()
    lambda_json_logs(settings.in_lambda)
    return configured_indexer(settings), metrics_of(settings)


def _index_records(indexer: Indexer, event: Mapping[str, Any]) -> dict[str, Any]:
    """Index a batch of the event source mapping (which keeps its own checkpoint per shard):
    whole, or the invocation fails and is retried (records seen again are dropped by the
    indexed-version check)."""
    batches = [
        batch
        for record in event.get("Records", [])
        if (batch := indexer.batch_of(record)) is not None
    ]
    for fenced in range(1, MAX_FENCED + 1):
        try:
            indexed = indexer.index(batches)
        except IndexerFencedError:
            # Another shard's invocation advanced the head: number again, after a pause.
            Backoff(base=0.05, cap=2.0).pause(fenced)
            indexer.load()
            continue
        return {"indexed": indexed, "batchItemFailures": []}
    msg = "the log head kept moving under this invocation"
    raise OperationalError(msg)
