"""Asking ``OrderService`` about an order: the ids people pass, versions, times, refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from orders import (
    AuditEntry,
    OrderError,
    OrderEvent,
    OrderLine,
    OrderNotFoundError,
    OrderNotYetPlacedError,
    OrderQueryError,
    OrderService,
    OrderStatus,
)
from schemas import to_envelope, to_json

LINES = [OrderLine("BOOK-001", 2, Decimal("12.50"))]


@pytest.fixture
def service() -> OrderService:
    return OrderService()


def test_a_str_id_is_parsed_and_other_types_are_a_type_error(service: OrderService) -> None:
    order_id = service.place_order("c", LINES, "EUR").order_id
    assert service.get_order(str(order_id)).id == order_id
    assert service.audit(str(order_id))[0].version == 1
    with pytest.raises(TypeError, match="order_id must be a UUID or a str, not int"):
        service.get_order(order_id.int)  # type: ignore[arg-type]
    with pytest.raises(OrderQueryError, match="'not-a-uuid' is not a uuid"):
        service.get_order("not-a-uuid")


def test_version_0_is_before_the_first_event_not_not_found(service: OrderService) -> None:
    order_id = service.place_order("c", LINES, "EUR").order_id
    with pytest.raises(OrderQueryError, match="versions start at 1") as refused:
        service.get_order(order_id, version=0)
    assert not isinstance(refused.value, OrderNotFoundError)
    assert service.get_order(order_id, version=1).version == 1


def test_naive_as_of_and_version_with_as_of_are_order_errors_naming_the_problem(
    service: OrderService,
) -> None:
    order_id = service.place_order("c", LINES, "EUR").order_id
    with pytest.raises(OrderQueryError, match="timezone-aware") as naive:
        service.get_order(order_id, as_of=datetime(2026, 11, 27, 9))
    with pytest.raises(OrderQueryError, match="not both") as both:
        service.get_order(order_id, version=1, as_of=datetime.now(UTC))
    assert isinstance(naive.value, OrderError) and isinstance(both.value, OrderError)


def test_as_of_before_the_order_was_placed_says_it_did_not_exist_yet(
    service: OrderService,
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    order_id = service.place_order("c", LINES, "EUR").order_id
    with pytest.raises(OrderNotYetPlacedError, match="did not exist yet at") as early:
        service.get_order(order_id, as_of=before)
    assert early.value.placed_at > before and early.value.order_id == order_id
    assert service.get_order(order_id, as_of=datetime.now(UTC)).version == 1
    with pytest.raises(OrderNotFoundError) as unknown:
        service.get_order(UUID(int=7), as_of=datetime.now(UTC))
    assert not isinstance(unknown.value, OrderNotYetPlacedError)


def test_status_is_the_enum_and_serialises_as_before(service: OrderService) -> None:
    order_id = service.place_order("c", LINES, "EUR").order_id
    service.confirm_payment(order_id, "p", Decimal("25.00"))
    order = service.get_order(order_id)
    text: str = order.status  # a str: equal to, and printed as, the contract's string
    assert text == "processing" and f"{order.status}" == "processing"
    assert order.status is OrderStatus.PROCESSING
    assert json.dumps(order.status) == '"processing"'
    entry = service.audit(order_id)[-1]
    assert entry.state["status"] == "processing" and type(entry.state["status"]) is str
    details = [
        json.loads(to_json(to_envelope(event)))["detail"]
        for event in service.events.get(order_id)
        if isinstance(event, OrderEvent)
    ]
    assert [detail["status"] for detail in details] == ["pending", "processing"]


def test_audit_entry_to_json_is_json_text_that_reads_back_equal(service: OrderService) -> None:
    order_id = service.place_order("c", LINES, "EUR").order_id
    entry = service.audit(order_id)[0]
    text = entry.to_json()
    assert isinstance(text, str) and "\n" not in text
    assert json.loads(text) == entry.to_dict()
    assert AuditEntry.from_json(text) == entry == AuditEntry.from_dict(entry.to_dict())
