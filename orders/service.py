"""``OrderService``: the application service that runs order commands against an event store.

It runs unchanged on any ``eventsourcing`` persistence module named by ``PERSISTENCE_MODULE``
(POPO by default, SQLite, DynamoDB). Settings, read from the application environment:

- ``ORDERS_SNAPSHOT_INTERVAL``: snapshot an order every N events (0 or absent: never);
- ``ORDERS_MAX_ATTEMPTS``: tries of a command that loses a concurrent save (default 5);
- ``ORDERS_RETRY_BACKOFF_SECONDS``: base of the jittered exponential pause between tries
  (default 0.01: the n-th pause is uniform in [0, min(cap, base * 2**(n-1))]);
- ``ORDERS_RETRY_BACKOFF_MAX_SECONDS``: that cap (default 0.2), so a command that keeps losing
  a hot order keeps trying at a steady pace instead of sleeping ever longer;
- ``AGGREGATE_CACHE_MAXSIZE`` (the library's): orders kept in memory, least recently used
  dropped (default 1000; 0 turns the cache off). Each saved order is put back into the
  cache as saved.

What the cache guarantees (see ``OrderService``): a command on a cached order decides on the
cached state and sends only its conditional write (one request); the write is conditioned
on the version decided on, so it is never committed over another writer's event: it fails,
and the service reloads and decides again. A refusal or a no-op decided on cached state is
confirmed by a consistent read of the events after it before it is answered. Queries
(``get_order``) always read the events after the cached version.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import CanMutateProtocol, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder, PersistenceError, Recording
from eventsourcing.utils import Environment, EnvType

from orders.aggregate import Order
from orders.audit import AuditEntry, audit_trail
from orders.errors import (
    OrderConflictError,
    OrderNotFoundError,
    OrderNotYetPlacedError,
    OrderQueryError,
    OrderRuleError,
)
from orders.events import OrderEvent, OrderPlaced
from orders.transcodings import register_order_transcodings
from orders.values import OrderLine, Trace

logger = logging.getLogger(__name__)

DEFAULT_CACHE_SIZE = "1000"


def _replay(order: Order | None, events: Iterable[DomainEventProtocol[UUID]]) -> Order | None:
    """The library's ``project_aggregate`` without its per-event check against a runtime
    protocol, which cost more than the rest of loading an event together."""
    for event in events:
        order = cast("CanMutateProtocol[Order]", event).mutate(order)  # Orders and snapshots.
    return order


class PlacedOrder(NamedTuple):
    """The id of a placed order and its version after the command."""

    order_id: UUID
    version: int


@dataclass(frozen=True)
class HistoryEntry:
    """One stored event of an order, for audit.

    ``details`` holds the fields particular to the type of event (for example the payment id).
    """

    version: int
    type_name: str
    timestamp: datetime
    correlation_id: str
    causation_id: str | None
    details: Mapping[str, object]

    @classmethod
    def of(cls, event: OrderEvent) -> HistoryEntry:
        """The entry describing ``event``."""
        return cls(
            version=event.originator_version,
            type_name=event.type_name,
            timestamp=event.timestamp,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
            details=event.details(),
        )


class OrderService(Application[UUID]):
    """Runs the commands of the order life cycle and answers questions about orders.

    Every command loads the order, lets the aggregate decide, and saves the resulting events in
    one atomic write that fails if the order moved past the version decided on. It then
    reloads and decides again, up to ``max_attempts`` tries, before raising
    ``OrderConflictError``. Each command returns the order's version after it; a command that
    changed nothing returns the version unchanged. Every event carries the command's
    correlation id (generated when not given) and causation id.

    An order in this process's cache is not read before deciding: the conditional write is the
    check. What is answered without a write (a refusal, a no-op) is answered only from state
    read from the store during the command: decided on cached state, it is decided again after
    a consistent read of the events after the cached version (one request, usually empty).
    """

    SNAPSHOT_INTERVAL = "ORDERS_SNAPSHOT_INTERVAL"
    MAX_ATTEMPTS = "ORDERS_MAX_ATTEMPTS"
    RETRY_BACKOFF_SECONDS = "ORDERS_RETRY_BACKOFF_SECONDS"
    RETRY_BACKOFF_MAX_SECONDS = "ORDERS_RETRY_BACKOFF_MAX_SECONDS"

    def __init__(self, env: EnvType | None = None) -> None:
        super().__init__(env)
        # Snapshots are taken by the service from the order it just saved (see _snapshot_if_due),
        # not by the library, which would read the order back from the store to take them.
        self.snapshot_interval = int(self.env.get(self.SNAPSHOT_INTERVAL) or 0)
        self.max_attempts = int(self.env.get(self.MAX_ATTEMPTS) or 5)
        if self.max_attempts < 1:
            msg = f"{self.MAX_ATTEMPTS} must be at least 1, not {self.max_attempts}"
            raise ValueError(msg)
        self.retry_backoff_seconds = float(self.env.get(self.RETRY_BACKOFF_SECONDS) or 0.01)
        self.retry_backoff_max_seconds = float(self.env.get(self.RETRY_BACKOFF_MAX_SECONDS) or 0.2)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """The library's environment, with snapshotting on when an interval is set and the
        aggregate cache on (fast-forwarded on every load) unless its size is set."""
        environment = super().construct_env(name, env)
        if int(environment.get(self.SNAPSHOT_INTERVAL) or 0) > 0:
            environment["IS_SNAPSHOTTING_ENABLED"] = "y"
        if not environment.get(self.AGGREGATE_CACHE_MAXSIZE):
            environment[self.AGGREGATE_CACHE_MAXSIZE] = DEFAULT_CACHE_SIZE
        if environment[self.AGGREGATE_CACHE_MAXSIZE] == "0":
            del environment[self.AGGREGATE_CACHE_MAXSIZE]
        # The service brings cached orders up to date itself where an answer needs it
        # (_current); without the library's fast-forward, the library puts each saved order
        # back into the cache, and never mutates a cached order in place.
        environment[self.AGGREGATE_CACHE_FASTFORWARD] = "n"
        return environment

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """The library's transcodings and those of the order value objects."""
        super().register_transcodings(transcoder)
        register_order_transcodings(transcoder)

    def place_order(
        self,
        customer_id: str,
        lines: Sequence[OrderLine],
        currency: str,
        *,
        order_id: UUID | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> PlacedOrder:
        """Place a new order, under ``order_id`` if given (else a new id).

        ``order_id`` is the idempotency key: a caller that may send the command again after an
        unknown outcome (a timeout) chooses it up front and sends the same one every time. If
        ``order_id`` was already placed with the same customer, lines and currency, this is a
        repeat: nothing is recorded and the order's current version is returned. Placed with
        other content: ``OrderRuleError("order-id-taken")``.
        """
        trace = Trace.of(correlation_id, causation_id)
        placement_id = order_id or uuid4()

        def decide() -> Order:
            # Placing checks every rule, so a refused order is refused before any read.
            new_order = Order.place(
                customer_id, lines, currency, order_id=placement_id, trace=trace
            )
            if order_id is None:  # A fresh random id: nothing to look up, so no read.
                return new_order
            try:
                existing = self._events_of(placement_id, limit=1)[0]
            except OrderNotFoundError:
                return new_order
            if not _same_placement(existing, new_order):
                raise OrderRuleError(
                    "order-id-taken",
                    f"order {placement_id} was already placed with other content",
                )
            return self.get_order(placement_id)

        # Every placement is decided on what the store says (or on a fresh random id).
        version = self._decide_and_save(placement_id, lambda _: (decide(), True), _unchanged)
        return PlacedOrder(placement_id, version)

    def change_lines(
        self,
        order_id: UUID,
        lines: Sequence[OrderLine],
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> int:
        """Replace the lines of a pending order; see ``Order.change_lines``."""
        trace = Trace.of(correlation_id, causation_id)
        return self._run(order_id, lambda order: order.change_lines(lines, trace=trace))

    def confirm_payment(
        self,
        order_id: UUID,
        payment_id: str,
        amount: Decimal,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> int:
        """Record a payment of exactly the order total; see ``Order.confirm_payment``."""
        trace = Trace.of(correlation_id, causation_id)
        return self._run(
            order_id, lambda order: order.confirm_payment(payment_id, amount, trace=trace)
        )

    def payment_failed(
        self,
        order_id: UUID,
        payment_id: str,
        reason: str,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> int:
        """Record that a payment failed (cancels a pending order); see ``Order.payment_failed``."""
        trace = Trace.of(correlation_id, causation_id)
        return self._run(
            order_id, lambda order: order.payment_failed(payment_id, reason, trace=trace)
        )

    def ship(
        self,
        order_id: UUID,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> int:
        """Ship a paid order; see ``Order.ship``."""
        trace = Trace.of(correlation_id, causation_id)
        return self._run(order_id, lambda order: order.ship(trace=trace))

    def complete(
        self,
        order_id: UUID,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> int:
        """Complete a shipped order; see ``Order.complete``."""
        trace = Trace.of(correlation_id, causation_id)
        return self._run(order_id, lambda order: order.complete(trace=trace))

    def cancel(
        self,
        order_id: UUID,
        reason: str,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> int:
        """Cancel an order that has not shipped; see ``Order.cancel``."""
        trace = Trace.of(correlation_id, causation_id)
        return self._run(order_id, lambda order: order.cancel(reason, trace=trace))

    def get_order(
        self,
        order_id: UUID | str,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
    ) -> Order:
        """The order as it is now, or after event ``version``, or as it stood at time ``as_of``.

        ``order_id`` is a ``UUID`` or its text (anything else: ``TypeError`` naming the type).
        Versions start at 1 (the placing); one beyond the last gives the latest state.
        ``as_of`` must be timezone-aware. A naive ``as_of``, ``version`` with ``as_of`` or a
        version below 1 raise ``OrderQueryError``; ``OrderNotYetPlacedError`` if the order was
        placed after ``as_of``; ``OrderNotFoundError`` if it was never placed.
        """
        order_id = _order_id(order_id)
        if as_of is not None:
            if version is not None:
                msg = "give version or as_of, not both"
                raise OrderQueryError(msg)
            version = self._version_at(order_id, as_of)
        elif version is not None and version < 1:
            msg = (
                f"version {version} of order {order_id} is before its first event: "
                "versions start at 1 (the order as placed)"
            )
            raise OrderQueryError(msg)
        elif version is None:
            return self._current(order_id, confirm=True)[0]
        try:
            order: Order = self.repository.get(order_id, version=version, projector_func=_replay)
        except AggregateNotFoundError:
            raise OrderNotFoundError(order_id) from None
        return order

    def _current(self, order_id: UUID, *, confirm: bool) -> tuple[Order, bool]:
        """A copy of the order to decide on, and whether it was read from the store now.

        Not cached: loaded from the store (snapshot and events) and cached. Cached: the cached
        state, brought up to date by a consistent read of the events after it if ``confirm``.
        """
        cache = self.repository.cache
        try:
            if cache is None:
                raise KeyError(order_id)
            order = cast("Order", deepcopy(cache.get(order_id)))
        except KeyError:
            try:
                # The library's load of snapshot and events, without its cache.
                loaded: Order = self.repository._reconstruct_aggregate(order_id, None, _replay)
            except AggregateNotFoundError:
                raise OrderNotFoundError(order_id) from None
            if cache is not None:
                cache.put(order_id, deepcopy(loaded))
            return loaded, True
        if not confirm:
            return order, False
        newer = list(self.events.get(order_id, gt=order.version))
        if newer:
            order = cast("Order", _replay(order, newer))
            if cache is not None:
                cache.put(order_id, deepcopy(order))
        return order, True

    def history(self, order_id: UUID | str) -> list[HistoryEntry]:
        """Every stored event of the order, oldest first, upcast to the current event versions.

        Raises ``OrderNotFoundError`` for an unknown order.
        """
        return [HistoryEntry.of(event) for event in self._events_of(_order_id(order_id))]

    def audit(self, order_id: UUID | str) -> list[AuditEntry]:
        """Every stored event of the order, oldest first, with its payload and what it changed.

        One read of the order's events (no per-version loads). Raises ``OrderNotFoundError``
        for an unknown order. See ``orders.audit``.
        """
        return audit_trail(self._events_of(_order_id(order_id)))

    def _events_of(self, order_id: UUID, *, limit: int | None = None) -> list[OrderEvent]:
        events = [
            event
            for event in self.events.get(order_id, limit=limit)
            if isinstance(event, OrderEvent)
        ]
        if not events:
            raise OrderNotFoundError(order_id)
        return events

    def _version_at(self, order_id: UUID, as_of: datetime) -> int:
        if as_of.utcoffset() is None:
            msg = f"as_of must be timezone-aware (add a UTC offset), not {as_of.isoformat()}"
            raise OrderQueryError(msg)
        events = self._events_of(order_id)
        versions = [event.originator_version for event in events if event.timestamp <= as_of]
        if not versions:
            raise OrderNotYetPlacedError(order_id, as_of, events[0].timestamp)
        return versions[-1]

    def _run(self, order_id: UUID, command: Callable[[Order], None]) -> int:
        return self._decide_and_save(
            order_id, lambda confirm: self._current(order_id, confirm=confirm), command
        )

    def _decide_and_save(
        self,
        order_id: UUID,
        load: Callable[[bool], tuple[Order, bool]],
        command: Callable[[Order], None],
    ) -> int:
        """Run ``command`` on the order ``load`` gives and save what it decided; the version.

        ``load(confirm)`` returns the order and whether it was read from the store now; with
        ``confirm`` it must be. A refusal or a no-op is answered only on such state, so one
        decided on cached state is decided again on confirmed state. A conflicting save is
        decided again on confirmed state, up to ``max_attempts`` saves.
        """
        expected_version: int | None = None
        actual_version: int | None = None
        confirm = False
        attempt = 1
        while True:
            order, confirmed = load(confirm)
            try:
                command(order)
            except OrderRuleError:
                if confirmed:
                    raise
                confirm = True
                continue
            if not order.pending_events:
                if confirmed:
                    return order.version
                confirm = True
                continue
            expected_version = order.version - len(order.pending_events) or None
            try:
                self.save(order)
            except IntegrityError as error:
                actual_version = _version_found(error)
                if actual_version is None:
                    actual_version = self._stored_version(order_id)
                if actual_version is None or actual_version <= (expected_version or 0):
                    raise  # The order did not move: not a lost race, so not retried.
                if attempt >= self.max_attempts:
                    break
                time.sleep(random.uniform(0, self._backoff_ceiling(attempt)))
                attempt += 1
                confirm = True
            else:
                return order.version
        raise OrderConflictError(order_id, expected_version, actual_version, self.max_attempts)

    def _backoff_ceiling(self, attempt: int) -> float:
        return min(
            self.retry_backoff_max_seconds, self.retry_backoff_seconds * 2.0 ** (attempt - 1)
        )

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """The library's save, then a snapshot of each saved order that is due one."""
        saved_orders = [
            (o, o.version - len(o.pending_events)) for o in objs if isinstance(o, Order)
        ]
        recordings = super().save(*objs, **kwargs)
        for order, previous_version in saved_orders:
            self._snapshot_if_due(order, previous_version)
        return recordings

    def _snapshot_if_due(self, order: Order, previous_version: int) -> None:
        """Snapshot ``order``, just saved, if its save reached a multiple of the interval.

        The snapshot is of the order in memory, which is what was stored, so nothing is read
        back. The events are committed already, so a snapshot that cannot be stored is logged
        and left out (later loads replay a little more); it never fails the command.
        """
        interval = self.snapshot_interval
        if interval <= 0 or self.snapshots is None:
            return
        if order.version // interval == previous_version // interval:
            return
        try:
            self.snapshots.put([Order.Snapshot.take(order)])
        except PersistenceError:
            logger.warning(
                "snapshot of order %s at version %s not stored",
                order.id,
                order.version,
                exc_info=True,
            )

    def _stored_version(self, order_id: UUID) -> int | None:
        last = list(self.events.get(order_id, desc=True, limit=1))
        return last[0].originator_version if last else None


def _order_id(value: object) -> UUID:
    """``value`` as an order id: a ``UUID``, or a ``str`` that is one (else ``OrderQueryError``);
    any other type is a ``TypeError`` naming it."""
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        msg = f"order_id must be a UUID or a str, not {type(value).__name__}"
        raise TypeError(msg)
    try:
        return UUID(value)
    except ValueError:
        raise OrderQueryError(f"order_id {value!r} is not a uuid") from None


def _version_found(error: IntegrityError) -> int | None:
    """The version a store's conflict error says it found (its ``actual_version``, as the
    DynamoDB store's ``StreamConflictError`` has), or None if it does not say."""
    found = getattr(error, "actual_version", None)
    return found if isinstance(found, int) else None


def _unchanged(order: Order) -> None:
    """The command of a placement: the order was decided when it was made."""


def _same_placement(stored: OrderEvent, new_order: Order) -> bool:
    """Whether ``stored`` placed the same customer, lines and currency as ``new_order``."""
    return isinstance(stored, OrderPlaced) and (
        stored.customer_id,
        stored.currency,
        stored.lines,
    ) == (new_order.customer_id, new_order.currency, new_order.lines)
