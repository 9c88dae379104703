"""The Order aggregate: decides which events a command causes, or refuses it.

Guarantees of every command method:

- a broken rule raises ``OrderRuleError`` naming it, and records no event (every check runs
  before any event is triggered);
- a command that would not change the order (a repeat of one that already took effect, such as
  the same payment again) records no event and leaves the version as it was;
- otherwise exactly one event is recorded, carrying the command's ``Trace``.

Life cycle: pending -> paid -> shipped -> completed; pending or paid -> cancelled; an order
cancelled for a failed payment -> paid, when a payment then succeeds (the money was taken).

Payments arrive unordered and more than once, so their outcome does not depend on delivery
order: whatever the order of the same ``confirm_payment`` and ``payment_failed`` calls, the
order ends paid if any payment succeeded (by the first one confirmed; another id is refused,
``payment-already-confirmed``, for a refund), else cancelled by the first failure delivered.
A failure never cancels an order whose payment was confirmed, for any payment id.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from orders.bounds import (
    MAX_CUSTOMER_ID,
    MAX_PAYMENT_FAILURE_REASON,
    MAX_PAYMENT_ID,
    MAX_REASON,
    bounded_text,
)
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
    minor_units,
    money,
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
    failed_payment_id: str | None = None

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

        Rules: ``customer-required``, ``customer-id-length``, ``text-printable``,
        ``known-currency``, ``currency-minor-units`` and those of ``OrderLines``.
        """
        bounded_text(
            customer_id,
            rule="customer-required",
            length_rule="customer-id-length",
            name="customer_id",
            max_length=MAX_CUSTOMER_ID,
        )
        checked_lines = _in_currency(OrderLines.of(lines), currency_code(currency))
        trace = trace or Trace.of()
        return cls._create(
            OrderPlaced,
            id=order_id,
            customer_id=customer_id,
            currency=currency,
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
        """Replace the lines of a pending order (``OrderLinesChanged``); same lines: no event.

        Rules: those of ``OrderLines``, ``currency-minor-units``, ``illegal-transition``.
        """
        checked_lines = _in_currency(OrderLines.of(lines), self.currency)
        self._require_state({"pending"}, "change lines of")
        if checked_lines != self.lines:
            self._record(OrderLinesChanged, trace, lines=checked_lines)

    def confirm_payment(
        self, payment_id: str, amount: Decimal, *, trace: Trace | None = None
    ) -> None:
        """Record payment ``payment_id`` of exactly the total (``PaymentConfirmed``).

        The same payment again, in any later state, is a repeat: no event. A pending order, or
        one cancelled for a failed payment, is paid by it. Rules: ``payment-id-required``,
        ``payment-id-length``, ``text-printable``, ``decimal-money``, ``payment-equals-total``,
        ``payment-already-confirmed`` (another payment id), ``illegal-transition``.
        """
        _payment_id(payment_id)
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
        if self.failed_payment_id is None:  # Cancelled for another reason: cannot be paid.
            self._require_state({"pending"}, "confirm payment of")
        self._record(PaymentConfirmed, trace, payment_id=payment_id, amount=paid)

    def payment_failed(self, payment_id: str, reason: str, *, trace: Trace | None = None) -> None:
        """Payment ``payment_id`` failed for ``reason``: cancel the order if it is pending
        (``OrderCancelled`` with ``failed_payment_id``).

        An order whose payment was confirmed (by any payment id), or that is cancelled already,
        records nothing: a failure delivered late never undoes a payment. Rules:
        ``payment-id-required``, ``payment-id-length``, ``reason-required``,
        ``payment-failure-reason-length``, ``text-printable``.
        """
        _payment_id(payment_id)
        bounded_text(
            reason,
            rule="reason-required",
            length_rule="payment-failure-reason-length",
            name="reason",
            max_length=MAX_PAYMENT_FAILURE_REASON,
        )
        if self.state != "pending":
            return
        self._record(
            OrderCancelled,
            trace,
            reason=f"payment {payment_id} failed: {reason}",
            failed_payment_id=payment_id,
        )

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
        ``illegal-transition``. Rules ``reason-required``, ``reason-length``, ``text-printable``.
        """
        bounded_text(
            reason,
            rule="reason-required",
            length_rule="reason-length",
            name="reason",
            max_length=MAX_REASON,
        )
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


def _payment_id(payment_id: str) -> str:
    return bounded_text(
        payment_id,
        rule="payment-id-required",
        length_rule="payment-id-length",
        name="payment_id",
        max_length=MAX_PAYMENT_ID,
    )


def _in_currency(lines: OrderLines, currency: str) -> OrderLines:
    """``lines`` if every unit price (so every subtotal and the total) is a whole number of
    ``currency``'s minor units (rule ``currency-minor-units``)."""
    for line in lines:
        minor_units(line.unit_price, currency, name=f"unit_price of {line.sku}")
    return lines
