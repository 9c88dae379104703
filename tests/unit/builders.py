"""Orders and lines that the unit tests start from."""

from __future__ import annotations

from decimal import Decimal

from orders import Order, OrderLine, OrderState

TWO_LINES = (OrderLine("SKU-1", 2, Decimal("1.50")), OrderLine("SKU-2", 1, Decimal("7.00")))
"""Lines totalling 10.00."""
TWO_LINES_TOTAL = Decimal("10.00")

OTHER_LINES = (OrderLine("SKU-3", 4, Decimal("2.25")),)
"""Lines totalling 9.00."""

PAYMENT_ID = "pay-1"
CANCEL_REASON = "customer changed their mind"


def order_in(state: OrderState) -> Order:
    """An order of ``TWO_LINES`` in EUR that reached ``state`` the shortest way, events collected.

    A cancelled order is cancelled while pending, for ``CANCEL_REASON``.
    """
    order = Order.place("customer-1", TWO_LINES, "EUR")
    if state == "cancelled":
        order.cancel(CANCEL_REASON)
    if state in ("paid", "shipped", "completed"):
        order.confirm_payment(PAYMENT_ID, TWO_LINES_TOTAL)
    if state in ("shipped", "completed"):
        order.ship()
    if state == "completed":
        order.complete()
    order.collect_events()
    assert order.state == state
    return order
