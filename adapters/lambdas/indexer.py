"""The indexer as an AWS Lambda function: the table's stream through an event source mapping.

:func:`handler` indexes a batch of stream records, then reports ``IndexerLag``: the age of the
newest record of the batch, in embedded metric format (see :mod:`adapters.observability.telemetry`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from eventsourcing.persistence import OperationalError

from adapters.dynamodb import DynamoDBFactory
from adapters.dynamodb.indexer import Indexer
from adapters.dynamodb.log_writes import IndexerFencedError
from adapters.dynamodb.repair import MAX_FENCED
from adapters.dynamodb.shards import written_at
from adapters.observability.telemetry import INDEXER_LAG, lambda_json_logs, metrics_from_env
from orders.backoff import Backoff


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Index the stream records of ``event``, then report how old the newest of them was."""
    lambda_json_logs()
    result = _index_records(event, context)
    written = [
        moment for record in event.get("Records", []) if (moment := written_at(record)) is not None
    ]
    if written:
        metrics = metrics_from_env()
        metrics.gauge(INDEXER_LAG, max(0.0, time.time() - max(written)) * 1000)
        metrics.flush()
    return result


_indexer: Indexer | None = None


def _index_records(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """The handler of a Lambda function on the table's stream (event source mapping).

    Configured by the environment as the persistence module (``DYNAMODB_TABLE_NAME``,
    ``AWS_*``) plus ``INDEXER_EVENTS_NAMESPACE`` (for example ``orderservice_events``). The
    mapping keeps its own checkpoint per shard; the batch is indexed whole or the invocation
    fails and is retried (records seen again are dropped by the indexed-version check).
    """
    global _indexer  # noqa: PLW0603 - one indexer per Lambda container, by design.
    if _indexer is None:
        factory = DynamoDBFactory(dict(os.environ))
        _indexer = Indexer(factory.datastore, None, os.environ["INDEXER_EVENTS_NAMESPACE"])
    indexer = _indexer
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
