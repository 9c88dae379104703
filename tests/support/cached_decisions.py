"""Scenarios of two service instances, each with its own aggregate cache, on one store.

``ours`` holds the order in its cache; ``theirs`` moves it behind ``ours``'s back. Each scenario
asserts on the answer ``ours`` gives and on the events stored, so it runs unchanged on SQLite
and on DynamoDB Local in both write modes.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders import OrderLine, OrderLines, OrderRuleError, OrderService

LINES = OrderLines.of(
    (OrderLine("SKU-1", 2, Decimal("1.50")), OrderLine("SKU-2", 1, Decimal("7.00")))
)
"""Lines totalling 10.00."""
OTHER_LINES = OrderLines.of((OrderLine("SKU-3", 4, Decimal("2.25")),))
THIRD_LINES = OrderLines.of((OrderLine("SKU-4", 1, Decimal("3.00")),))


def stored(service: OrderService, order_id: object) -> list[tuple[int, str, object]]:
    """Each stored event of the order: version, type and the lines or payment it records."""
    return [
        (e.version, e.type_name, e.details.get("lines", e.details.get("payment_id")))
        for e in service.history(order_id)  # type: ignore[arg-type]
    ]


def a_stale_decision_is_never_committed(ours: OrderService, theirs: OrderService) -> None:
    """``ours`` decides a payment on its cached pending order after ``theirs`` cancelled it:
    the conditional write fails, ``ours`` reloads and refuses; only the cancellation is stored."""
    order_id = ours.place_order("customer-1", LINES.items, "EUR").order_id  # Cached by ours.
    assert theirs.cancel(order_id, "out of stock") == 2

    with pytest.raises(OrderRuleError) as refused:
        ours.confirm_payment(order_id, "pay-1", Decimal("10.00"))

    assert refused.value.rule == "illegal-transition"
    assert [v for v, _, _ in stored(theirs, order_id)] == [1, 2]
    assert [t for _, t, _ in stored(theirs, order_id)] == ["OrderPlaced", "OrderCancelled"]


def a_conflict_is_decided_again_after_the_other_writers_event(
    ours: OrderService, theirs: OrderService
) -> None:
    """``ours`` changes lines of its cached order after ``theirs`` did: its write at version 2
    fails, it reloads and stores its change at version 3, after the other writer's."""
    order_id = ours.place_order("customer-1", LINES.items, "EUR").order_id
    assert theirs.change_lines(order_id, OTHER_LINES.items) == 2

    assert ours.change_lines(order_id, THIRD_LINES.items) == 3

    assert stored(theirs, order_id) == [
        (1, "OrderPlaced", LINES),
        (2, "OrderLinesChanged", OTHER_LINES),
        (3, "OrderLinesChanged", THIRD_LINES),
    ]
    assert ours.get_order(order_id).lines == THIRD_LINES


def a_refusal_on_cached_state_is_confirmed(ours: OrderService, theirs: OrderService) -> None:
    """Shipping is refused on ``ours``'s cached unpaid order, but ``theirs`` paid it: the
    refusal is checked against the store, and the order ships."""
    order_id = ours.place_order("customer-1", LINES.items, "EUR").order_id
    assert theirs.confirm_payment(order_id, "pay-1", Decimal("10.00")) == 2

    assert ours.ship(order_id) == 3

    assert [t for _, t, _ in stored(theirs, order_id)][1:] == ["PaymentConfirmed", "OrderShipped"]


def a_no_op_on_cached_state_is_confirmed(ours: OrderService, theirs: OrderService) -> None:
    """Setting the lines ``ours``'s cached order has is a no-op there, but ``theirs`` changed
    them: the no-op is checked against the store, and the lines are changed back."""
    order_id = ours.place_order("customer-1", LINES.items, "EUR").order_id
    assert theirs.change_lines(order_id, OTHER_LINES.items) == 2

    assert ours.change_lines(order_id, LINES.items) == 3

    assert stored(theirs, order_id)[-1] == (3, "OrderLinesChanged", LINES)


def an_unmoved_refusal_and_no_op_stand(ours: OrderService, theirs: OrderService) -> None:
    """On a cached order nobody moved, a refusal is still refused and a repeat still a no-op,
    and nothing is stored for either."""
    order_id = ours.place_order("customer-1", LINES.items, "EUR").order_id
    assert ours.confirm_payment(order_id, "pay-1", Decimal("10.00")) == 2

    with pytest.raises(OrderRuleError, match="illegal-transition"):
        ours.complete(order_id)
    assert ours.confirm_payment(order_id, "pay-1", Decimal("10.00")) == 2

    assert [v for v, _, _ in stored(theirs, order_id)] == [1, 2]


SCENARIOS = (
    a_stale_decision_is_never_committed,
    a_conflict_is_decided_again_after_the_other_writers_event,
    a_refusal_on_cached_state_is_confirmed,
    a_no_op_on_cached_state_is_confirmed,
    an_unmoved_refusal_and_no_op_stand,
)
