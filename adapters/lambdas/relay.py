"""The relay as an AWS Lambda function, run on a schedule (say every minute).

Each invocation takes the lease, relays until the log is caught up or ``margin`` seconds
before the function's timeout, and releases the lease; an invocation that finds the lease held
(a previous one still running) returns at once. The function's environment:

``DYNAMODB_TABLE_NAME``
    The event store table (and the store's other settings, see ``adapters.dynamodb``).
``ORDERS_EVENT_BUS`` (default ``orders``)
    The event bus.
``ORDERS_RELAY_LEASE_SECONDS`` (default ``60``)
    The lease term.
``ORDERS_METRICS``
    Where figures go (``adapters.observability.telemetry``; in Lambda, embedded-metric-format log
    lines by
    default), flushed at the end of every invocation: ``ParkedOrders`` and ``RelayStopped`` are
    what the alarms watch.

The service and clients are built on the first invocation and kept for the container's life.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol

import boto3

from adapters.bootstrap.relay import relay_for
from adapters.eventbridge.bus import EventBridgePublisher
from adapters.observability.telemetry import (
    MetricsSink,
    RelayMetrics,
    lambda_json_logs,
    metrics_from_env,
)
from adapters.relay.outbox import Relay, RelaySettings
from orders import OrderService

MARGIN_SECONDS = 10.0
"""Time kept free before the function's timeout: a window in flight finishes within it."""


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@cache
def _relay() -> tuple[Relay, MetricsSink]:
    lambda_json_logs()
    env = os.environ
    service = OrderService(
        env={
            "PERSISTENCE_MODULE": "adapters.dynamodb",
            "DYNAMODB_TABLE_NAME": env["DYNAMODB_TABLE_NAME"],
        }
    )
    sink = metrics_from_env(env)
    publisher = EventBridgePublisher(boto3.client("events"), env.get("ORDERS_EVENT_BUS", "orders"))
    settings = RelaySettings(lease_seconds=float(env.get("ORDERS_RELAY_LEASE_SECONDS", "60")))
    relay = relay_for(service, publisher, settings=settings, metrics=RelayMetrics(sink))
    return relay, sink


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
