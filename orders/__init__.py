"""The order domain and its application service.

Importing this package registers the stable topics of ``Order`` and of every order event.
"""

from orders.aggregate import Order
from orders.audit import AuditEntry
from orders.bounds import MAX_LINES
from orders.errors import (
    OrderConflictError,
    OrderError,
    OrderNotFoundError,
    OrderNotYetPlacedError,
    OrderQueryError,
    OrderRuleError,
)
from orders.events import (
    ORDER_EVENT_TYPES,
    OrderCancelled,
    OrderCompleted,
    OrderEvent,
    OrderLinesChanged,
    OrderPlaced,
    OrderShipped,
    PaymentConfirmed,
)
from orders.service import HistoryEntry, OrderService, PlacedOrder
from orders.streams import EventStreams, ExpectedVersionError, StreamEvent
from orders.values import OrderLine, OrderLines, OrderState, OrderStatus, Trace

__all__ = [
    "MAX_LINES",
    "ORDER_EVENT_TYPES",
    "AuditEntry",
    "EventStreams",
    "ExpectedVersionError",
    "HistoryEntry",
    "Order",
    "OrderCancelled",
    "OrderCompleted",
    "OrderConflictError",
    "OrderError",
    "OrderEvent",
    "OrderLine",
    "OrderLines",
    "OrderLinesChanged",
    "OrderNotFoundError",
    "OrderNotYetPlacedError",
    "OrderPlaced",
    "OrderQueryError",
    "OrderRuleError",
    "OrderService",
    "OrderShipped",
    "OrderState",
    "OrderStatus",
    "PaymentConfirmed",
    "PlacedOrder",
    "StreamEvent",
    "Trace",
]
