"""The Order aggregate: each command, each rule, and repeats that change nothing."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from orders import (
    MAX_LINES,
    Order,
    OrderCancelled,
    OrderCompleted,
    OrderLine,
    OrderLinesChanged,
    OrderPlaced,
    OrderRuleError,
    OrderShipped,
    OrderState,
    OrderStatus,
    PaymentConfirmed,
    Trace,
)
from orders.values import MAX_DIGITS, digit_count
from tests.unit.builders import (
    CANCEL_REASON,
    OTHER_LINES,
    PAYMENT_ID,
    TWO_LINES,
    TWO_LINES_TOTAL,
    order_in,
)

Command = Callable[[Order], object]


def assert_refused(order: Order, command: Command, rule: str) -> None:
    """Then ``command`` raises ``OrderRuleError(rule)``, records no event, changes nothing."""
    before = copy.deepcopy(vars(order))
    with pytest.raises(OrderRuleError) as refused:
        command(order)
    assert refused.value.rule == rule
    assert order.collect_events() == []
    assert vars(order) == before


def assert_no_change(order: Order, command: Command) -> None:
    """Then ``command`` returns normally, records no event and leaves the order as it was."""
    before = copy.deepcopy(vars(order))
    command(order)
    assert order.collect_events() == []
    assert vars(order) == before


def test_placing_an_order_records_order_placed_with_the_total_and_the_trace() -> None:
    """Given lines totalling 10.00 EUR and a trace
    When the order is placed under a chosen id
    Then one OrderPlaced (version 1) records customer, lines, total, currency and trace,
    and the order is pending."""
    order_id = uuid4()
    order = Order.place(
        "customer-1", TWO_LINES, "EUR", order_id=order_id, trace=Trace("corr-1", "cmd-1")
    )

    (placed,) = order.collect_events()
    assert isinstance(placed, OrderPlaced)
    assert (placed.originator_id, placed.originator_version) == (order_id, 1)
    assert (placed.customer_id, placed.currency, placed.total) == ("customer-1", "EUR", Decimal(10))
    assert tuple(placed.lines) == TWO_LINES
    assert (placed.correlation_id, placed.causation_id) == ("corr-1", "cmd-1")
    assert placed.timestamp.tzinfo is UTC
    assert (order.id, order.version, order.status) == (order_id, 1, "pending")
    assert order.total == TWO_LINES_TOTAL


def test_a_command_without_a_trace_gets_a_fresh_correlation_id() -> None:
    """Given no trace When two orders are placed Then each event has its own correlation id."""
    first = Order.place("customer-1", TWO_LINES, "EUR").collect_events()[0]
    second = Order.place("customer-1", TWO_LINES, "EUR").collect_events()[0]
    assert isinstance(first, OrderPlaced)
    assert isinstance(second, OrderPlaced)
    assert first.correlation_id and first.correlation_id != second.correlation_id
    assert first.causation_id is None


def test_changing_lines_of_a_pending_order_records_the_new_lines_and_total() -> None:
    """Given a pending order When its lines are replaced
    Then OrderLinesChanged records the lines and the new total, and the order has them."""
    order = order_in("pending")

    order.change_lines(OTHER_LINES, trace=Trace("corr-2"))

    (changed,) = order.collect_events()
    assert isinstance(changed, OrderLinesChanged)
    assert (tuple(changed.lines), changed.total, changed.customer_id) == (
        OTHER_LINES,
        Decimal("9.00"),
        "customer-1",
    )
    assert changed.correlation_id == "corr-2"
    assert (tuple(order.lines), order.total, order.version) == (OTHER_LINES, Decimal(9), 2)


def test_confirming_payment_of_the_total_makes_the_order_processing() -> None:
    """Given a pending order of 10.00 When payment pay-1 of 10 is confirmed
    Then PaymentConfirmed records it and the order is paid, publicly processing."""
    order = order_in("pending")

    order.confirm_payment(PAYMENT_ID, Decimal(10))

    (paid,) = order.collect_events()
    assert isinstance(paid, PaymentConfirmed)
    assert (paid.payment_id, paid.amount, paid.total) == (PAYMENT_ID, Decimal(10), TWO_LINES_TOTAL)
    assert (order.state, order.status, order.payment_id) == ("paid", "processing", PAYMENT_ID)


def test_shipping_then_completing_a_paid_order() -> None:
    """Given a paid order When it is shipped and then completed
    Then OrderShipped and OrderCompleted are recorded and the order is completed."""
    order = order_in("paid")

    order.ship()
    assert (order.state, order.status) == ("shipped", "processing")
    order.complete()

    assert [type(event) for event in order.collect_events()] == [OrderShipped, OrderCompleted]
    assert (order.state, order.status, order.version) == ("completed", "completed", 4)


@pytest.mark.parametrize("state", ["pending", "paid"])
def test_cancelling_an_order_that_has_not_shipped_records_the_reason(state: OrderState) -> None:
    """Given a pending or paid order When it is cancelled for a reason
    Then OrderCancelled records the reason and the order is cancelled."""
    order = order_in(state)

    order.cancel("out of stock")

    (cancelled,) = order.collect_events()
    assert isinstance(cancelled, OrderCancelled)
    assert cancelled.reason == "out of stock"
    assert (order.status, order.cancellation_reason) == ("cancelled", "out of stock")


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("pending", "pending"),
        ("paid", "processing"),
        ("shipped", "processing"),
        ("completed", "completed"),
        ("cancelled", "cancelled"),
    ],
)
def test_each_internal_state_shows_its_public_status(
    state: OrderState, status: OrderStatus
) -> None:
    """Given an order in each state Then its public status is the contract's."""
    assert order_in(state).status == status


def many_lines(count: int) -> list[OrderLine]:
    return [OrderLine(f"SKU-{n}", 1, Decimal(1)) for n in range(count)]


@pytest.mark.parametrize(
    ("customer_id", "lines", "currency", "rule"),
    [
        ("", TWO_LINES, "EUR", "customer-required"),
        ("   ", TWO_LINES, "EUR", "customer-required"),
        ("customer-1", TWO_LINES, "eur", "known-currency"),
        ("customer-1", TWO_LINES, "ABC", "known-currency"),
        ("customer-1", TWO_LINES, "EURO", "known-currency"),
        ("customer-1", (), "EUR", "at-least-one-line"),
        ("customer-1", many_lines(MAX_LINES + 1), "EUR", "max-lines"),
        ("customer-1", (*TWO_LINES, TWO_LINES[0]), "EUR", "distinct-skus"),
        ("customer-1", [("SKU-1", 1, Decimal(1))], "EUR", "order-line"),
    ],
)
def test_placing_an_order_that_breaks_a_rule_creates_nothing(
    customer_id: str, lines: Sequence[Any], currency: str, rule: str
) -> None:
    """Given input that breaks a rule When an order is placed
    Then OrderRuleError names the rule (so no order and no event exists)."""
    with pytest.raises(OrderRuleError) as refused:
        Order.place(customer_id, lines, currency)
    assert refused.value.rule == rule


def test_an_order_may_have_exactly_the_maximum_number_of_lines() -> None:
    """Given MAX_LINES lines When the order is placed Then it is accepted."""
    assert len(Order.place("customer-1", many_lines(MAX_LINES), "EUR").lines) == MAX_LINES


@pytest.mark.parametrize(
    ("sku", "quantity", "unit_price", "rule"),
    [
        ("", 1, Decimal(1), "sku-required"),
        ("SKU-1", 0, Decimal(1), "positive-quantity"),
        ("SKU-1", -1, Decimal(1), "positive-quantity"),
        ("SKU-1", 1.0, Decimal(1), "positive-quantity"),
        ("SKU-1", True, Decimal(1), "positive-quantity"),
        ("SKU-1", 1, Decimal("-0.01"), "non-negative-money"),
        ("SKU-1", 1, 9.99, "decimal-money"),
        ("SKU-1", 1, "9.99", "decimal-money"),
        ("SKU-1", 1, Decimal("NaN"), "decimal-money"),
        ("SKU-1", 1, Decimal("Infinity"), "decimal-money"),
        ("SKU-1", 1, Decimal("12345678901234.56"), "money-digits"),
        ("SKU-1", 1, Decimal("0.0000000000000001"), "money-digits"),
        ("SKU-1", 1, Decimal("1E+15"), "money-digits"),
        ("SKU-1", 10**15, Decimal(0), "positive-quantity"),
    ],
)
def test_an_order_line_that_breaks_a_rule_cannot_exist(
    sku: str, quantity: Any, unit_price: Any, rule: str
) -> None:
    """Given a line value that breaks a rule When the line is made Then OrderRuleError names it."""
    with pytest.raises(OrderRuleError) as refused:
        OrderLine(sku, quantity, unit_price)
    assert refused.value.rule == rule


def test_a_float_price_is_refused_with_the_decimal_to_use_instead() -> None:
    """Given a float price When a line is made Then the error says which Decimal to pass."""
    with pytest.raises(OrderRuleError, match=r"Decimal\('9.99'\)"):
        OrderLine("SKU-1", 1, 9.99)  # type: ignore[arg-type]


def test_amounts_of_up_to_fifteen_digits_are_exact_for_a_consumer_reading_doubles() -> None:
    """Given prices of exactly MAX_DIGITS digits When lines are made
    Then they are accepted, and each survives a round trip through a double."""
    for price in ("1234567890123.45", "0.000000000000001", "999999999999999", "9.99"):
        line = OrderLine("SKU-1", 1, Decimal(price))
        assert digit_count(line.unit_price) <= MAX_DIGITS
        assert Decimal(repr(float(line.unit_price))) == line.unit_price


def test_an_order_whose_total_has_too_many_digits_is_refused_naming_the_total() -> None:
    """Given lines each within MAX_DIGITS whose total is not When the order is placed
    Then OrderRuleError money-digits names the order total."""
    lines = [OrderLine("SKU-1", 3, Decimal("999999999999999")), OrderLine("SKU-2", 1, Decimal(1))]
    with pytest.raises(OrderRuleError, match="the order total") as refused:
        Order.place("customer-1", lines, "EUR")
    assert refused.value.rule == "money-digits"


def test_free_lines_are_allowed_and_an_int_price_becomes_a_decimal() -> None:
    """Given a price of 0 (int) When the line is made Then its price is Decimal 0."""
    line = OrderLine("SKU-1", 3, 0)  # type: ignore[arg-type]
    assert isinstance(line.unit_price, Decimal)
    assert line.subtotal == 0


def pay(amount: object, payment_id: str = PAYMENT_ID) -> Command:
    """The command to confirm ``payment_id`` of ``amount`` (of any type, to test refusals)."""

    def confirm_payment(order: Order) -> None:
        order.confirm_payment(payment_id, amount)  # type: ignore[arg-type]

    return confirm_payment


def change_to(lines: Sequence[OrderLine]) -> Command:
    def change_lines(order: Order) -> None:
        order.change_lines(lines)

    return change_lines


def cancel_for(reason: str) -> Command:
    def cancel(order: Order) -> None:
        order.cancel(reason)

    return cancel


REFUSALS: list[tuple[OrderState, Command, str]] = [
    ("pending", change_to([]), "at-least-one-line"),
    ("pending", change_to(many_lines(MAX_LINES + 1)), "max-lines"),
    ("paid", change_to(OTHER_LINES), "illegal-transition"),
    ("shipped", change_to(OTHER_LINES), "illegal-transition"),
    ("completed", change_to(OTHER_LINES), "illegal-transition"),
    ("cancelled", change_to(OTHER_LINES), "illegal-transition"),
    ("pending", pay(TWO_LINES_TOTAL, payment_id=""), "payment-id-required"),
    ("pending", pay(10.0), "decimal-money"),
    ("pending", pay(Decimal(-10)), "non-negative-money"),
    ("pending", pay(Decimal("10.0000000000000000")), "money-digits"),
    ("pending", pay(Decimal(9)), "payment-equals-total"),
    ("paid", pay(TWO_LINES_TOTAL, payment_id="pay-2"), "payment-already-confirmed"),
    ("paid", pay(Decimal(11)), "payment-equals-total"),
    ("cancelled", pay(TWO_LINES_TOTAL), "illegal-transition"),
    ("pending", Order.ship, "illegal-transition"),
    ("completed", Order.ship, "illegal-transition"),
    ("cancelled", Order.ship, "illegal-transition"),
    ("pending", Order.complete, "illegal-transition"),
    ("paid", Order.complete, "illegal-transition"),
    ("cancelled", Order.complete, "illegal-transition"),
    ("pending", cancel_for(""), "reason-required"),
    ("shipped", cancel_for(CANCEL_REASON), "illegal-transition"),
    ("completed", cancel_for(CANCEL_REASON), "illegal-transition"),
    ("cancelled", cancel_for("another reason"), "illegal-transition"),
]


@pytest.mark.parametrize(("state", "command", "rule"), REFUSALS)
def test_a_command_that_breaks_a_rule_records_no_event(
    state: OrderState, command: Command, rule: str
) -> None:
    """Given an order in ``state`` When ``command`` breaks ``rule``
    Then OrderRuleError names it, no event is recorded and the order is unchanged."""
    assert_refused(order_in(state), command, rule)


REPEATS: list[tuple[OrderState, Command]] = [
    ("pending", change_to(TWO_LINES)),
    ("paid", pay(TWO_LINES_TOTAL)),
    ("shipped", pay(Decimal("10.0"))),
    ("completed", pay(TWO_LINES_TOTAL)),
    ("shipped", Order.ship),
    ("completed", Order.complete),
    ("cancelled", cancel_for(CANCEL_REASON)),
]


@pytest.mark.parametrize(("state", "command"), REPEATS)
def test_repeating_a_command_that_took_effect_changes_nothing(
    state: OrderState, command: Command
) -> None:
    """Given an order a command already brought to ``state`` When the command comes again
    Then no event is recorded and the version stays the same."""
    assert_no_change(order_in(state), command)


def test_a_payment_repeated_after_a_paid_order_was_cancelled_changes_nothing() -> None:
    """Given an order paid by pay-1 and then cancelled When pay-1 is confirmed again
    Then nothing changes (the payment already took effect)."""
    order = order_in("paid")
    order.cancel(CANCEL_REASON)
    order.collect_events()
    assert_no_change(order, pay(TWO_LINES_TOTAL))


def test_events_are_immutable() -> None:
    """Given a recorded event When a field is assigned Then it refuses."""
    placed = Order.place("customer-1", TWO_LINES, "EUR").collect_events()[0]
    assert isinstance(placed, OrderPlaced)
    with pytest.raises(dataclasses.FrozenInstanceError):
        placed.customer_id = "someone else"  # type: ignore[misc]
