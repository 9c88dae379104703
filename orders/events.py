"""The domain events of an order: immutable, typed, each stored under a stable topic.

Stable topics: every event class (and the ``Order`` class) is registered under a topic of the
form ``orders:<TypeName>`` by ``stable_topic``, so stored events keep resolving when a module
is renamed or split. Each name also resolves without the registry, because ``orders`` exports
every event class. Never change a registered name; add a new class instead.

Self-describing events: besides its own fields, every event records the ``customer_id``, the
order ``total`` after it and its ``currency``, and its type fixes the state it leads to
(``resulting_state``). So a consumer, the outbox mapping included, can describe an event without
loading the aggregate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from orders.values import OrderLines, OrderState

if TYPE_CHECKING:
    from orders.aggregate import Order

_Registered = TypeVar("_Registered", bound=type)


def stable_topic(topic: str) -> Callable[[_Registered], _Registered]:
    """Class decorator: store and resolve the class under ``topic`` instead of its module path."""

    def register(cls: _Registered) -> _Registered:
        cls.TOPIC = topic  # type: ignore[attr-defined]
        register_topic(topic, cls)
        return cls

    return register


@dataclass(frozen=True)
class OrderEvent(Aggregate.Event):
    """What every order event records, besides the originator id, version and UTC timestamp."""

    TOPIC: ClassVar[str]
    resulting_state: ClassVar[OrderState]
    customer_id: str
    total: Decimal
    currency: str
    correlation_id: str
    causation_id: str | None

    @property
    def type_name(self) -> str:
        """The stable name of this type of event (its topic after ``orders:``)."""
        return self.TOPIC.partition(":")[2]

    def details(self) -> dict[str, Any]:
        """The fields this type of event adds to those every order event has."""
        common = {field.name for field in fields(OrderEvent)}
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if field.name not in common and field.name != "originator_topic"
        }

    def apply(self, aggregate: Order) -> None:
        """Move ``aggregate`` to the state this type of event leads to."""
        aggregate.state = self.resulting_state


@stable_topic("orders:OrderPlaced")
@dataclass(frozen=True)
class OrderPlaced(OrderEvent, Aggregate.Created):
    """A customer placed an order; it is pending payment.

    ``class_version`` 2 added ``total``; version 1 events are upcast by computing it from the
    lines.
    """

    class_version: ClassVar[int] = 2
    resulting_state: ClassVar[OrderState] = "pending"
    lines: OrderLines

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 did not record ``total``: it is the total of the recorded lines."""
        lines: OrderLines = state["lines"]
        state["total"] = lines.total


@stable_topic("orders:OrderLinesChanged")
@dataclass(frozen=True)
class OrderLinesChanged(OrderEvent):
    """The lines of a pending order were replaced; ``total`` is the new total."""

    resulting_state: ClassVar[OrderState] = "pending"
    lines: OrderLines

    def apply(self, aggregate: Order) -> None:
        aggregate.lines = self.lines


@stable_topic("orders:PaymentConfirmed")
@dataclass(frozen=True)
class PaymentConfirmed(OrderEvent):
    """Payment ``payment_id`` of ``amount`` (the order total) was received.

    It also follows an ``OrderCancelled`` for a failed payment: the money was taken, so the
    order is paid and no longer cancelled.
    """

    resulting_state: ClassVar[OrderState] = "paid"
    payment_id: str
    amount: Decimal

    def apply(self, aggregate: Order) -> None:
        super().apply(aggregate)
        aggregate.payment_id = self.payment_id
        aggregate.cancellation_reason = None
        aggregate.failed_payment_id = None


@stable_topic("orders:OrderShipped")
@dataclass(frozen=True)
class OrderShipped(OrderEvent):
    """A paid order left the warehouse."""

    resulting_state: ClassVar[OrderState] = "shipped"


@stable_topic("orders:OrderCompleted")
@dataclass(frozen=True)
class OrderCompleted(OrderEvent):
    """A shipped order was delivered; nothing more happens to it."""

    resulting_state: ClassVar[OrderState] = "completed"


@stable_topic("orders:OrderCancelled")
@dataclass(frozen=True)
class OrderCancelled(OrderEvent):
    """An order that had not shipped was cancelled for ``reason``.

    ``failed_payment_id`` names the payment whose failure cancelled a pending order (``None``
    for any other cancellation). ``class_version`` 2 added it; version 1 events had none.
    """

    class_version: ClassVar[int] = 2
    resulting_state: ClassVar[OrderState] = "cancelled"
    reason: str
    failed_payment_id: str | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 did not record ``failed_payment_id``: it was no payment's failure."""
        state["failed_payment_id"] = None

    def apply(self, aggregate: Order) -> None:
        super().apply(aggregate)
        aggregate.cancellation_reason = self.reason
        aggregate.failed_payment_id = self.failed_payment_id


ORDER_EVENT_TYPES: tuple[type[OrderEvent], ...] = (
    OrderPlaced,
    OrderLinesChanged,
    PaymentConfirmed,
    OrderShipped,
    OrderCompleted,
    OrderCancelled,
)
"""Every concrete order event type, in life-cycle order."""
