"""The payment saga: payment-service events in, ``OrderService`` commands out.

``PaymentSucceeded`` confirms the payment on the order; ``PaymentFailed`` cancels a pending order.
The rules that make the outcome independent of delivery order are the aggregate's
(``Order.confirm_payment``, ``Order.payment_failed``): a failure never cancels an order whose
payment was confirmed, and a success pays an order a failure cancelled. Each command carries the
payment event's id as causation id (and its correlation id, or else the event id, as correlation
id). Redelivery is harmless: a repeat records nothing. What can never succeed raises and so ends
in the dead-letter queue with the error as reason: an unknown order (``OrderNotFoundError``), a
wrong amount (``OrderRuleError`` ``payment-equals-total``), a second payment of a paid order
(``payment-already-confirmed``: refund it), a currency other than the order's
(:class:`PaymentMismatchError`), a payment for an order in a state that cannot take it.
"""

from __future__ import annotations

from orders import OrderService
from schemas.payments import PaymentEnvelope, PaymentFailedEnvelope, PaymentSucceededEnvelope


class PaymentMismatchError(ValueError):
    """A payment does not fit its order (another currency); nothing was recorded."""


class PaymentSaga:
    """The handler of payment envelopes; see the module docstring."""

    def __init__(self, service: OrderService) -> None:
        self.service = service

    def __call__(self, envelope: PaymentEnvelope) -> None:
        detail = envelope.detail
        trace = {
            "correlation_id": detail.correlation_id or str(envelope.id),
            "causation_id": str(envelope.id),
        }
        order = self.service.get_order(detail.order_id)
        if detail.currency != order.currency:
            msg = (
                f"payment {detail.payment_id} is in {detail.currency}, "
                f"order {detail.order_id} in {order.currency}"
            )
            raise PaymentMismatchError(msg)
        if isinstance(envelope, PaymentSucceededEnvelope):
            self.service.confirm_payment(detail.order_id, detail.payment_id, detail.amount, **trace)
        elif isinstance(envelope, PaymentFailedEnvelope):
            self.service.payment_failed(
                detail.order_id, detail.payment_id, envelope.detail.reason, **trace
            )
