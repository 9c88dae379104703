"""Helpers of the projection tests: a from-scratch replay to compare views with."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import ApplicationRecorder

from adapters.cli.demo import CATALOGUE
from orders import Order, OrderLine, OrderService
from projections.generations import live_generation, view_name
from projections.memory import InMemoryViewStore
from projections.ports import JSONLike, ViewStore
from projections.rebuild import partitions_of, rows_of
from projections.runtime import Decode, Runner
from projections.views import PROJECTIONS

Contents = dict[tuple[str, str], tuple[dict[str, JSONLike], int]]


def contents(
    store: ViewStore, recorder: ApplicationRecorder, decode: Decode, name: str
) -> Contents:
    """Every row of the live generation of projection ``name`` that the log's events touch."""
    projection = PROJECTIONS[name]
    view = view_name(name, live_generation(store, name))
    return {
        (row.partition, row.key): (dict(row.data), row.version)
        for partition in partitions_of(projection, recorder, decode)
        for row in rows_of(store, view, partition)
    }


def replayed(recorder: ApplicationRecorder, decode: Decode) -> dict[str, Contents]:
    """Each projection's rows after a from-scratch replay of the whole log in memory."""
    store = InMemoryViewStore()
    result: dict[str, Any] = {}
    for name, projection in PROJECTIONS.items():
        Runner(projection, store, recorder, decode).catch_up()
        result[name] = contents(store, recorder, decode, name)
    return result


def all_contents(
    store: ViewStore, recorder: ApplicationRecorder, decode: Decode
) -> dict[str, Contents]:
    return {name: contents(store, recorder, decode, name) for name in PROJECTIONS}


EVENTS_PER_ORDER = 10


def seed_orders(service: OrderService, orders: int, orders_per_save: int = 10) -> int:
    """Store ``orders`` orders of :data:`EVENTS_PER_ORDER` events each (placed, lines changed
    6 times, paid, shipped, completed), ``orders_per_save`` orders per save (so each order's
    events are consecutive in the log); one customer per 5 orders. Returns the events stored."""
    skus = sorted(CATALOGUE)
    for start in range(0, orders, orders_per_save):
        batch = []
        for number in range(start, min(orders, start + orders_per_save)):
            sku = skus[number % len(skus)]
            order = Order.place(
                f"customer-{number // 5}", [OrderLine(sku, 1, CATALOGUE[sku])], "EUR"
            )
            for quantity in range(2, 8):
                order.change_lines([OrderLine(sku, quantity, CATALOGUE[sku])])
            order.confirm_payment(f"pay-{number}", order.total)
            order.ship()
            order.complete()
            batch.append(order)
        service.save(*batch)
    return orders * EVENTS_PER_ORDER
