"""The three order read models and their query API; every query reads one partition.

============== ====================================== ========================================
projection     rows (partition / key)                 query
============== ====================================== ========================================
order_summary  ``order#<id>`` / ``summary``: status,   :meth:`OrderViews.order`: one ``get``
               customer, lines, total, currency,
               version, placed and last-changed times
orders_by_     ``totals`` / ``<status>#<currency>``:   :meth:`OrderViews.totals`: one partition
status         ``orders`` count and ``total`` (added
               exactly); ``order#<id>`` / ``counted``:
               what the order counts for now
customer_      ``customer#<cid>`` / ``<placed at>#<id>``: :meth:`OrderViews.customer_orders`: one
orders         status, total, currency, times;        partition, newest first, a page at a time
               ``order#<id>`` / ``customer``: its key
============== ====================================== ========================================

Every row keyed by order carries, as its version, the last stream version of the order applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from orders.events import OrderEvent, OrderLinesChanged, OrderPlaced
from orders.values import PUBLIC_STATUS, OrderLines
from projections.generations import (
    live_generation,
    view_name,
    wait_for_notification,
    wait_for_order,
)
from projections.ports import Row, ViewStore
from projections.rows import Projection, RowKey, Rows


def order_partition(order_id: UUID) -> str:
    return f"order#{order_id}"


def timestamp(moment: datetime) -> str:
    """A UTC time as a fixed-width ISO string, so keys sort by time."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_lines(lines: OrderLines) -> list[dict[str, Any]]:
    return [
        {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price}
        for line in lines
    ]


class OrderSummaryProjection(Projection):
    """One row per order: what an order page shows."""

    name: ClassVar[str] = "order_summary"
    max_rows_per_event: ClassVar[int] = 1

    def order_row(self, order_id: UUID) -> RowKey:
        return order_partition(order_id), "summary"

    def apply(self, event: OrderEvent, rows: Rows) -> None:
        partition, key = self.order_row(event.originator_id)
        stored = rows.get(partition, key)
        data: dict[str, Any] = dict(stored.data) if stored else {}
        if isinstance(event, OrderPlaced):
            data["order_id"] = str(event.originator_id)
            data["placed_at"] = timestamp(event.timestamp)
        if isinstance(event, OrderPlaced | OrderLinesChanged):
            data["lines"] = encode_lines(event.lines)
        data.update(
            customer_id=event.customer_id,
            status=PUBLIC_STATUS[event.resulting_state],
            state=event.resulting_state,
            total=event.total,
            currency=event.currency,
            version=event.originator_version,
            changed_at=timestamp(event.timestamp),
        )
        rows.put(partition, key, data, event.originator_version)

    def forget(self, order_id: UUID, rows: Rows) -> None:
        rows.delete(*self.order_row(order_id))

    def partitions(self, event: OrderEvent) -> Iterable[str]:
        return (order_partition(event.originator_id),)


class OrdersByStatusProjection(Projection):
    """Counts and exact totals of orders per public status and currency."""

    name: ClassVar[str] = "orders_by_status"
    max_rows_per_event: ClassVar[int] = 3
    partition: ClassVar[str] = "totals"

    def order_row(self, order_id: UUID) -> RowKey:
        return order_partition(order_id), "counted"

    def apply(self, event: OrderEvent, rows: Rows) -> None:
        partition, key = self.order_row(event.originator_id)
        self._uncount(rows.get(partition, key), rows)
        status = PUBLIC_STATUS[event.resulting_state]
        self._count(status, event.currency, 1, event.total, rows)
        counted = {"status": status, "currency": event.currency, "total": event.total}
        rows.put(partition, key, counted, event.originator_version)

    def forget(self, order_id: UUID, rows: Rows) -> None:
        partition, key = self.order_row(order_id)
        self._uncount(rows.get(partition, key), rows)
        rows.delete(partition, key)

    def _uncount(self, counted: Row | None, rows: Rows) -> None:
        if counted is not None:
            data = counted.data
            self._count(data["status"], data["currency"], -1, -data["total"], rows)

    def _count(self, status: str, currency: str, orders: int, total: Decimal, rows: Rows) -> None:
        rows.add(
            self.partition,
            f"{status}#{currency}",
            {"orders": orders, "total": total},
            {"status": status, "currency": currency},
        )

    def partitions(self, event: OrderEvent) -> Iterable[str]:
        return (self.partition, order_partition(event.originator_id))


class CustomerOrdersProjection(Projection):
    """Each customer's orders, keyed by placement time so a query pages newest first."""

    name: ClassVar[str] = "customer_orders"
    max_rows_per_event: ClassVar[int] = 2

    def order_row(self, order_id: UUID) -> RowKey:
        return order_partition(order_id), "customer"

    def apply(self, event: OrderEvent, rows: Rows) -> None:
        partition, key = self.order_row(event.originator_id)
        index = rows.get(partition, key)
        customer = f"customer#{event.customer_id}"
        if index is None:
            entry_key = f"{timestamp(event.timestamp)}#{event.originator_id}"
            entry: dict[str, Any] = {
                "order_id": str(event.originator_id),
                "placed_at": timestamp(event.timestamp),
            }
        else:
            entry_key = index.data["key"]
            stored = rows.get(customer, entry_key)
            entry = dict(stored.data) if stored else {}
        entry.update(
            status=PUBLIC_STATUS[event.resulting_state],
            total=event.total,
            currency=event.currency,
            version=event.originator_version,
            changed_at=timestamp(event.timestamp),
        )
        rows.put(customer, entry_key, entry, event.originator_version)
        index_data = {"customer_id": event.customer_id, "key": entry_key}
        rows.put(partition, key, index_data, event.originator_version)

    def forget(self, order_id: UUID, rows: Rows) -> None:
        partition, key = self.order_row(order_id)
        index = rows.get(partition, key)
        if index is not None:
            rows.delete(f"customer#{index.data['customer_id']}", index.data["key"])
            rows.delete(partition, key)

    def partitions(self, event: OrderEvent) -> Iterable[str]:
        return (f"customer#{event.customer_id}", order_partition(event.originator_id))


PROJECTIONS: Mapping[str, Projection] = {
    projection.name: projection
    for projection in (
        OrderSummaryProjection(),
        OrdersByStatusProjection(),
        CustomerOrdersProjection(),
    )
}
"""Every order projection, by name."""


def projection_named(name: str) -> Projection:
    """The projection called ``name``; ``ValueError`` listing the names if there is none."""
    try:
        return PROJECTIONS[name]
    except KeyError:
        msg = f"no projection named {name!r}: choose one of {', '.join(PROJECTIONS)}"
        raise ValueError(msg) from None


@dataclass(frozen=True)
class StatusTotal:
    """How many orders are in ``status`` in ``currency``, and their exact ``total``."""

    status: str
    currency: str
    orders: int
    total: Decimal


@dataclass(frozen=True)
class CustomerOrder:
    """One order in a customer's list."""

    order_id: UUID
    status: str
    total: Decimal
    currency: str
    version: int
    placed_at: str
    changed_at: str


@dataclass(frozen=True)
class CustomerOrdersPage:
    """A page of a customer's orders, newest first; ``next`` continues it (``None``: the end).

    ``generation`` is the view generation read: ``next`` keeps reading that one.
    """

    orders: list[CustomerOrder]
    next: str | None
    generation: int


class OrderViews:
    """Queries of the three read models, each on their live generation.

    Each call resolves the live generation once and reads only it, so a result never mixes
    generations. ``wait_for_order`` gives read-your-writes after a command.
    """

    def __init__(self, store: ViewStore) -> None:
        self.store = store

    def _view(self, projection: str, generation: int | None = None) -> tuple[int, str]:
        generation = generation or live_generation(self.store, projection)
        return generation, view_name(projection, generation)

    def order(self, order_id: UUID) -> dict[str, Any] | None:
        """The order summary row's data, or None if the view has not seen the order."""
        projection = PROJECTIONS[OrderSummaryProjection.name]
        _, view = self._view(projection.name)
        row = self.store.get(view, *projection.order_row(order_id))
        return dict(row.data) if row else None

    def totals(self) -> tuple[int, list[StatusTotal]]:
        """The generation read and the count and total per status and currency (zero rows
        left out), by status then currency."""
        generation, view = self._view(OrdersByStatusProjection.name)
        rows = self.store.query(view, OrdersByStatusProjection.partition).rows
        totals = [
            StatusTotal(
                row.data["status"], row.data["currency"], row.data["orders"], row.data["total"]
            )
            for row in rows
            if row.data["orders"] != 0 or row.data["total"] != 0
        ]
        return generation, totals

    def customer_orders(
        self, customer_id: str, limit: int = 20, after: str | None = None
    ) -> CustomerOrdersPage:
        """A page of ``customer_id``'s orders, newest first; pass a page's ``next`` as
        ``after`` for the following one."""
        if limit < 1:
            msg = f"limit must be at least 1, not {limit}"
            raise ValueError(msg)
        generation: int | None = None
        start: str | None = None
        if after is not None:
            generation_text, _, start = after.partition(":")
            if not generation_text.isdigit() or not start:
                msg = f"not a page token of customer_orders: {after!r}"
                raise ValueError(msg)
            generation = int(generation_text)
        generation, view = self._view(CustomerOrdersProjection.name, generation)
        page = self.store.query(
            view, f"customer#{customer_id}", descending=True, limit=limit, after=start
        )
        orders = [
            CustomerOrder(
                order_id=UUID(row.data["order_id"]),
                status=row.data["status"],
                total=row.data["total"],
                currency=row.data["currency"],
                version=row.data["version"],
                placed_at=row.data["placed_at"],
                changed_at=row.data["changed_at"],
            )
            for row in page.rows
        ]
        token = f"{generation}:{page.next_key}" if page.next_key else None
        return CustomerOrdersPage(orders, token, generation)

    def wait_for_order(
        self,
        order_id: UUID,
        version: int,
        timeout: float = 5.0,
        projections: Iterable[str] = tuple(PROJECTIONS),
    ) -> None:
        """Wait until each of ``projections`` has applied ``order_id`` up to ``version``;
        :class:`~projections.runtime.NotCaughtUpError` past ``timeout``."""
        for name in projections:
            wait_for_order(self.store, projection_named(name), order_id, version, timeout=timeout)

    def wait_for_notification(
        self,
        notification_id: int,
        timeout: float = 5.0,
        projections: Iterable[str] = tuple(PROJECTIONS),
    ) -> None:
        """Wait until each of ``projections`` has processed ``notification_id`` (the ids a
        save returned); :class:`~projections.runtime.NotCaughtUpError` past ``timeout``."""
        for name in projections:
            wait_for_notification(self.store, projection_named(name).name, notification_id, timeout)
