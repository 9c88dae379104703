"""One past any bound is refused with the rule's name before anything is stored; the JSON Schema
files declare the same bounds; amounts keep to their currency's minor units."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from orders import OrderLine, OrderRuleError, OrderService
from orders.bounds import (
    MAX_CUSTOMER_ID,
    MAX_LINES,
    MAX_PAYMENT_FAILURE_REASON,
    MAX_PAYMENT_ID,
    MAX_REASON,
    MAX_SKU,
    MAX_TRACE_ID,
)
from schemas.generate import SCHEMA_DIR

WIDE = "\U0001f600"  # 4 bytes of UTF-8: the widest character a bound admits


def lines(count: int = 1, sku_length: int = 8) -> list[OrderLine]:
    return [
        OrderLine(f"{number:03}{WIDE * (sku_length - 3)}", 1, Decimal("1.00"))
        for number in range(count)
    ]


def stored_events(service: OrderService) -> int:
    return service.recorder.max_notification_id() or 0


COMMANDS: dict[str, tuple[str, Callable[[OrderService, UUID, int], Any]]] = {
    "customer id": (
        "customer-id-length",
        lambda s, _, n: s.place_order(WIDE * n, lines(), "EUR", order_id=uuid4()),
    ),
    "sku": ("sku-length", lambda s, _, n: s.place_order("c-1", lines(sku_length=n), "EUR")),
    "lines": ("max-lines", lambda s, _, n: s.place_order("c-1", lines(count=n), "EUR")),
    "correlation id": (
        "trace-id-length",
        lambda s, _, n: s.place_order("c-1", lines(), "EUR", correlation_id=WIDE * n),
    ),
    "causation id": (
        "trace-id-length",
        lambda s, _, n: s.place_order("c-1", lines(), "EUR", causation_id=WIDE * n),
    ),
    "payment id": (
        "payment-id-length",
        lambda s, order, n: s.confirm_payment(order, WIDE * n, Decimal("1.00")),
    ),
    "cancellation reason": ("reason-length", lambda s, order, n: s.cancel(order, WIDE * n)),
    "payment failure reason": (
        "payment-failure-reason-length",
        lambda s, order, n: s.payment_failed(order, "pay-1", WIDE * n),
    ),
}
BOUNDS = {
    "customer id": MAX_CUSTOMER_ID,
    "sku": MAX_SKU,
    "lines": MAX_LINES,
    "correlation id": MAX_TRACE_ID,
    "causation id": MAX_TRACE_ID,
    "payment id": MAX_PAYMENT_ID,
    "cancellation reason": MAX_REASON,
    "payment failure reason": MAX_PAYMENT_FAILURE_REASON,
}


@pytest.mark.parametrize("field", COMMANDS)
def test_the_bound_is_accepted_and_one_past_it_refused_by_name_writing_nothing(
    field: str,
) -> None:
    rule, command = COMMANDS[field]
    service = OrderService()
    refused_order = service.place_order("c-1", lines(), "EUR").order_id
    accepted_order = service.place_order("c-1", lines(), "EUR").order_id
    before = stored_events(service)
    with pytest.raises(OrderRuleError) as refused:
        command(service, refused_order, BOUNDS[field] + 1)
    assert refused.value.rule == rule
    assert stored_events(service) == before
    assert service.get_order(refused_order).version == 1
    command(service, accepted_order, BOUNDS[field])  # at the bound: accepted and stored
    assert stored_events(service) == before + 1


def test_a_refused_command_on_an_order_stores_nothing_after_its_placement() -> None:
    service = OrderService()
    order_id = service.place_order("c-1", lines(), "EUR").order_id
    commands: list[Callable[[], int]] = [
        lambda: service.confirm_payment(order_id, WIDE * (MAX_PAYMENT_ID + 1), Decimal("1.00")),
        lambda: service.cancel(order_id, WIDE * (MAX_REASON + 1)),
        lambda: service.payment_failed(order_id, "p", WIDE * (MAX_PAYMENT_FAILURE_REASON + 1)),
        lambda: service.cancel(order_id, "bad\x00reason"),
    ]
    for command in commands:
        with pytest.raises(OrderRuleError):
            command()
    assert stored_events(service) == 1
    assert service.get_order(order_id).state == "pending"


def test_control_characters_are_refused_in_text() -> None:
    with pytest.raises(OrderRuleError) as refused:
        OrderLine("SKU\n1", 1, Decimal("1.00"))
    assert refused.value.rule == "text-printable"


@pytest.mark.parametrize(
    ("currency", "price", "accepted"),
    [
        ("JPY", Decimal("6001.2"), False),
        ("JPY", Decimal("6001"), True),
        ("JPY", Decimal("6001.0"), True),  # a whole number of yen, written with a 0
        ("EUR", Decimal("12.505"), False),
        ("EUR", Decimal("12.50"), True),
        ("BHD", Decimal("1.005"), True),
        ("BHD", Decimal("1.0005"), False),
    ],
)
def test_amounts_keep_to_their_currency_s_minor_units(
    currency: str, price: Decimal, accepted: bool
) -> None:
    service = OrderService()
    order_lines = [OrderLine("SKU-1", 1, price)]
    if accepted:
        order_id = service.place_order("c-1", order_lines, currency).order_id
        assert service.get_order(order_id).total == price
        return
    with pytest.raises(OrderRuleError) as refused:
        service.place_order("c-1", order_lines, currency)
    assert refused.value.rule == "currency-minor-units"
    assert stored_events(service) == 0


def test_changed_lines_keep_to_the_currency_s_minor_units() -> None:
    service = OrderService()
    order_id = service.place_order("c-1", [OrderLine("A", 1, Decimal(6001))], "JPY").order_id
    with pytest.raises(OrderRuleError) as refused:
        service.change_lines(order_id, [OrderLine("A", 1, Decimal("6001.2"))])
    assert refused.value.rule == "currency-minor-units"
    assert stored_events(service) == 1


def _property(schema: dict[str, Any], *path: str) -> dict[str, Any]:
    node = schema
    for name in path:
        node = node["properties"][name]
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].split("/")[-1]]
        elif "anyOf" in node:
            node = next(option for option in node["anyOf"] if option.get("type") == "string")
    return node


def test_the_schema_files_declare_the_domain_s_bounds() -> None:
    def schema(name: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
        return loaded

    placed_schema = schema("OrderPlaced")
    detail = ("detail",)
    assert _property(placed_schema, *detail, "customerId")["maxLength"] == MAX_CUSTOMER_ID
    assert _property(placed_schema, *detail, "correlationId")["maxLength"] == MAX_TRACE_ID
    assert _property(placed_schema, *detail, "causationId")["maxLength"] == MAX_TRACE_ID
    assert _property(placed_schema, *detail, "lines")["maxItems"] == MAX_LINES
    line = placed_schema["$defs"]["Line"]
    assert line["properties"]["sku"]["maxLength"] == MAX_SKU
    assert _property(schema("PaymentConfirmed"), *detail, "paymentId")["maxLength"] == (
        MAX_PAYMENT_ID
    )
    assert _property(schema("OrderCancelled"), *detail, "reason")["maxLength"] == MAX_REASON
    failed = schema("PaymentFailed")
    assert _property(failed, *detail, "reason")["maxLength"] == MAX_PAYMENT_FAILURE_REASON
    assert _property(failed, *detail, "paymentId")["maxLength"] == MAX_PAYMENT_ID
