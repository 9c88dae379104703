"""Metrics and structured logs: the one place that names every metric and its dimensions.

Metrics. Each :class:`MetricSpec` below is a CloudWatch metric of the namespace
``$ORDERS_METRICS_NAMESPACE`` (default ``EventsourcedOrders``; the template sets one per
stage), with exactly the dimensions it lists, so alarms can name them. Code reports through a
:class:`MetricsSink`, in two small calls::

    metrics.count(CONSUMER_FAILURES, Consumer="notifications")
    metrics.gauge(RELAY_LAG, notifications_behind)

A sink buffers what it is given and sends it on :meth:`MetricsSink.flush`: :class:`EmfMetrics`
prints CloudWatch embedded-metric-format lines through Powertools' metrics (in Lambda, where
the log line is the metric; flush at the end of each invocation), :class:`CloudWatchMetrics`
calls ``put_metric_data`` (long-lived workers; it flushes by itself once a minute, and on
:meth:`MetricsSink.flush`), :class:`NullMetrics` drops everything. :func:`metrics_sink`
picks one. A value given with other dimensions than its metric declares is refused
(``ValueError``), so no metric drifts from its alarms.

Logs. :func:`get_logger` is Powertools' JSON ``Logger`` (stdout in Lambda, stderr in workers,
the same fields either way); :func:`event_fields` are the fields every line that handles an
event carries (``order_id``, ``event_id``, ``correlation_id``), passed as ``extra=``.

It imports nothing of the domain, so every adapter (the DynamoDB persistence module included)
may use it.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import EphemeralMetrics
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

_log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "EventsourcedOrders"
"""``emf``, ``cloudwatch`` or ``off``; unset: ``emf`` in Lambda, else ``off``."""
SERVICE_NAME = "orders"


@dataclass(frozen=True)
class MetricSpec:
    """A metric: its CloudWatch name, unit, the dimensions every value carries, its meaning."""

    name: str
    unit: str
    dimensions: tuple[str, ...]
    meaning: str


COMMANDS: Final = MetricSpec(
    "Commands",
    "Count",
    ("Command", "Outcome"),
    "commands run; Outcome is ok, unchanged (a repeat), rejected (a rule), not-found, "
    "conflict (gave up after the retries) or error",
)
CONFLICTS: Final = MetricSpec(
    "Conflicts", "Count", ("Command",), "saves rejected because the order moved meanwhile"
)
RETRIES: Final = MetricSpec(
    "Retries", "Count", ("Command",), "conflicts after which the command decided again"
)
SAVE_LATENCY: Final = MetricSpec(
    "SaveLatency", "Milliseconds", ("Command",), "time of one save, conflicting or not"
)
RELAY_LAG: Final = MetricSpec(
    "RelayLag", "Count", (), "notifications in the log the relay has not yet published"
)
RELAY_PUBLISHED: Final = MetricSpec(
    "RelayPublishedEntries", "Count", (), "entries EventBridge accepted"
)
RELAY_FAILED: Final = MetricSpec(
    "RelayFailedEntries", "Count", (), "entries EventBridge refused (retried)"
)
RELAY_CALLS: Final = MetricSpec("RelayPutEventsCalls", "Count", (), "PutEvents calls made")
RELAY_STOPPED: Final = MetricSpec(
    "RelayStopped",
    "Count",
    (),
    "the relay stopped: a call refused for good (missing bus, access denied) or any other "
    "permanent error",
)
PARKED_ORDERS: Final = MetricSpec(
    "ParkedOrders",
    "Count",
    (),
    "orders a worker (a relay, a projection runner) parked on an event it cannot handle; "
    "their events wait for an operator (orders parked list); reported every cycle",
)
INDEXER_LAG: Final = MetricSpec(
    "IndexerLag",
    "Milliseconds",
    (),
    # From the record's ApproximateCreationDateTime, which AWS rounds down to the second.
    "age of the newest stream record the indexer appended",
)
PROJECTION_LAG: Final = MetricSpec(
    "ProjectionLag", "Count", ("Projection",), "notifications a projection has yet to apply"
)
WORKER_TRANSIENT_ERRORS: Final = MetricSpec(
    "WorkerTransientErrors",
    "Count",
    ("Worker",),
    "transient AWS errors (throttling, 5xx, connection, timeout) a worker paused on and survived",
)
WORKER_STOPPED: Final = MetricSpec(
    "WorkerStopped", "Count", ("Worker",), "a worker stopped on a permanent error"
)
CONSUMER_SUCCESSES: Final = MetricSpec(
    "ConsumerSuccesses", "Count", ("Consumer",), "messages a consumer handled"
)
CONSUMER_FAILURES: Final = MetricSpec(
    "ConsumerFailures",
    "Count",
    ("Consumer",),
    "messages a consumer failed (malformed, invalid or its handler raised); retried, then "
    "dead-lettered",
)

ALL_METRICS: Final = (
    COMMANDS,
    CONFLICTS,
    RETRIES,
    SAVE_LATENCY,
    RELAY_LAG,
    RELAY_PUBLISHED,
    RELAY_FAILED,
    RELAY_CALLS,
    RELAY_STOPPED,
    PARKED_ORDERS,
    INDEXER_LAG,
    PROJECTION_LAG,
    WORKER_TRANSIENT_ERRORS,
    WORKER_STOPPED,
    CONSUMER_SUCCESSES,
    CONSUMER_FAILURES,
)

_Key = tuple[MetricSpec, tuple[tuple[str, str], ...]]


class MetricsSink(ABC):
    """Where metric values go. Thread-safe; recording never does I/O except as documented."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[_Key, list[float]] = {}

    def count(self, metric: MetricSpec, n: float = 1, **dimensions: str) -> None:
        """Add ``n`` occurrences to ``metric`` (with exactly its declared dimensions)."""
        self.record(metric, n, **dimensions)

    def gauge(self, metric: MetricSpec, value: float, **dimensions: str) -> None:
        """Report the current ``value`` of ``metric`` (a lag, a latency)."""
        self.record(metric, value, **dimensions)

    def record(self, metric: MetricSpec, value: float, **dimensions: str) -> None:
        """Buffer one value; ``ValueError`` if the dimensions are not the declared ones."""
        if set(dimensions) != set(metric.dimensions):
            msg = (
                f"metric {metric.name} takes dimensions {list(metric.dimensions)}, "
                f"not {sorted(dimensions)}"
            )
            raise ValueError(msg)
        key = (metric, tuple((name, str(dimensions[name])) for name in metric.dimensions))
        with self._lock:
            self._values.setdefault(key, []).append(float(value))

    def flush(self) -> None:
        """Send every buffered value (nothing if none)."""
        with self._lock:
            values, self._values = self._values, {}
        if values:
            self._send(values)

    @abstractmethod
    def _send(self, values: Mapping[_Key, list[float]]) -> None:
        """Deliver ``values``, grouped by metric and dimension values."""


class NullMetrics(MetricsSink):
    """Checks and drops every value (metrics off)."""

    def _send(self, values: Mapping[_Key, list[float]]) -> None:
        return


class EmfMetrics(MetricsSink):
    """Prints CloudWatch embedded-metric-format lines on stdout through Powertools' metrics:
    one line per set of dimension values, holding every metric and value buffered for it."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        super().__init__()
        self.namespace = namespace

    def _send(self, values: Mapping[_Key, list[float]]) -> None:
        for dimensions, metrics in _by_dimensions(values):
            emf = EphemeralMetrics(namespace=self.namespace)
            for name, value in dimensions:
                emf.add_dimension(name=name, value=value)
            for metric, numbers in metrics:
                for number in numbers:
                    emf.add_metric(name=metric.name, unit=metric.unit, value=number)
            emf.flush_metrics()


class CloudWatchMetrics(MetricsSink):
    """Sends values with ``put_metric_data`` as statistic sets (count, sum, min, max per
    metric and dimension values), at most 500 data per call. A call that fails is logged and
    its values dropped, never raised: figures must not stop the work they count.

    ``interval``: a value recorded when the last flush is older than this many seconds
    flushes first, so a worker needs no timer of its own; call :meth:`flush` when it stops.
    """

    BATCH = 500

    def __init__(
        self,
        client: CloudWatchClient,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.client = client
        self.namespace = namespace
        self.interval = interval
        self._clock = clock
        self._last_flush = clock()

    def record(self, metric: MetricSpec, value: float, **dimensions: str) -> None:
        super().record(metric, value, **dimensions)
        if self._clock() - self._last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        self._last_flush = self._clock()
        super().flush()

    def _send(self, values: Mapping[_Key, list[float]]) -> None:
        data: list[MetricDatumTypeDef] = [
            {
                "MetricName": metric.name,
                "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions],
                "Unit": metric.unit,  # type: ignore[typeddict-item]
                "StatisticValues": {
                    "SampleCount": len(numbers),
                    "Sum": sum(numbers),
                    "Minimum": min(numbers),
                    "Maximum": max(numbers),
                },
            }
            for (metric, dimensions), numbers in values.items()
        ]
        for start in range(0, len(data), self.BATCH):
            try:
                self.client.put_metric_data(
                    Namespace=self.namespace, MetricData=data[start : start + self.BATCH]
                )
            except (BotoCoreError, ClientError) as error:
                _log.warning("%d metric data not sent to CloudWatch: %s", len(data), error)


def _by_dimensions(
    values: Mapping[_Key, list[float]],
) -> Iterator[tuple[tuple[tuple[str, str], ...], list[tuple[MetricSpec, list[float]]]]]:
    groups: dict[tuple[tuple[str, str], ...], list[tuple[MetricSpec, list[float]]]] = {}
    for (metric, dimensions), numbers in values.items():
        groups.setdefault(dimensions, []).append((metric, numbers))
    yield from groups.items()


class RelayMetrics:
    """The relay's metrics port (``put`` of its named values), reporting to a sink under the
    names above: ``Lag`` is a gauge, the others counts."""

    NAMES: Final = {
        "PublishedEvents": RELAY_PUBLISHED,
        "RetriedEntries": RELAY_FAILED,
        "PublishCalls": RELAY_CALLS,
        "Stopped": RELAY_STOPPED,
        "ParkedOrders": PARKED_ORDERS,
        "Lag": RELAY_LAG,
    }

    def __init__(self, sink: MetricsSink) -> None:
        self.sink = sink

    def put(self, values: Mapping[str, float]) -> None:
        """Record ``values``; ``ValueError`` for a name not mapped here."""
        for name, value in values.items():
            if name not in self.NAMES:
                msg = f"relay metric {name!r} is not one of {sorted(self.NAMES)}"
                raise ValueError(msg)
            self.sink.record(self.NAMES[name], value)


def metrics_sink(
    choice: str,
    namespace: str = DEFAULT_NAMESPACE,
    cloudwatch: Callable[[], CloudWatchClient] | None = None,
) -> MetricsSink:
    """The sink ``choice`` names (``emf``, ``cloudwatch``, ``off``: the ``ORDERS_METRICS``
    setting). ``cloudwatch`` builds the client (the composition root's), called only when
    that sink is chosen."""
    if choice == "emf":
        return EmfMetrics(namespace)
    if choice == "cloudwatch":
        if cloudwatch is None:
            msg = "the cloudwatch metrics sink needs a CloudWatch client"
            raise ValueError(msg)
        return CloudWatchMetrics(cloudwatch(), namespace)
    if choice == "off":
        return NullMetrics()
    msg = f"ORDERS_METRICS must be emf, cloudwatch or off, not {choice!r}"
    raise ValueError(msg)


_log_stream: list[Any] = [sys.stderr]
"""Where :func:`get_logger` writes by default: stderr, stdout once :func:`lambda_json_logs`
ran in Lambda (where stdout is the function's log)."""


def get_logger(service: str = SERVICE_NAME, stream: Any = None) -> Logger:
    """Powertools' JSON logger: on stdout in Lambda, on stderr elsewhere (unless ``stream``).

    Loggers of one ``service`` share their handler: the first call configures it.
    """
    return Logger(service=service, stream=_log_stream[0] if stream is None else stream)


OUR_PACKAGES: Final = frozenset({"adapters", "orders", "projections", "schemas"})


@functools.cache
def lambda_json_logs(in_lambda: bool = True) -> None:
    """In Lambda, our packages' standard-library loggers (``adapters.relay.outbox``,
    ``adapters.dynamodb.indexer``, ...) write through :func:`get_logger`'s JSON handler, so
    every line a function of ours prints is JSON. Elsewhere it does nothing (workers and
    tests keep the standard logging set-up). Once per process: later calls do nothing."""
    if not in_lambda:
        return
    _log_stream[0] = sys.stdout
    for package in OUR_PACKAGES:
        logging.getLogger(package)  # Registered, so Powertools finds it.
    copy_config_to_registered_loggers(source_logger=get_logger(), include=set(OUR_PACKAGES))


def event_fields(
    order_id: UUID | str | None,
    event: UUID | str | None,
    correlation_id: str | None,
    **more: object,
) -> dict[str, object]:
    """The fields of a log line that handles an event (pass as ``extra=``); None if unknown."""
    return {
        "order_id": None if order_id is None else str(order_id),
        "event_id": None if event is None else str(event),
        "correlation_id": correlation_id,
        **more,
    }
