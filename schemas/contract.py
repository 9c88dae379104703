"""The public contract: the EventBridge envelope of every event the order service publishes.

One envelope model per detail-type; ``Envelope`` is their union, told apart by ``detail-type``.
Field names on the wire are camelCase in ``detail`` and as AWS spells them at the top level
(``detail-type``). Every model is frozen; an envelope ignores top-level fields it does not
know (the bus adds some on delivery), every other model refuses them.

``amount`` (and every other sum of money) is a JSON *number* >= 0 in units of the order's
currency, written from the ``Decimal``'s own digits (``12.50``), never through a binary float.
The domain bounds every amount to ``orders.values.MAX_DIGITS`` (15) digits, so a consumer that
reads JSON numbers as doubles still gets each amount exactly. Write a model with ``to_json``
(pydantic's ``model_dump_json`` cannot write a ``Decimal`` as a number, so it refuses amounts);
``parse_envelope`` reads one back with its exact digits; ``ENVELOPE.validate_json`` reads the
same values (through pydantic's JSON parser, so ``12.50`` comes back as ``12.5``).
A model accepts an amount as a ``Decimal``, an ``int`` or a JSON number; never as a string or a
Python ``float``, and never one the domain would refuse.

Every text field and the line count carry the domain's bounds (``orders.bounds``: ``maxLength``,
``maxItems`` in the schema files), so an envelope over them is refused as breaking the contract.
An order event's ``source`` is ``order-service``; nothing else may publish one.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import msgspec
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from orders.bounds import (
    MAX_CUSTOMER_ID,
    MAX_LINES,
    MAX_PAYMENT_ID,
    MAX_REASON,
    MAX_SKU,
    MAX_TRACE_ID,
)
from orders.values import MAX_DIGITS, money

ENVELOPE_VERSION: Final = "1.0"

Status = Literal["pending", "processing", "completed", "cancelled"]


def _money_from_wire(value: Any, info: ValidationInfo) -> Decimal:
    if info.mode == "json" and isinstance(value, float):
        # pydantic's JSON parser reads a number with a fraction or exponent as a double; its
        # shortest repr is the number itself for every amount of at most MAX_DIGITS digits.
        value = Decimal(repr(value))
    elif isinstance(value, str | float | bool):
        msg = f"must be a JSON number (a Decimal or int in Python), not {type(value).__name__}"
        raise ValueError(msg)
    return money(value, name="the amount")


def _refuse_lossy_json(amount: Decimal) -> None:
    msg = "amounts are JSON numbers written from their digits: use schemas.to_json(model)"
    raise TypeError(msg)


Money = Annotated[
    Decimal,
    BeforeValidator(_money_from_wire),
    PlainSerializer(_refuse_lossy_json, when_used="json"),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "description": f"A sum of money: at most {MAX_DIGITS} digits, never a string.",
        }
    ),
]
"""A non-negative amount of money, on the wire a JSON number (see the module docstring)."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True
    )


class Line(_Model):
    """One order line: ``quantity`` of ``sku`` at ``unitPrice`` each."""

    sku: str = Field(min_length=1, max_length=MAX_SKU)
    quantity: int = Field(gt=0, strict=True)
    unit_price: Money


class OrderDetail(_Model):
    """What the ``detail`` of every order event holds: the order as the event left it."""

    order_id: UUID
    customer_id: str = Field(min_length=1, max_length=MAX_CUSTOMER_ID)
    status: Status
    amount: Money = Field(description="The order total after the event.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of ``amount``.")
    stream_version: int = Field(ge=1, description="The event's version in the order's stream.")
    correlation_id: str = Field(min_length=1, max_length=MAX_TRACE_ID)
    causation_id: str | None = Field(max_length=MAX_TRACE_ID)


class OrderPlacedDetail(OrderDetail):
    lines: list[Line] = Field(min_length=1, max_length=MAX_LINES)


class OrderLinesChangedDetail(OrderDetail):
    lines: list[Line] = Field(min_length=1, max_length=MAX_LINES)


class PaymentConfirmedDetail(OrderDetail):
    payment_id: str = Field(min_length=1, max_length=MAX_PAYMENT_ID)


class OrderCancelledDetail(OrderDetail):
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class EnvelopeBase(_Model):
    """The EventBridge envelope; ``id`` is the event id, stable across republishing.

    Other top-level fields are allowed and dropped: the bus adds ``account``, ``region`` and
    ``resources`` on delivery (Powertools' ``EventBridgeModel`` requires them). ``detail``
    refuses unknown fields.
    """

    model_config = ConfigDict(alias_generator=None, extra="ignore")

    version: Literal["1.0"]
    id: UUID = Field(description="The event id; consumers deduplicate on it.")
    time: AwareDatetime = Field(description="When the event was recorded (UTC).")


class _OrderEnvelope(EnvelopeBase):
    """An order event's envelope: it comes only from the order service."""

    source: Literal["order-service"] = Field(
        description="Order events come only from the order service."
    )


class OrderPlacedEnvelope(_OrderEnvelope):
    detail_type: Literal["OrderPlaced"] = Field(alias="detail-type")
    detail: OrderPlacedDetail


class OrderLinesChangedEnvelope(_OrderEnvelope):
    detail_type: Literal["OrderLinesChanged"] = Field(alias="detail-type")
    detail: OrderLinesChangedDetail


class PaymentConfirmedEnvelope(_OrderEnvelope):
    detail_type: Literal["PaymentConfirmed"] = Field(alias="detail-type")
    detail: PaymentConfirmedDetail


class OrderShippedEnvelope(_OrderEnvelope):
    detail_type: Literal["OrderShipped"] = Field(alias="detail-type")
    detail: OrderDetail


class OrderCompletedEnvelope(_OrderEnvelope):
    detail_type: Literal["OrderCompleted"] = Field(alias="detail-type")
    detail: OrderDetail


class OrderCancelledEnvelope(_OrderEnvelope):
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


_ENCODER = msgspec.json.Encoder(decimal_format="number")


def to_json(model: BaseModel) -> str:
    """``model`` as compact JSON, each amount a number with the ``Decimal``'s exact digits."""
    return encode_json(model.model_dump(mode="python", by_alias=True))


def encode_json(data: object) -> str:
    """``data`` (as ``model_dump(mode="python")`` gives it) as compact JSON: a ``Decimal`` as
    a number written with its own digits (``str(amount)``, ``12.50``), UUIDs and times as
    pydantic writes them."""
    return _ENCODER.encode(data).decode()


def parse_envelope(text: str | bytes) -> Envelope:
    """The envelope in JSON ``text``, each amount read as a ``Decimal`` with its exact digits.

    Raises ``ValueError`` for text that is not JSON, ``pydantic.ValidationError`` (a
    ``ValueError``) naming every field that breaks the contract.
    """
    return ENVELOPE.validate_python(json.loads(text, parse_float=Decimal))
