"""The Order aggregate: decides which events a command causes, or refuses it.

Guarantees of every command method:

- a broken rule raises ``OrderRuleError`` naming it, and records no event (every check runs
  before any event is triggered);
- a command that would not change the order (a repeat of one that already took effect, such as
  the same payment again) records no event and leaves the version as it was;
- otherwise exactly one event is recorded, carrying the command's ``Trace``.

Life cycle: pending -> paid -> shipped -> completed; pending or paid -> cancelled.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from orders.errors import OrderRuleError
from orders.events import (
    OrderCancelled,
    OrderCompleted,
    OrderEvent,
    OrderLinesChanged,
    OrderPlaced,
    OrderShipped,
    PaymentConfirmed,
    stable_topic,
)
from orders.values import (
    PUBLIC_STATUS,
    OrderLine,
    OrderLines,
    OrderState,
    OrderStatus,
    Trace,
    currency_code,
    money,
    required_text,
)


@stable_topic("orders:Order")
class Order(Aggregate):
    """An order of one customer, in one currency, from placement to completion or cancellation.

    Attributes are set only by events; read them, never assign them.
    """

    customer_id: str
    currency: str
    lines: OrderLines
    state: OrderState = "pending"
    payment_id: str | None = None
    cancellation_reason: str | None = None

    @classmethod
    def place(
        cls,
        customer_id: str,
        lines: Sequence[OrderLine],
        currency: str,
        *,
        order_id: UUID | None = None,
        trace: Trace | None = None,
    ) -> Order:
        """A new pending order (``OrderPlaced``); a new id unless ``order_id`` is given.

        Rules: ``customer-required``, ``known-currency`` and those of ``OrderLines``.
        """
        required_text(customer_id, rule="customer-required", name="customer_id")
        checked_lines = OrderLines.of(lines)
        trace = trace or Trace.of()
        return cls._create(
            OrderPlaced,
            id=order_id,
            customer_id=customer_id,
            currency=currency_code(currency),
            lines=checked_lines,
            total=checked_lines.total,
            correlation_id=trace.correlation_id,
            causation_id=trace.causation_id,
        )

    @property
    def status(self) -> OrderStatus:
        """The public status: pending, processing (paid or shipped), completed or cancelled."""
        return PUBLIC_STATUS[self.state]

    @property
    def total(self) -> Decimal:
        """The sum of the lines' subtotals, in ``currency``."""
        return self.lines.total

    def change_lines(self, lines: Sequence[OrderLine], *, trace: Trace | None = None) -> None:
        """Replace the lines of a pending order (``OrderLinesChanged``); same lines: no event."""
        checked_lines = OrderLines.of(lines)
        self._require_state({"pending"}, "change lines of")
        if checked_lines != self.lines:
            self._record(OrderLinesChanged, trace, lines=checked_lines)

    def confirm_payment(
        self, payment_id: str, amount: Decimal, *, trace: Trace | None = None
    ) -> None:
        """Record payment ``payment_id`` of exactly the total (``PaymentConfirmed``).

        The same payment again, in any later state, is a repeat: no event. Rules:
        ``payment-id-required``, ``decimal-money``, ``payment-equals-total``,
        ``payment-already-confirmed`` (another payment id), ``illegal-transition``.
        """
        required_text(payment_id, rule="payment-id-required", name="payment_id")
        paid = money(amount, name="amount")
        if paid != self.total:
            raise OrderRuleError(
                "payment-equals-total",
                f"payment {payment_id} of {paid} {self.currency} does not equal the order "
                f"total {self.total} {self.currency}",
            )
        if self.payment_id == payment_id:
            return
        if self.payment_id is not None:
            raise OrderRuleError(
                "payment-already-confirmed",
                f"order {self.id} was already paid by payment {self.payment_id}",
            )
        self._require_state({"pending"}, "confirm payment of")
        self._record(PaymentConfirmed, trace, payment_id=payment_id, amount=paid)

    def ship(self, *, trace: Trace | None = None) -> None:
        """Ship a paid order (``OrderShipped``); already shipped: no event."""
        if self.state != "shipped":
            self._require_state({"paid"}, "ship")
            self._record(OrderShipped, trace)

    def complete(self, *, trace: Trace | None = None) -> None:
        """Complete a shipped order (``OrderCompleted``); already completed: no event."""
        if self.state != "completed":
            self._require_state({"shipped"}, "complete")
            self._record(OrderCompleted, trace)

    def cancel(self, reason: str, *, trace: Trace | None = None) -> None:
        """Cancel an order that has not shipped (``OrderCancelled``).

        Cancelled already for the same reason: no event; for another reason:
        ``illegal-transition``. Rule ``reason-required``.
        """
        required_text(reason, rule="reason-required", name="reason")
        if self.state == "cancelled" and self.cancellation_reason == reason:
            return
        self._require_state({"pending", "paid"}, "cancel")
        self._record(OrderCancelled, trace, reason=reason)

    def _require_state(self, allowed: Collection[OrderState], action: str) -> None:
        if self.state not in allowed:
            raise OrderRuleError(
                "illegal-transition",
                f"cannot {action} order {self.id}: it is {self.state}, "
                f"not {' or '.join(sorted(allowed))}",
            )

    def _record(
        self,
        event_class: type[OrderEvent],
        trace: Trace | None,
        *,
        lines: OrderLines | None = None,
        **fields: Any,
    ) -> None:
        """Trigger ``event_class`` with the fields every order event records."""
        trace = trace or Trace.of()
        if lines is not None:
            fields["lines"] = lines
        self.trigger_event(
            event_class,
            customer_id=self.customer_id,
            total=(lines or self.lines).total,
            currency=self.currency,
            correlation_id=trace.correlation_id,
            causation_id=trace.causation_id,
            **fields,
        )
