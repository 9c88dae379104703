"""The projection runners as an AWS Lambda function, run on a schedule."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from adapters.bootstrap.projections import dynamodb_view_store, process_new, report_lag, runners
from adapters.observability.telemetry import lambda_json_logs, metrics_from_env
from orders import OrderService
from projections.runtime import Runner

_lambda_runners: list[Runner] = []


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry point: process what is new in every projection, then return.

    Reads ``DYNAMODB_TABLE_NAME`` (events) and ``ORDERS_VIEWS_TABLE`` from the environment;
    stops 10 s before the invocation's deadline. Returns the notifications processed and
    each projection's position.
    """
    if not _lambda_runners:
        lambda_json_logs()
        table = os.environ["DYNAMODB_TABLE_NAME"]
        service = OrderService(env={"PERSISTENCE_MODULE": "adapters.dynamodb"})
        _lambda_runners.extend(runners(service, dynamodb_view_store(service, table)))
    seconds_left = context.get_remaining_time_in_millis() / 1000 - 10 if context else 60.0
    processed = process_new(_lambda_runners, seconds_left)
    metrics = metrics_from_env()
    report_lag(_lambda_runners, metrics)
    metrics.flush()
    positions = {r.projection.name: r.progress().position for r in _lambda_runners}
    return {"processed": processed, "positions": positions}
