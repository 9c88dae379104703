"""Stored events: stable topics, the round trip through the mapper, and upcasting old versions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

from orders import (
    ORDER_EVENT_TYPES,
    Order,
    OrderCancelled,
    OrderCompleted,
    OrderEvent,
    OrderLines,
    OrderLinesChanged,
    OrderPlaced,
    OrderService,
    OrderShipped,
    PaymentConfirmed,
)
from tests.unit.builders import TWO_LINES, TWO_LINES_TOTAL

STORED_TOPICS: dict[str, type[OrderEvent]] = {
    "orders:OrderPlaced": OrderPlaced,
    "orders:OrderLinesChanged": OrderLinesChanged,
    "orders:PaymentConfirmed": PaymentConfirmed,
    "orders:OrderShipped": OrderShipped,
    "orders:OrderCompleted": OrderCompleted,
    "orders:OrderCancelled": OrderCancelled,
}
"""The topics already in stores: renaming or moving a class must not change them."""


def test_each_event_type_is_stored_under_its_fixed_topic_that_resolves_to_it() -> None:
    """Given every event type Then each has its fixed topic (not its module path), the
    topic resolves to the type, and no event type lacks one."""
    for topic, event_type in STORED_TOPICS.items():
        assert topic == event_type.TOPIC
        assert resolve_topic(topic) is event_type
    assert set(STORED_TOPICS.values()) == set(ORDER_EVENT_TYPES)


def test_the_aggregate_is_stored_under_a_stable_topic() -> None:
    """Given a placed order Then its created event names the aggregate by ``orders:Order``."""
    placed = Order.place("customer-1", TWO_LINES, "EUR").collect_events()[0]
    assert isinstance(placed, OrderPlaced)
    assert placed.originator_topic == "orders:Order"
    assert resolve_topic("orders:Order") is Order


def test_every_event_survives_the_mappers_round_trip_unchanged() -> None:
    """Given the events of a whole life cycle When each is stored and read back by the mapper
    Then it equals the original, lines, Decimals and UTC timestamps included."""
    mapper = OrderService().mapper
    order = Order.place("customer-1", TWO_LINES, "EUR")
    order.change_lines(TWO_LINES[:1])
    order.confirm_payment("pay-1", Decimal("3.00"))
    order.ship()
    order.complete()
    events = order.collect_events()

    stored = [mapper.to_stored_event(event) for event in events]
    assert {record.topic for record in stored} >= {"orders:OrderPlaced", "orders:OrderCompleted"}
    assert [mapper.to_domain_event(record) for record in stored] == events


def test_a_version_1_order_placed_is_upcast_to_version_2() -> None:
    """Given an OrderPlaced stored as version 1 wrote it (no ``total``, no ``class_version``)
    When the service reads it
    Then it is a version 2 event whose total is computed from its lines, the order loads,
    and storing it again writes version 2."""
    service = OrderService()
    order_id = uuid4()
    version_1_state = {
        "timestamp": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "originator_topic": "orders:Order",
        "customer_id": "customer-1",
        "correlation_id": "corr-1",
        "causation_id": None,
        "currency": "EUR",
        "lines": OrderLines(TWO_LINES),
    }
    service.recorder.insert_events(
        [
            StoredEvent(
                originator_id=order_id,
                originator_version=1,
                topic="orders:OrderPlaced",
                state=service.mapper.transcoder.encode(version_1_state),
            )
        ]
    )

    (placed,) = service.events.get(order_id)

    assert isinstance(placed, OrderPlaced)
    assert placed.total == TWO_LINES_TOTAL
    assert placed.correlation_id == "corr-1"
    assert service.get_order(order_id).total == TWO_LINES_TOTAL
    restored_state = service.mapper.transcoder.decode(service.mapper.to_stored_event(placed).state)
    assert (restored_state["class_version"], restored_state["total"]) == (2, TWO_LINES_TOTAL)
