"""Random command sequences against the Order aggregate, checked against a simple model.

Given any sequence of valid and invalid commands, the aggregate refuses exactly when the model
says a rule is broken (naming that rule, recording nothing), records exactly one event when the
model says the order changes and none when it says the command is a repeat, never reaches an
illegal state, and the stored events replay to the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from orders import Order, OrderLine, OrderRuleError, OrderService, OrderState
from tests.unit.builders import TWO_LINES

EVENT = "event"
NO_CHANGE = "no-change"
ILLEGAL = "illegal-transition"

lines_strategy = st.lists(
    st.builds(
        OrderLine,
        sku=st.sampled_from(["SKU-A", "SKU-B", "SKU-C"]),
        quantity=st.integers(min_value=1, max_value=3),
        unit_price=st.sampled_from([Decimal(0), Decimal("1.25"), Decimal("7.00")]),
    ),
    max_size=3,
).map(tuple)


@dataclass
class OrderModel:
    """What the order should be, kept by the plainest possible rules."""

    lines: tuple[OrderLine, ...]
    state: OrderState = "pending"
    payment_id: str | None = None
    reason: str | None = None
    version: int = 1

    @property
    def total(self) -> Decimal:
        return sum((line.quantity * line.unit_price for line in self.lines), Decimal(0))


class OrderLifeCycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.service = OrderService({"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.order = Order.place("customer-1", TWO_LINES, "EUR")
        self.service.save(self.order)
        self.model = OrderModel(lines=TWO_LINES)

    def expect(self, command: Callable[[Order], None], outcome: str) -> bool:
        """Run ``command``; check it had ``outcome`` (a rule, EVENT or NO_CHANGE); store it.

        Returns whether the model should apply the change.
        """
        version = self.order.version
        try:
            command(self.order)
        except OrderRuleError as refusal:
            assert refusal.rule == outcome
            assert (self.order.pending_events, self.order.version) == ([], version)
            return False
        recorded = len(self.order.pending_events)
        self.service.save(self.order)
        assert outcome in (EVENT, NO_CHANGE), f"expected {outcome}, but the command succeeded"
        assert recorded == (1 if outcome == EVENT else 0)
        self.model.version += recorded
        return outcome == EVENT

    @rule(lines=lines_strategy)
    def change_lines(self, lines: tuple[OrderLine, ...]) -> None:
        skus = [line.sku for line in lines]
        if not lines:
            outcome = "at-least-one-line"
        elif len(set(skus)) < len(skus):
            outcome = "distinct-skus"
        elif self.model.state != "pending":
            outcome = ILLEGAL
        else:
            outcome = NO_CHANGE if lines == self.model.lines else EVENT
        if self.expect(lambda order: order.change_lines(lines), outcome):
            self.model.lines = lines

    @rule(
        payment_id=st.sampled_from(["pay-1", "pay-1", "pay-2", ""]),
        amount_kind=st.sampled_from(["total"] * 4 + ["total-plus-a-cent", "total-as-float"]),
    )
    def confirm_payment(self, payment_id: str, amount_kind: str) -> None:
        total = self.model.total
        amount: object = {
            "total": total,
            "total-plus-a-cent": total + Decimal("0.01"),
            "total-as-float": float(total),
        }[amount_kind]
        if not payment_id:
            outcome = "payment-id-required"
        elif isinstance(amount, float):
            outcome = "decimal-money"
        elif amount != total:
            outcome = "payment-equals-total"
        elif payment_id == self.model.payment_id:
            outcome = NO_CHANGE
        elif self.model.payment_id is not None:
            outcome = "payment-already-confirmed"
        else:
            outcome = EVENT if self.model.state == "pending" else ILLEGAL

        def pay(order: Order) -> None:
            order.confirm_payment(payment_id, amount)  # type: ignore[arg-type]

        if self.expect(pay, outcome):
            self.model.state, self.model.payment_id = "paid", payment_id

    def advance(
        self, command: Callable[[Order], None], source: OrderState, target: OrderState
    ) -> None:
        """Move from ``source`` to ``target``; a repeat when already at ``target``."""
        if self.model.state == target:
            outcome = NO_CHANGE
        else:
            outcome = EVENT if self.model.state == source else ILLEGAL
        if self.expect(command, outcome):
            self.model.state = target

    @rule()
    def ship(self) -> None:
        self.advance(lambda order: order.ship(), "paid", "shipped")

    @rule()
    def complete(self) -> None:
        self.advance(lambda order: order.complete(), "shipped", "completed")

    # Mostly refused or repeated, so that sequences often get past payment to shipping.
    @rule(reason=st.sampled_from(["out of stock", "", "", ""]))
    def cancel(self, reason: str) -> None:
        if not reason:
            outcome = "reason-required"
        elif self.model.state == "cancelled" and reason == self.model.reason:
            outcome = NO_CHANGE
        else:
            outcome = EVENT if self.model.state in ("pending", "paid") else ILLEGAL
        if self.expect(lambda order: order.cancel(reason), outcome):
            self.model.state, self.model.reason = "cancelled", reason

    @invariant()
    def the_order_is_what_the_model_says(self) -> None:
        order, model = self.order, self.model
        assert (order.state, order.version, order.payment_id) == (
            model.state,
            model.version,
            model.payment_id,
        )
        assert (order.lines.items, order.total, order.cancellation_reason) == (
            model.lines,
            model.total,
            model.reason,
        )

    @invariant()
    def the_order_is_never_in_an_illegal_state(self) -> None:
        order = self.order
        assert order.state in {"pending", "paid", "shipped", "completed", "cancelled"}
        assert 1 <= len(order.lines) <= 100
        if order.state in {"paid", "shipped", "completed"}:
            assert order.payment_id
        assert (order.cancellation_reason is not None) == (order.state == "cancelled")

    @invariant()
    def the_stored_events_replay_to_the_same_order(self) -> None:
        assert self.service.get_order(self.order.id) == self.order


OrderLifeCycle.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestOrderLifeCycle = OrderLifeCycle.TestCase
