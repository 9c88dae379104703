"""Lambda entry points that report metrics around a handler of another module.

:func:`indexer` is :func:`adapters.dynamodb.indexer.lambda_handler` (the table's stream
through an event source mapping) plus ``IndexerLag``: the age of the newest record of the
batch it indexed, in embedded metric format (see :mod:`adapters.telemetry`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from adapters.dynamodb.indexer import lambda_handler as index_records
from adapters.dynamodb.indexer import written_at
from adapters.telemetry import INDEXER_LAG, lambda_json_logs, metrics_from_env


def indexer(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Index the stream records of ``event``, then report how old the newest of them was."""
    lambda_json_logs()
    result = index_records(event, context)
    written = [
        moment for record in event.get("Records", []) if (moment := written_at(record)) is not None
    ]
    if written:
        metrics = metrics_from_env()
        metrics.gauge(INDEXER_LAG, max(0.0, time.time() - max(written)) * 1000)
        metrics.flush()
    return result
