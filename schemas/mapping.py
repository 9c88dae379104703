"""The one mapping from stored order events to their published envelopes.

It needs nothing but the event: every order event records the customer id and the order total
after it, and its type fixes the resulting status (see ``orders.events``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from orders import (
    OrderCancelled,
    OrderCompleted,
    OrderEvent,
    OrderLines,
    OrderLinesChanged,
    OrderPlaced,
    OrderShipped,
    PaymentConfirmed,
)
from orders.values import PUBLIC_STATUS
from schemas.contract import (
    ENVELOPE_VERSION,
    Envelope,
    Line,
    OrderCancelledDetail,
    OrderCancelledEnvelope,
    OrderCompletedEnvelope,
    OrderDetail,
    OrderLinesChangedDetail,
    OrderLinesChangedEnvelope,
    OrderPlacedDetail,
    OrderPlacedEnvelope,
    OrderShippedEnvelope,
    PaymentConfirmedDetail,
    PaymentConfirmedEnvelope,
)

EVENT_ID_NAMESPACE = UUID("5b0c3f0e-8a4e-4c1e-9a57-2f6d1f0b8c11")
"""The uuid5 namespace of event ids. Never change it: consumers deduplicate on the ids."""

SOURCE = "order-service"


def event_id(event: OrderEvent) -> UUID:
    """The event's id: the same for the same stored event, however often it is published."""
    return uuid5(EVENT_ID_NAMESPACE, f"{event.originator_id}/{event.originator_version}")


def to_envelope(event: OrderEvent) -> Envelope:
    """The envelope that publishes ``event``.

    Raises ``TypeError`` for an event type the contract does not publish.
    """
    common: dict[str, Any] = {
        "order_id": event.originator_id,
        "customer_id": event.customer_id,
        "status": PUBLIC_STATUS[event.resulting_state],
        "amount": event.total,
        "currency": event.currency,
        "stream_version": event.originator_version,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
    }
    envelope: dict[str, Any] = {
        "version": ENVELOPE_VERSION,
        "id": event_id(event),
        "source": SOURCE,
        "time": event.timestamp,
        "detail_type": event.type_name,
    }
    match event:
        case OrderPlaced():
            return OrderPlacedEnvelope(
                **envelope,
                detail=OrderPlacedDetail(**common, lines=_lines(event.lines)),
            )
        case OrderLinesChanged():
            return OrderLinesChangedEnvelope(
                **envelope, detail=OrderLinesChangedDetail(**common, lines=_lines(event.lines))
            )
        case PaymentConfirmed():
            return PaymentConfirmedEnvelope(
                **envelope, detail=PaymentConfirmedDetail(**common, payment_id=event.payment_id)
            )
        case OrderShipped():
            return OrderShippedEnvelope(**envelope, detail=OrderDetail(**common))
        case OrderCompleted():
            return OrderCompletedEnvelope(**envelope, detail=OrderDetail(**common))
        case OrderCancelled():
            return OrderCancelledEnvelope(
                **envelope, detail=OrderCancelledDetail(**common, reason=event.reason)
            )
    msg = f"no envelope is published for {type(event).__name__}"
    raise TypeError(msg)


def _lines(lines: OrderLines) -> list[Line]:
    return [
        Line(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price) for line in lines
    ]
