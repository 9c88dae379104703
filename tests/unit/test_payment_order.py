"""Payment outcomes do not depend on delivery order: every permutation of the same payment
events, duplicates included, ends in the same state, and a failure never cancels a paid order.

Exhaustive: every sequence of up to 4 events drawn from PaymentSucceeded and PaymentFailed for
two payment ids (340 sequences), each run through the saga on a fresh order, grouped by the
multiset of events they hold; every sequence of a group must end alike.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from decimal import Decimal
from typing import NamedTuple
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from adapters.consumers.dispatcher import PAYMENT_DETAIL_TYPES, Dispatcher
from adapters.consumers.saga import PaymentSaga
from orders import OrderCancelled, OrderLine, OrderRuleError, OrderService
from schemas.payments import PaymentEnvelope, payment_failed, payment_succeeded

TOTAL = Decimal("25.00")
PAYMENTS = ("pay-1", "pay-2")
KINDS = tuple(itertools.product(("succeeded", "failed"), PAYMENTS))


class Outcome(NamedTuple):
    """What a sequence leaves: the order's state and payment, and which payment events were
    refused (dead-lettered) with which rule."""

    state: str
    payment_id: str | None
    cancelled_for: str | None
    refused: tuple[tuple[str, str, str], ...]


def envelope(order_id: UUID, kind: tuple[str, str]) -> PaymentEnvelope:
    outcome, payment_id = kind
    if outcome == "succeeded":
        return payment_succeeded(order_id, payment_id, TOTAL, "EUR")
    return payment_failed(order_id, payment_id, TOTAL, "EUR", "card declined")


def run(service: OrderService, sequence: tuple[tuple[str, str], ...]) -> Outcome:
    order_id = service.place_order("c-1", [OrderLine("BOOK", 2, Decimal("12.50"))], "EUR")[0]
    handle = Dispatcher([(PAYMENT_DETAIL_TYPES, PaymentSaga(service))])
    refused: list[tuple[str, str, str]] = []
    for kind in sequence:
        for _ in range(3):  # each delivery retried as a queue would, then dead-lettered
            try:
                handle.handle(envelope(order_id, kind))
            except OrderRuleError as error:
                last = error.rule
            else:
                break
        else:
            refused.append((*kind, last))
    order = service.get_order(order_id)
    return Outcome(order.state, order.payment_id, order.failed_payment_id, tuple(sorted(refused)))


def sequences(length: int) -> list[tuple[tuple[str, str], ...]]:
    return [
        sequence
        for size in range(1, length + 1)
        for sequence in itertools.product(KINDS, repeat=size)
    ]


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[tuple[str, str], ...], dict[tuple[tuple[str, str], ...], Outcome]]:
    service = OrderService()
    groups: dict[tuple[tuple[str, str], ...], dict[tuple[tuple[str, str], ...], Outcome]]
    groups = defaultdict(dict)
    for sequence in sequences(4):
        groups[tuple(sorted(sequence))][sequence] = run(service, sequence)
    return groups


def test_the_sequences_cover_every_permutation_with_duplicates(
    outcomes: dict[tuple[tuple[str, str], ...], dict[tuple[tuple[str, str], ...], Outcome]],
) -> None:
    assert sum(len(group) for group in outcomes.values()) == 4 + 16 + 64 + 256


def test_a_paid_order_is_never_cancelled_and_any_success_pays_it(
    outcomes: dict[tuple[tuple[str, str], ...], dict[tuple[tuple[str, str], ...], Outcome]],
) -> None:
    for events, group in outcomes.items():
        succeeded = {payment for outcome, payment in events if outcome == "succeeded"}
        for sequence, result in group.items():
            if succeeded:
                assert result.state == "paid", sequence
                assert result.payment_id in succeeded, sequence
                assert result.cancelled_for is None, sequence
            else:
                assert result.state == "cancelled", sequence
                assert result.payment_id is None, sequence


def test_every_permutation_of_the_same_events_ends_in_the_same_state(
    outcomes: dict[tuple[tuple[str, str], ...], dict[tuple[tuple[str, str], ...], Outcome]],
) -> None:
    """Exactly the same state (order state, payment, cancelling payment, refusals) whenever the
    events name one payment that succeeded and at most one that failed; otherwise the state is
    the same and only *which* of two successes stands, or which failure cancelled, differs (the
    other success is refused, ``payment-already-confirmed``, in every order)."""
    for events, group in outcomes.items():
        succeeded = {payment for outcome, payment in events if outcome == "succeeded"}
        failed = {payment for outcome, payment in events if outcome == "failed"}
        results = set(group.values())
        if len(succeeded) <= 1 and (succeeded or len(failed) <= 1):
            assert len(results) == 1, (events, results)
        else:
            assert len({result.state for result in results}) == 1, (events, results)
        if len(succeeded) == 2:  # one success stands, the other is refused for a refund
            for result in results:
                assert [rule for *_, rule in result.refused] == ["payment-already-confirmed"] * (
                    sum(
                        1
                        for outcome, p in events
                        if outcome == "succeeded" and p != result.payment_id
                    )
                )


def test_a_late_failure_of_the_very_payment_that_succeeded_changes_nothing() -> None:
    service = OrderService()
    result = run(service, (("succeeded", "pay-1"), ("failed", "pay-1")))
    assert result == Outcome("paid", "pay-1", None, ())
    assert run(service, (("failed", "pay-1"), ("succeeded", "pay-1"))) == result


def test_a_success_pays_an_order_a_failure_cancelled_but_not_one_the_customer_cancelled() -> None:
    service = OrderService()
    lines = [OrderLine("BOOK", 2, Decimal("12.50"))]
    declined = service.place_order("c-1", lines, "EUR").order_id
    service.payment_failed(declined, "pay-1", "card declined")
    assert service.get_order(declined).failed_payment_id == "pay-1"
    service.confirm_payment(declined, "pay-2", TOTAL)
    order = service.get_order(declined)
    assert (order.state, order.payment_id, order.cancellation_reason) == ("paid", "pay-2", None)

    withdrawn = service.place_order("c-1", lines, "EUR").order_id
    service.cancel(withdrawn, "changed my mind")
    with pytest.raises(OrderRuleError) as refused:
        service.confirm_payment(withdrawn, "pay-3", TOTAL)
    assert refused.value.rule == "illegal-transition"
    assert service.get_order(withdrawn).version == 2


def test_a_failure_after_shipping_records_nothing() -> None:
    service = OrderService()
    order_id = service.place_order("c-1", [OrderLine("BOOK", 2, Decimal("12.50"))], "EUR")[0]
    service.confirm_payment(order_id, "pay-1", TOTAL)
    shipped = service.ship(order_id)
    assert service.payment_failed(order_id, "pay-1", "chargeback") == shipped
    assert service.get_order(order_id).state == "shipped"


def test_a_cancellation_stored_before_failed_payment_ids_were_recorded_still_loads() -> None:
    service = OrderService()
    order_id = service.place_order("c-1", [OrderLine("BOOK", 1, Decimal("1.00"))], "EUR")[0]
    service.cancel(order_id, "why")
    stored = service.mapper.to_stored_event(list(service.events.get(order_id))[-1])
    state = json.loads(stored.state)
    del state["failed_payment_id"]
    del state["class_version"]  # version 1 events carried none
    old = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, json.dumps(state).encode()
    )
    event = service.mapper.to_domain_event(old)
    assert isinstance(event, OrderCancelled)
    assert (event.reason, event.failed_payment_id) == ("why", None)
