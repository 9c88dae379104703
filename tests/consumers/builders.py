"""Envelopes of real order events, and the downstream views' contents, for the consumer tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from adapters.cli.demo import run_demo
from orders import OrderEvent, OrderService
from projections.downstream import (
    CUSTOMER_ORDERS,
    CUSTOMER_VALUE,
    DAILY_SALES,
    ORDERS_BY_STATUS,
    TRACKER_VIEW,
    DownstreamProjection,
)
from projections.memory import InMemoryViewStore
from projections.ports import ViewStore
from schemas.contract import Envelope
from schemas.mapping import to_envelope

STATUSES = ("pending", "processing", "completed", "cancelled")


def demo_service(order_count: int, seed: int = 11) -> OrderService:
    """An in-memory ``OrderService`` holding the demo's journeys of ``order_count`` orders."""
    service = OrderService()
    run_demo(service, order_count, seed)
    return service


def logged_envelopes(service: OrderService) -> list[Envelope]:
    """The envelope of every event in ``service``'s notification log, in log order."""
    head = service.recorder.max_notification_id() or 0
    notifications = service.recorder.select_notifications(start=1, limit=head)
    events = [service.mapper.to_domain_event(notification) for notification in notifications]
    return [to_envelope(event) for event in events if isinstance(event, OrderEvent)]


def view_contents(store: ViewStore, envelopes: Iterable[Envelope]) -> dict[tuple[str, str], Any]:
    """Every row of the downstream views the orders of ``envelopes`` can have touched."""
    envelopes = list(envelopes)
    customers = {envelope.detail.customer_id for envelope in envelopes}
    currencies = {envelope.detail.currency for envelope in envelopes}
    days = {envelope.time.date().isoformat() for envelope in envelopes}
    orders = {str(envelope.detail.order_id) for envelope in envelopes}
    partitions = [
        *((CUSTOMER_ORDERS, customer) for customer in customers),
        *((CUSTOMER_VALUE, customer) for customer in customers),
        *((DAILY_SALES, currency) for currency in currencies),
        *((ORDERS_BY_STATUS, f"{s}#{day}") for s in STATUSES for day in days),
        *((TRACKER_VIEW, order) for order in orders),
    ]
    contents: dict[tuple[str, str], Any] = {}
    for view, partition in partitions:
        rows = store.query(view, partition).rows
        if rows:
            contents[view, partition] = [(row.key, dict(row.data), row.version) for row in rows]
    return contents


def replayed(envelopes: Iterable[Envelope]) -> InMemoryViewStore:
    """The downstream views from ``envelopes`` in log order, each once: what a replay gives."""
    store = InMemoryViewStore()
    projection = DownstreamProjection(store)
    for envelope in envelopes:
        projection(envelope)
    return store
