"""The public contract: the EventBridge envelope of every event the order service publishes.

One envelope model per detail-type; ``Envelope`` is their union, told apart by ``detail-type``.
Field names on the wire are camelCase in ``detail`` and as AWS spells them at the top level
(``detail-type``). Every model is frozen and refuses unknown fields.

``amount`` (and every other sum of money) is a JSON *string* holding a non-negative decimal
number in units of the order's currency, for example ``"12.50"``: exact for every consumer,
where a JSON number would be read as a binary float by most. The models accept it as a string
or a ``Decimal``, never as a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from orders.values import MAX_LINES

ENVELOPE_VERSION: Final = "1.0"

Status = Literal["pending", "processing", "completed", "cancelled"]
Source = Literal["order-service", "payment-service"]

DECIMAL_PATTERN = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"


def _decimal_not_float(value: Any) -> Any:
    if isinstance(value, Decimal | str):
        return value
    msg = f"must be a decimal string such as '12.50' (or a Decimal), not {type(value).__name__}"
    raise ValueError(msg)


Money = Annotated[
    Decimal,
    BeforeValidator(_decimal_not_float),
    Field(ge=0, allow_inf_nan=False),
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN}),
]
"""A non-negative amount of money, on the wire a decimal string (see the module docstring)."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True
    )


class Line(_Model):
    """One order line: ``quantity`` of ``sku`` at ``unitPrice`` each."""

    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0, strict=True)
    unit_price: Money


class OrderDetail(_Model):
    """What the ``detail`` of every order event holds: the order as the event left it."""

    order_id: UUID
    customer_id: str = Field(min_length=1)
    status: Status
    amount: Money = Field(description="The order total after the event.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of ``amount``.")
    stream_version: int = Field(ge=1, description="The event's version in the order's stream.")
    correlation_id: str = Field(min_length=1)
    causation_id: str | None


class OrderPlacedDetail(OrderDetail):
    lines: list[Line] = Field(min_length=1, max_length=MAX_LINES)


class OrderLinesChangedDetail(OrderDetail):
    lines: list[Line] = Field(min_length=1, max_length=MAX_LINES)


class PaymentConfirmedDetail(OrderDetail):
    payment_id: str = Field(min_length=1)


class OrderCancelledDetail(OrderDetail):
    reason: str = Field(min_length=1)


class EnvelopeBase(_Model):
    """The EventBridge envelope; ``id`` is the event id, stable across republishing."""

    model_config = ConfigDict(alias_generator=None)

    version: Literal["1.0"]
    id: UUID = Field(description="The event id; consumers deduplicate on it.")
    source: Source
    time: AwareDatetime = Field(description="When the event was recorded (UTC).")


class OrderPlacedEnvelope(EnvelopeBase):
    detail_type: Literal["OrderPlaced"] = Field(alias="detail-type")
    detail: OrderPlacedDetail


class OrderLinesChangedEnvelope(EnvelopeBase):
    detail_type: Literal["OrderLinesChanged"] = Field(alias="detail-type")
    detail: OrderLinesChangedDetail


class PaymentConfirmedEnvelope(EnvelopeBase):
    detail_type: Literal["PaymentConfirmed"] = Field(alias="detail-type")
    detail: PaymentConfirmedDetail


class OrderShippedEnvelope(EnvelopeBase):
    detail_type: Literal["OrderShipped"] = Field(alias="detail-type")
    detail: OrderDetail


class OrderCompletedEnvelope(EnvelopeBase):
    detail_type: Literal["OrderCompleted"] = Field(alias="detail-type")
    detail: OrderDetail


class OrderCancelledEnvelope(EnvelopeBase):
    detail_type: Literal["OrderCancelled"] = Field(alias="detail-type")
    detail: OrderCancelledDetail


Envelope = Annotated[
    OrderPlacedEnvelope
    | OrderLinesChangedEnvelope
    | PaymentConfirmedEnvelope
    | OrderShippedEnvelope
    | OrderCompletedEnvelope
    | OrderCancelledEnvelope,
    Field(discriminator="detail_type"),
]
"""Any published envelope; validate one with ``ENVELOPE.validate_json`` or ``validate_python``."""

ENVELOPE: TypeAdapter[Envelope] = TypeAdapter(Envelope)

ENVELOPE_TYPES: tuple[type[EnvelopeBase], ...] = (
    OrderPlacedEnvelope,
    OrderLinesChangedEnvelope,
    PaymentConfirmedEnvelope,
    OrderShippedEnvelope,
    OrderCompletedEnvelope,
    OrderCancelledEnvelope,
)
"""Every envelope model, one per published detail-type."""
