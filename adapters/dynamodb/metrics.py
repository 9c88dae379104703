"""Counts every DynamoDB call the event store makes: requests, round trips, capacity.

A :class:`DynamoDBMetrics` attaches to a boto3 DynamoDB client through botocore's event
hooks, so it sees exactly what goes over the wire: ``before-send`` fires once per HTTP
request (botocore's own retries included), ``after-call`` once per API call with the parsed
response (failed calls included), whose ``ConsumedCapacity`` it adds up. The store asks for
``ReturnConsumedCapacity="TOTAL"`` on every data call; a call cancelled or rejected by
DynamoDB reports no capacity.

DynamoDB Local reports write capacity by rules of its own (a transaction of four small items
is 2 units there, 8 on AWS), so the datastore also adds up ``estimated_units``: the capacity
AWS bills for each successful call by its published rules (2 write units per started KB of
each item written in a transaction, 1 per started KB outside one; 1 read unit per started
4 KB read strongly consistent, at least 1 per call), from the item sizes the store computes.
For a ``Query`` it takes the units reported, which follow AWS's read rules on both servers.
Publish ``estimated_units`` when measuring on DynamoDB Local, ``capacity_units`` on AWS.

Typical use (a benchmark publishing per-command figures)::

    before = datastore.metrics.snapshot()
    service.place_order(...)
    cost = datastore.metrics.snapshot() - before
    cost.round_trips, cost.estimated_units, cost.by_operation["TransactWriteItems"].calls
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class OperationCount:
    """Figures of one DynamoDB operation (``"Query"``, ``"TransactWriteItems"``, ...).

    ``calls`` API calls made, ``round_trips`` HTTP requests sent (more than ``calls`` when
    botocore retried), ``errors`` calls that ended in an error response (for example a
    cancelled transaction), ``capacity_units`` the capacity DynamoDB reported as consumed,
    ``estimated_units`` the capacity AWS bills by its published rules.
    """

    calls: int = 0
    round_trips: int = 0
    errors: int = 0
    capacity_units: float = 0.0
    estimated_units: float = 0.0

    def __add__(self, other: OperationCount) -> OperationCount:
        # Field by field: dataclasses.astuple deep-copies, which costs every counted call.
        return OperationCount(
            self.calls + other.calls,
            self.round_trips + other.round_trips,
            self.errors + other.errors,
            self.capacity_units + other.capacity_units,
            self.estimated_units + other.estimated_units,
        )

    def __sub__(self, other: OperationCount) -> OperationCount:
        return OperationCount(
            self.calls - other.calls,
            self.round_trips - other.round_trips,
            self.errors - other.errors,
            self.capacity_units - other.capacity_units,
            self.estimated_units - other.estimated_units,
        )


@dataclass(frozen=True)
class MetricsSnapshot:
    """Figures per operation at one moment; subtract two snapshots to cost what happened.

    The properties are the totals over all operations.
    """

    by_operation: Mapping[str, OperationCount] = field(default_factory=dict)

    @property
    def total(self) -> OperationCount:
        return sum(self.by_operation.values(), OperationCount())

    @property
    def calls(self) -> int:
        return self.total.calls

    @property
    def round_trips(self) -> int:
        return self.total.round_trips

    @property
    def errors(self) -> int:
        return self.total.errors

    @property
    def capacity_units(self) -> float:
        return self.total.capacity_units

    @property
    def estimated_units(self) -> float:
        return self.total.estimated_units

    def __sub__(self, other: MetricsSnapshot) -> MetricsSnapshot:
        names = set(self.by_operation) | set(other.by_operation)
        zero = OperationCount()
        difference = {
            name: self.by_operation.get(name, zero) - other.by_operation.get(name, zero)
            for name in names
        }
        return MetricsSnapshot({name: count for name, count in difference.items() if count != zero})


class DynamoDBMetrics:
    """Thread-safe counters of the calls made through the clients it is attached to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, OperationCount] = {}

    def attach(self, client: DynamoDBClient) -> None:
        """Counts the calls of ``client`` from now on (attaching twice counts once)."""
        events = client.meta.events
        hooks: dict[str, Callable[..., None]] = {
            "before-send.dynamodb": self._on_send,
            "after-call.dynamodb": self._on_call,
            "after-call-error.dynamodb": self._on_call_error,
        }
        for event, handler in hooks.items():
            events.register(event, handler, unique_id=f"{event}-{id(self)}")

    def snapshot(self) -> MetricsSnapshot:
        """A frozen copy of the figures so far."""
        with self._lock:
            return MetricsSnapshot(MappingProxyType(dict(self._counts)))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def add_estimate(self, operation: str, units: float) -> None:
        """Adds the capacity AWS would bill for a successful ``operation`` call."""
        self._add(operation, OperationCount(estimated_units=units))

    def _add(self, operation: str, count: OperationCount) -> None:
        with self._lock:
            self._counts[operation] = self._counts.get(operation, OperationCount()) + count

    def _on_send(self, event_name: str, **_: Any) -> None:
        self._add(_operation(event_name), OperationCount(round_trips=1))

    def _on_call(
        self, event_name: str, http_response: Any, parsed: Mapping[str, Any], **_: Any
    ) -> None:
        consumed = parsed.get("ConsumedCapacity", ())
        if isinstance(consumed, Mapping):
            consumed = (consumed,)
        self._add(
            _operation(event_name),
            OperationCount(
                calls=1,
                errors=int(http_response.status_code >= 300),
                capacity_units=sum(float(c.get("CapacityUnits", 0.0)) for c in consumed),
            ),
        )

    def _on_call_error(self, event_name: str, **_: Any) -> None:
        self._add(_operation(event_name), OperationCount(calls=1, errors=1))


def _operation(event_name: str) -> str:
    """``"Query"`` from ``"after-call.dynamodb.Query"``."""
    return event_name.rsplit(".", 1)[-1]
