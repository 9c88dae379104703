"""The payment service's events as the order service consumes them (``source`` "payment-service").

The same envelope as the order events (``schemas.contract``): ``version`` "1.0", a stable ``id``
the consumer deduplicates on, ``detail-type``, ``source``, ``time``, and a camelCase ``detail``
that refuses unknown fields. ``PaymentSucceeded``: payment ``paymentId`` of ``amount`` for the
order was taken. ``PaymentFailed``: it was refused, for ``reason``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import Field, TypeAdapter

from orders.bounds import MAX_PAYMENT_FAILURE_REASON, MAX_PAYMENT_ID, MAX_TRACE_ID
from schemas.contract import ENVELOPE_VERSION, EnvelopeBase, Money, _Model

PAYMENT_SOURCE = "payment-service"


class PaymentDetail(_Model):
    """What the ``detail`` of every payment event holds."""

    order_id: UUID
    payment_id: str = Field(min_length=1, max_length=MAX_PAYMENT_ID)
    amount: Money = Field(description="The amount charged, in ``currency``.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of ``amount``.")
    correlation_id: str | None = Field(default=None, max_length=MAX_TRACE_ID)


class PaymentFailedDetail(PaymentDetail):
    reason: str = Field(
        min_length=1,
        max_length=MAX_PAYMENT_FAILURE_REASON,
        description="Why the payment was refused.",
    )


class PaymentSucceededEnvelope(EnvelopeBase):
    detail_type: Literal["PaymentSucceeded"] = Field(alias="detail-type")
    source: Literal["payment-service"]
    detail: PaymentDetail


class PaymentFailedEnvelope(EnvelopeBase):
    detail_type: Literal["PaymentFailed"] = Field(alias="detail-type")
    source: Literal["payment-service"]
    detail: PaymentFailedDetail


PaymentEnvelope = Annotated[
    PaymentSucceededEnvelope | PaymentFailedEnvelope, Field(discriminator="detail_type")
]
"""Any payment envelope; validate one with ``PAYMENT_ENVELOPE``."""

PAYMENT_ENVELOPE: TypeAdapter[PaymentEnvelope] = TypeAdapter(PaymentEnvelope)

PAYMENT_ENVELOPE_TYPES: tuple[type[EnvelopeBase], ...] = (
    PaymentSucceededEnvelope,
    PaymentFailedEnvelope,
)
"""Every payment envelope model, one per detail-type."""


def payment_succeeded(
    order_id: UUID,
    payment_id: str,
    amount: Decimal,
    currency: str,
    *,
    correlation_id: str | None = None,
) -> PaymentSucceededEnvelope:
    """A new ``PaymentSucceeded`` event (fresh id, now), as the payment service publishes it."""
    return PaymentSucceededEnvelope.model_validate(
        _envelope(
            "PaymentSucceeded",
            order_id,
            payment_id,
            amount,
            currency,
            correlation_id=correlation_id,
        )
    )


def payment_failed(
    order_id: UUID,
    payment_id: str,
    amount: Decimal,
    currency: str,
    reason: str,
    *,
    correlation_id: str | None = None,
) -> PaymentFailedEnvelope:
    """A new ``PaymentFailed`` event (fresh id, now), as the payment service publishes it."""
    envelope = _envelope(
        "PaymentFailed", order_id, payment_id, amount, currency, correlation_id=correlation_id
    )
    envelope["detail"]["reason"] = reason
    return PaymentFailedEnvelope.model_validate(envelope)


def _envelope(
    detail_type: str,
    order_id: UUID,
    payment_id: str,
    amount: Decimal,
    currency: str,
    *,
    correlation_id: str | None,
) -> dict[str, Any]:
    return {
        "version": ENVELOPE_VERSION,
        "id": uuid4(),
        "source": PAYMENT_SOURCE,
        "time": datetime.now(UTC),
        "detail-type": detail_type,
        "detail": {
            "orderId": order_id,
            "paymentId": payment_id,
            "amount": amount,
            "currency": currency,
            "correlationId": correlation_id,
        },
    }
