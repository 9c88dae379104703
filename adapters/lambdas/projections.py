"""The projection runners as an AWS Lambda function, run on a schedule.

Each invocation processes what is new in the log for every projection until
``MARGIN_SECONDS`` before its deadline, reports each projection's lag, and returns; the next
invocation resumes from the tracked positions.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from adapters.bootstrap.projections import process_new, report_lag, runners, view_store
from adapters.bootstrap.service import metrics_of, order_service
from adapters.observability.telemetry import MetricsSink, lambda_json_logs
from adapters.settings import Settings
from projections.runtime import Runner

NEEDS = frozenset({"backend", "events_table", "write_mode", "views_table"})
MARGIN_SECONDS = 10.0


@cache
def _runners() -> tuple[list[Runner], MetricsSink]:
    settings = Settings.load()
    lambda_json_logs(settings.in_lambda)
    service = order_service(settings)
    return runners(service, view_store(settings, service)), metrics_of(settings)


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Process what is new in every projection, then return the notifications processed and
    each projection's position."""
    workers, metrics = _runners()
    seconds_left = context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    processed = process_new(workers, seconds_left)
    report_lag(workers, metrics)
    metrics.flush()
    positions = {r.projection.name: r.progress().position for r in workers}
    return {"processed": processed, "positions": positions}
