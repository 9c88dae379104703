"""The audit trail of an order: each event's payload and what it changed in the order's state.

Everything here is JSON-native (money as decimal strings such as ``"12.50"``, ids as strings,
times as ISO 8601 with their UTC offset), so an :class:`AuditEntry` written as JSON reads back
equal (:meth:`AuditEntry.to_json` and :meth:`AuditEntry.from_json` for JSON text,
:meth:`AuditEntry.to_dict` and :meth:`AuditEntry.from_dict` for the JSON object).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from orders.aggregate import Order
from orders.events import OrderEvent
from orders.values import OrderLine, OrderLines

JSONValue = Any
"""A value made of ``dict``, ``list``, ``str``, ``int``, ``bool`` and ``None`` only."""

STATE_FIELDS = (
    "order_id",
    "customer_id",
    "currency",
    "state",
    "status",
    "lines",
    "total",
    "payment_id",
    "cancellation_reason",
)
"""The fields of :func:`order_state`, in the order they are shown."""

_EVENT_COLUMNS = frozenset({"originator_id", "originator_version", "timestamp"})


def jsonable(value: object) -> JSONValue:
    """``value`` in JSON-native form: Decimals as their digits, lines as lists of dicts."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, OrderLine):
        return {"sku": value.sku, "quantity": value.quantity, "unit_price": str(value.unit_price)}
    if isinstance(value, OrderLines):
        return [jsonable(line) for line in value]
    msg = f"no JSON form for {type(value).__name__} {value!r}"
    raise TypeError(msg)


def order_state(order: Order | None) -> dict[str, JSONValue]:
    """The order's state as JSON (every field of :data:`STATE_FIELDS`); ``{}`` before it exists."""
    if order is None:
        return {}
    return {
        "order_id": str(order.id),
        "customer_id": order.customer_id,
        "currency": order.currency,
        "state": order.state,
        "status": str(order.status),
        "lines": jsonable(order.lines),
        "total": str(order.total),
        "payment_id": order.payment_id,
        "cancellation_reason": order.cancellation_reason,
    }


def state_changes(
    before: Mapping[str, JSONValue], after: Mapping[str, JSONValue]
) -> dict[str, dict[str, JSONValue]]:
    """``{field: {"before": ..., "after": ...}}`` for each field whose value differs.

    A field absent on one side counts as ``None`` there.
    """
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in STATE_FIELDS
        if before.get(name) != after.get(name)
    }


def event_payload(event: OrderEvent) -> dict[str, JSONValue]:
    """Every field the event records besides its order id, version and time, as JSON."""
    return {
        field.name: jsonable(getattr(event, field.name))
        for field in fields(event)
        if field.name not in _EVENT_COLUMNS and field.name != "originator_topic"
    }


@dataclass(frozen=True)
class AuditEntry:
    """One stored event of an order: what it recorded and what it changed.

    ``payload`` is every field the event recorded (ids, totals, lines, trace); ``changes`` maps
    each field of the order's state that the event changed to its value before and after;
    ``state`` is the whole state after it.
    """

    order_id: str
    version: int
    type_name: str
    timestamp: str
    payload: dict[str, JSONValue]
    changes: dict[str, dict[str, JSONValue]]
    state: dict[str, JSONValue]

    def to_json(self) -> str:
        """The entry as JSON text (one line); :meth:`from_json` reads it back equal."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> AuditEntry:
        """The entry :meth:`to_json` wrote."""
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict[str, JSONValue]:
        """The entry as a JSON-native dict; :meth:`from_dict` reads it back equal."""
        return {
            "order_id": self.order_id,
            "version": self.version,
            "type": self.type_name,
            "timestamp": self.timestamp,
            "payload": self.payload,
            "changes": self.changes,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> AuditEntry:
        """The entry :meth:`to_dict` made."""
        return cls(
            order_id=data["order_id"],
            version=data["version"],
            type_name=data["type"],
            timestamp=data["timestamp"],
            payload=data["payload"],
            changes=data["changes"],
            state=data["state"],
        )


def audit_trail(events: Iterable[OrderEvent]) -> list[AuditEntry]:
    """The entries of ``events`` (one order's, oldest first), replaying them once."""
    entries: list[AuditEntry] = []
    order: Order | None = None
    before = order_state(order)
    for event in events:
        order = event.mutate(order)
        after = order_state(order)
        entries.append(
            AuditEntry(
                order_id=str(event.originator_id),
                version=event.originator_version,
                type_name=event.type_name,
                timestamp=event.timestamp.isoformat(),
                payload=event_payload(event),
                changes=state_changes(before, after),
                state=after,
            )
        )
        before = after
    return entries
