"""The relay as an AWS Lambda function, run on a schedule (say every minute).

Each invocation takes the lease, relays until the log is caught up or ``MARGIN_SECONDS``
before the function's timeout, and releases the lease; an invocation that finds the lease held
(a previous one still running) returns at once. Metrics are flushed at the end of every
invocation: ``ParkedOrders`` and ``RelayStopped`` are what the alarms watch. The relay is built
on the first invocation and kept for the container's life.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol

from adapters.bootstrap.relay import eventbridge_relay
from adapters.bootstrap.service import metrics_of
from adapters.observability.telemetry import MetricsSink, lambda_json_logs
from adapters.relay.outbox import Relay
from adapters.settings import Settings

NEEDS = frozenset({"backend", "events_table", "write_mode", "bus_name", "relay_lease_seconds"})
MARGIN_SECONDS = 10.0
"""Time kept free before the function's timeout: a window in flight finishes within it."""


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@cache
def _relay() -> tuple[Relay, MetricsSink]:
    settings = Settings.load()
    lambda_json_logs(settings.in_lambda)
    metrics = metrics_of(settings)
    return eventbridge_relay(settings, metrics), metrics


def handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, int]:
    """Relays what the log holds; returns ``published`` (events published or parked),
    ``position``, ``lag`` and ``parked`` (orders waiting for an operator).

    An event that can never be published parks its order (``orders parked``); only a call
    refused for good as a whole (a missing bus) raises, after the metric was reported.
    """
    relay, metrics = _relay()
    remaining = context.get_remaining_time_in_millis() / 1000
    try:
        published = relay.run_until_caught_up(deadline=time.time() + remaining - MARGIN_SECONDS)
    finally:
        metrics.flush()
    status = relay.status()
    return {
        "published": published,
        "position": status.position,
        "lag": status.lag,
        "parked": status.parked,
    }
