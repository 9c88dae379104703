"""Downstream read models fed by at-least-once, unordered delivery (SQS, the local bus).

:class:`DownstreamProjection` is a handler (a function of one validated order envelope). It keeps,
per order, a *tracker* row: the facts the views need (:class:`OrderFacts`) and, as the row's
version, the last stream version applied. An envelope at or below it is a duplicate and is
skipped. One more than it is applied. Further ahead is a gap: :class:`GapError` fails the message
for a later retry (by then the missing ones have usually arrived), unless the store is read.

Nothing unverified changes a view. The contract admits order envelopes only from
``order-service``. Given a ``store_events`` reader (:func:`store_reader`), every envelope is
checked against the event the store holds at its stream version before anything is written, and
what is applied is the store's own events (a gap's too): an order the store does not hold (a
ghost), a version it does not hold (a forged next version), another event id at that version (a
forged id) or other content under the same id (a changed payload, also for a duplicate, which is
logged as an error) raises :class:`ForgedEnvelopeError` naming which, and nothing is written.
Without a reader, the source, the contract and the version order are all that is checked: a
forged envelope that is the next version of its order is applied as if it were true, and a
changed duplicate is skipped as a duplicate without being noticed.

The views (each a generation-named view of the store, queried by :class:`DownstreamQueries`):

- ``downstream_customer_orders``: a customer's orders, newest first (status, amount,
  currency, version);
- ``downstream_customer_value``: a customer's lifetime value per currency: the orders paid
  and not cancelled (status ``processing`` or ``completed``), their count and total;
- ``downstream_daily_sales``: per currency and UTC day of payment, the orders paid that day
  and not cancelled since, their count and total;
- ``downstream_orders_by_status``: per status and UTC day of placing, the orders, for
  back-office search.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from orders import OrderEvent, OrderService
from projections.ports import Add, Change, Delete, Page, Put, Row, RowConflictError, ViewStore
from schemas.contract import Envelope
from schemas.mapping import to_envelope

logger = logging.getLogger(__name__)

# Prefixed: they share a view store with the order projections (whose names they echo), and
# a rebuild of a projection drops that projection's old generations by name.
TRACKER_VIEW = "downstream_tracker@1"
CUSTOMER_ORDERS = "downstream_customer_orders@1"
CUSTOMER_VALUE = "downstream_customer_value@1"
DAILY_SALES = "downstream_daily_sales@1"
ORDERS_BY_STATUS = "downstream_orders_by_status@1"
PAID = frozenset({"processing", "completed"})

RowKey = tuple[str, str, str]
StoreEvents = Callable[[UUID, int, int], Sequence[Envelope]]
"""``(order_id, first, last)`` -> the envelopes of the stored events of versions ``first..last``,
in order (fewer, or none, where the store holds fewer)."""


class ForgedEnvelopeError(ValueError):
    """An envelope that disagrees with the event store; no retry can make it true. ``reason``
    says how (ghost order, forged version, forged id, changed payload); nothing was written."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GapError(RuntimeError):
    """An envelope is ahead of the last version applied to its order; nothing was written."""

    def __init__(self, order_id: UUID, applied: int, received: int) -> None:
        super().__init__(
            f"order {order_id}: version {received} received but only {applied} applied; "
            f"waiting for {applied + 1}..{received - 1} (retry later)"
        )
        self.order_id = order_id
        self.applied = applied
        self.received = received


@dataclass(frozen=True)
class OrderFacts:
    """What the downstream views know of one order after the last event applied."""

    order_id: str
    version: int
    customer_id: str
    status: str
    amount: Decimal
    currency: str
    placed_at: str
    paid_on: str | None

    @property
    def placed_on(self) -> str:
        return self.placed_at[:10]

    def fold(self, envelope: Envelope) -> OrderFacts:
        """The facts after ``envelope``, the next event of this order."""
        detail = envelope.detail
        return replace(
            self,
            version=detail.stream_version,
            status=detail.status,
            amount=detail.amount,
            currency=detail.currency,
            paid_on=_day(envelope) if envelope.detail_type == "PaymentConfirmed" else self.paid_on,
        )

    @classmethod
    def placed(cls, envelope: Envelope) -> OrderFacts:
        """The facts of an order after its first event."""
        detail = envelope.detail
        return cls(
            order_id=str(detail.order_id),
            version=detail.stream_version,
            customer_id=detail.customer_id,
            status=detail.status,
            amount=detail.amount,
            currency=detail.currency,
            placed_at=envelope.time.astimezone(UTC).isoformat(),
            paid_on=None,
        )


def _day(envelope: Envelope) -> str:
    return envelope.time.astimezone(UTC).date().isoformat()


def owned_rows(facts: OrderFacts) -> dict[RowKey, dict[str, Any]]:
    """The rows an order owns in the views, by address."""
    listed = f"{facts.placed_at}#{facts.order_id}"
    summary = {
        "orderId": facts.order_id,
        "customerId": facts.customer_id,
        "status": facts.status,
        "amount": facts.amount,
        "currency": facts.currency,
        "placedAt": facts.placed_at,
        "version": facts.version,
    }
    return {
        (CUSTOMER_ORDERS, facts.customer_id, listed): summary,
        (ORDERS_BY_STATUS, f"{facts.status}#{facts.placed_on}", listed): summary,
    }


def contributions(facts: OrderFacts) -> dict[RowKey, dict[str, int | Decimal]]:
    """What an order adds to shared counter rows, by address."""
    if facts.status not in PAID or facts.paid_on is None:
        return {}
    counted: dict[str, int | Decimal] = {"orders": 1, "amount": facts.amount}
    return {
        (CUSTOMER_VALUE, facts.customer_id, facts.currency): counted,
        (DAILY_SALES, facts.currency, facts.paid_on): counted,
    }


def changes_between(old: OrderFacts | None, new: OrderFacts) -> list[Change]:
    """The view changes that move one order's rows and contributions from ``old`` to ``new``."""
    old_rows = owned_rows(old) if old else {}
    new_rows = owned_rows(new)
    changes: list[Change] = [Delete(*address) for address in old_rows if address not in new_rows]
    changes += [
        Put(Row(*address, data=data, version=new.version))
        for address, data in new_rows.items()
        if old_rows.get(address) != data
    ]
    old_counts = contributions(old) if old else {}
    new_counts = contributions(new)
    for address in sorted(old_counts.keys() | new_counts.keys()):
        before, after = old_counts.get(address, {}), new_counts.get(address, {})
        deltas = {
            name: after.get(name, 0) - before.get(name, 0) for name in before.keys() | after.keys()
        }
        if any(deltas.values()):
            changes.append(Add(*address, deltas=deltas))
    return changes


class DownstreamProjection:
    """The handler that keeps the downstream views; see the module docstring.

    ``store_events`` reads an order's events from the event store (see :func:`store_reader`):
    given, every envelope is verified against it and a gap is filled from it; without it a gap
    raises :class:`GapError`. ``attempts`` bounds the re-decisions after losing a race with a
    concurrent worker on the same order.
    """

    def __init__(
        self,
        store: ViewStore,
        store_events: StoreEvents | None = None,
        attempts: int = 5,
    ) -> None:
        self.store = store
        self.store_events = store_events
        self.attempts = attempts

    def __call__(self, envelope: Envelope) -> None:
        """Apply ``envelope`` once, in its order's version order (or skip or fail it)."""
        for attempt in range(1, self.attempts + 1):
            try:
                self._apply(envelope)
            except RowConflictError:
                if attempt == self.attempts:
                    raise
            else:
                return

    def _apply(self, envelope: Envelope) -> None:
        order_id = envelope.detail.order_id
        received = envelope.detail.stream_version
        tracker = self.store.get(TRACKER_VIEW, str(order_id), "")
        applied = tracker.version if tracker else 0
        if self.store_events is not None:
            pending = self._verified(envelope, applied)
        elif received > applied + 1:
            raise GapError(order_id, applied, received)
        else:
            pending = [envelope] if received > applied else []
        if not pending:
            logger.debug("order %s version %s: duplicate, skipped", order_id, received)
            return
        old = _facts(tracker.data) if tracker else None
        new = old
        for event in pending:
            new = new.fold(event) if new else OrderFacts.placed(event)
        assert new is not None
        changes = changes_between(old, new)
        changes.append(
            Put(
                Row(TRACKER_VIEW, str(order_id), "", asdict(new), version=new.version),
                expected_version=applied,
            )
        )
        self.store.commit(changes)

    def _verified(self, envelope: Envelope, applied: int) -> Sequence[Envelope]:
        """The stored events to apply for ``envelope`` (none for a true duplicate), once it
        agrees with the store; else :class:`ForgedEnvelopeError`."""
        assert self.store_events is not None
        order_id, received = envelope.detail.order_id, envelope.detail.stream_version
        first = applied + 1 if received > applied else received
        stored = self.store_events(order_id, first, received)
        truth = stored[-1] if stored else None
        if truth is None or truth.detail.stream_version != received:
            if applied == 0 and not stored:  # Versions 1..received: the order has none.
                msg = (
                    f"ghost order: the event store holds no order {order_id} (event {envelope.id})"
                )
                raise ForgedEnvelopeError(msg)
            msg = (
                f"forged version: the event store holds no version {received} of order "
                f"{order_id} (event {envelope.id})"
            )
            raise ForgedEnvelopeError(msg)
        if truth.id != envelope.id:
            msg = (
                f"forged id: event {envelope.id} is not the stored event {truth.id} at version "
                f"{received} of order {order_id}"
            )
            raise ForgedEnvelopeError(msg)
        if truth != envelope:
            msg = (
                f"changed payload: event {envelope.id} (version {received} of order {order_id}) "
                f"differs from the stored event in {', '.join(_differences(truth, envelope))}"
            )
            if received <= applied:
                logger.error("duplicate with other content, not applied: %s", msg)
            raise ForgedEnvelopeError(msg)
        if received <= applied:
            return ()
        versions = [event.detail.stream_version for event in stored]
        if versions != list(range(applied + 1, received + 1)):
            raise GapError(order_id, applied, received)
        return stored


def _differences(truth: Envelope, received: Envelope) -> list[str]:
    """The fields (``detail.<name>`` for the detail's) in which ``received`` differs."""
    expected = truth.model_dump()
    got = received.model_dump()
    fields = [name for name in expected if name != "detail" and expected[name] != got.get(name)]
    detail, other = expected["detail"], got["detail"]
    fields += [f"detail.{name}" for name in detail if detail[name] != other.get(name)]
    return fields or ["its type"]


def _facts(data: Mapping[str, Any]) -> OrderFacts:
    return OrderFacts(**data)


def store_reader(service: OrderService) -> StoreEvents:
    """A ``store_events`` reader of the order's stream in ``service``'s event store."""

    def read(order_id: UUID, first: int, last: int) -> list[Envelope]:
        events = service.events.get(order_id, gt=first - 1, lte=last)
        return [to_envelope(event) for event in events if isinstance(event, OrderEvent)]

    return read


@dataclass(frozen=True)
class Totals:
    """A count of orders and their total, in one currency."""

    orders: int
    amount: Decimal


class DownstreamQueries:
    """The query API of the downstream views: each reads one partition, never the whole store."""

    def __init__(self, store: ViewStore) -> None:
        self.store = store

    def customer_orders(
        self, customer_id: str, *, limit: int = 20, after: str | None = None
    ) -> Page:
        """A customer's orders, newest first, a page at a time (``after``: a page's next_key)."""
        return self.store.query(
            CUSTOMER_ORDERS, customer_id, descending=True, limit=limit, after=after
        )

    def lifetime_value(self, customer_id: str) -> dict[str, Totals]:
        """A customer's paid, not cancelled orders: count and total per currency."""
        return {
            row.key: Totals(row.data["orders"], row.data["amount"])
            for row in _all(self.store, CUSTOMER_VALUE, customer_id)
            if row.data["orders"]
        }

    def daily_sales(
        self, currency: str, first: date | None = None, last: date | None = None
    ) -> dict[date, Totals]:
        """Orders paid per UTC day in ``currency`` (and not cancelled since), oldest first."""
        after = (first - timedelta(days=1)).isoformat() if first else None
        sales: dict[date, Totals] = {}
        for row in _all(self.store, DAILY_SALES, currency, after=after):
            day = date.fromisoformat(row.key)
            if last is not None and day > last:
                break
            if row.data["orders"]:
                sales[day] = Totals(row.data["orders"], row.data["amount"])
        return sales

    def orders_by_status(
        self, status: str, day: date, *, limit: int = 50, after: str | None = None
    ) -> Page:
        """Orders now in ``status`` that were placed on UTC ``day``, in order of placing."""
        return self.store.query(
            ORDERS_BY_STATUS, f"{status}#{day.isoformat()}", limit=limit, after=after
        )


def _all(store: ViewStore, view: str, partition: str, after: str | None = None) -> Iterable[Row]:
    while True:
        page = store.query(view, partition, after=after, limit=100)
        yield from page.rows
        if page.next_key is None:
            return
        after = page.next_key
