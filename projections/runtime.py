"""The runner that feeds a projection from the notification log.

A :class:`Runner` follows an application's notification log (only through the library's
recorder interface: ``select_notifications`` and ``max_notification_id``) from the position
tracked in the view store, and commits each batch's changes together with the new position in
one :meth:`~projections.ports.ViewStore.commit`, so:

- a restart resumes from the tracked position: nothing skipped, nothing applied twice;
- of two runners of one generation, only one advances it; the other's batch fails whole with
  ``PositionConflictError``, and it carries on from the position the winner recorded;
- every row written is conditioned on the version it was read at, and every commit expects the
  view's repair revision (:func:`~projections.generations.revision_pointer`) as read before the
  batch's rows, which a repair (``orders projections rebuild NAME --order ID``) bumps: a batch
  read before a repair fails whole rather than writing stale data (or counting stale totals);
  the runner reads again and redoes it;
- a runner following the live generation expects ``name.live`` unchanged in every commit, so
  no batch lands in a generation readers were switched away from; a dropped generation's
  position is a tombstone (:data:`~projections.generations.DROPPED`) no advance starts from;
- one bad order never stalls everyone: an event the projection raises on (or cannot decode),
  or whose rows the store refuses as data, parks its order (:mod:`projections.parking`, rows
  of the same view): it and the order's later events wait there, in order, written in the same
  commit as the position that passes them, while every other order is projected.
  :meth:`Runner.settle` applies an operator's retry (the parked events applied once, in order,
  in one commit with the release) or skip.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from eventsourcing.persistence import ApplicationRecorder, Notification

from orders.events import OrderEvent
from projections.generations import DROPPED, live_pointer, revision_pointer, view_name
from projections.parking import (
    PARKED,
    ParkedOrder,
    Request,
    Unhandled,
    ViewParking,
    parked_from_row,
    parked_row_data,
    refused_rows,
    retry,
)
from projections.ports import (
    Advance,
    Expect,
    PositionConflictError,
    Put,
    RowConflictError,
    ViewStore,
    ViewStoreError,
)
from projections.readahead import ReadAhead
from projections.rows import Projection, RowCache, Rows

logger = logging.getLogger(__name__)

Decode = Callable[[Notification], object]
"""Turns a notification into a domain event (``OrderService(...).mapper.to_domain_event``)."""

MAX_ROW_CONFLICTS = 3
"""A batch failing its row conditions this many times in a row stops the runner."""


@dataclass(frozen=True)
class Progress:
    """Where a runner is: ``position`` in the log of ``head``, ``applied`` notifications
    processed by this runner so far, ``generation`` it writes."""

    generation: int
    position: int
    head: int
    applied: int


class RunnerStoppedError(Exception):
    """A runner gave up: a batch kept failing its row conditions (see the message)."""


class Runner:
    """Feeds ``projection`` from ``recorder``'s notification log into ``store``.

    ``generation`` fixes the generation written (a rebuild); ``None`` follows the live one,
    re-reading ``projection.live`` each batch. ``batch_size`` notifications are read per
    ``select_notifications``; a commit holds as many as keep it within the store's limit.
    ``max_rate`` bounds the notifications processed per second (``None``: no bound).
    ``cache`` keeps the rows written across batches (a rebuild); without one, each batch reads
    the rows it needs (a live view that others may repair). After a full read, the next one
    runs in a thread of its own while this batch is applied and committed.
    """

    def __init__(
        self,
        projection: Projection,
        store: ViewStore,
        recorder: ApplicationRecorder,
        decode: Decode,
        *,
        generation: int | None = None,
        batch_size: int = 500,
        max_rate: float | None = None,
        cache: RowCache | None = None,
        conflict_pause: float = 0.2,
        generation_check: float = 1.0,
    ) -> None:
        if batch_size < 1:
            msg = f"batch_size must be at least 1, not {batch_size}"
            raise ValueError(msg)
        if max_rate is not None and max_rate <= 0:
            msg = f"max_rate must be positive, not {max_rate}"
            raise ValueError(msg)
        self.projection = projection
        self.store = store
        self.recorder = recorder
        self.decode = decode
        self.fixed_generation = generation
        self.batch_size = batch_size
        self.max_rate = max_rate
        self.cache = cache
        self.conflict_pause = conflict_pause
        self.applied = 0
        self.conflicts = 0
        self._rate_started: float | None = None
        self._rate_applied = 0
        self._cache_generation = generation
        self.generation_check = generation_check
        self._live: tuple[int | None, float] | None = None  # name.live as read, and when
        self._revision: tuple[str, int | None] | None = None
        self._position: tuple[str, int | None] | None = None
        self._ahead = ReadAhead(recorder, batch_size)
        self._parked: tuple[str, set[str]] | None = None
        self._to_park: dict[str, str] = {}
        self._one_by_one = False

    @property
    def generation(self) -> int:
        """The generation this runner writes now (the live one is re-read at most every
        ``generation_check`` seconds)."""
        if self.fixed_generation is not None:
            return self.fixed_generation
        now = time.monotonic()
        if self._live is None or now - self._live[1] >= self.generation_check:
            self._live = (self.store.position(live_pointer(self.projection.name)), now)
        return self._live[0] or 1

    def _expectations(self, view: str) -> list[Expect]:
        """What this runner's commits to ``view`` expect: the view's repair revision as read
        now (or before), and, when following the live generation, ``name.live`` as read."""
        if self._revision is None or self._revision[0] != view:
            self._revision = (view, self.store.position(revision_pointer(view)))
        expected = [Expect(revision_pointer(view), self._revision[1])]
        if self.fixed_generation is None and self._live is not None:
            expected.append(Expect(live_pointer(self.projection.name), self._live[0]))
        return expected

    @property
    def view(self) -> str:
        """The view this runner writes now."""
        return view_name(self.projection.name, self.generation)

    def parking(self) -> ViewParking:
        """The parked orders of the generation this runner writes now."""
        return ViewParking(self.store, self.view)

    def _tracked(self, view: str) -> int | None:
        """The position of ``view``: as this runner last committed it, else as stored (a
        position moved by another runner makes the next commit fail, then it is read again)."""
        if self._position is None or self._position[0] != view:
            self._position = (view, self.store.position(view))
        return self._position[1]

    def _parked_orders(self, view: str) -> set[str]:
        """The orders parked in ``view`` as last read (a hint: the parked row, read in the
        batch, is the truth), read once per view and after a lost race."""
        if self._parked is None or self._parked[0] != view:
            self._parked = (view, {p.order_id for p in ViewParking(self.store, view).parked()})
            self._to_park.clear()
        return self._parked[1]

    def progress(self) -> Progress:
        generation = self.generation
        position = self.store.position(view_name(self.projection.name, generation)) or 0
        head = self.recorder.max_notification_id() or 0
        return Progress(generation, position, head, self.applied)

    def run_once(self, until: int | None = None) -> int:
        """Process one read of the log (at most ``batch_size`` notifications, none past
        ``until``); the number of notifications processed (0: nothing new)."""
        generation = self.generation
        view = view_name(self.projection.name, generation)
        if self.cache is not None and self._cache_generation != generation:
            self.cache.clear()  # the live generation changed: its rows are not those cached
            self._cache_generation = generation
        position = self._tracked(view)
        if position == DROPPED:
            self._left_dropped(view)
            return 0
        start = (position or 0) + 1
        if until is not None and start > until:
            return 0
        expect = self._expectations(view)
        notifications = self._ahead.read(view, start, until)
        conflicts = 0
        while notifications:
            try:
                applied = self._apply(view, position, notifications, expect)
            except PositionConflictError as conflict:
                self._parked = None
                self._position_moved(view, conflict)
                return 0
            except RowConflictError as conflict:
                self.conflicts += 1
                conflicts += 1
                if conflicts == MAX_ROW_CONFLICTS:
                    msg = f"{view}: a batch failed its row conditions 3 times in a row; giving up"
                    raise RunnerStoppedError(msg) from None
                self._position = None
                if self.cache is not None:
                    self.cache.clear()
                logger.info("%s; reading the rows again (try %d)", conflict, conflicts)
                self._revision = None  # a repair may have changed them: expect its revision
                expect = self._expectations(view)
            except Unhandled as bad:
                self._to_park[bad.order] = bad.reason
                logger.error("%s: parking order %s: %s", view, bad.order, bad.reason)
            except _DataError:
                self._one_by_one = True  # find the event whose rows the store refuses
            else:
                self._one_by_one = False
                self._ahead.committed(notifications, (position or 0) + applied)
                return applied
            position = self._tracked(view)
            notifications = [n for n in notifications if n.id > (position or 0)]
        return 0

    def _left_dropped(self, view: str) -> None:
        """``view``'s generation was dropped: follow the live one (or stop, if fixed)."""
        if self.fixed_generation is not None:
            msg = f"{view} was dropped (a rebuild retired it): nothing to write"
            raise RunnerStoppedError(msg)
        self._live = None
        self.conflicts += 1

    def _position_moved(self, view: str, conflict: PositionConflictError) -> None:
        """A commit found a position moved: ``view``'s own (another runner advanced it: pause
        with jitter, then follow from there), or one it expected (a switch or a repair since
        the batch was read: read them again)."""
        self.conflicts += 1
        self._position = None
        if self.cache is not None:
            self.cache.clear()
        if conflict.name == view:
            logger.warning("%s: following from there", conflict)
            time.sleep(random.uniform(0, self.conflict_pause))
        else:
            logger.info("%s; reading again", conflict)
            self._live = self._revision = None

    def _apply(
        self,
        view: str,
        position: int | None,
        notifications: Sequence[Notification],
        expect: Sequence[Expect],
    ) -> int:
        """Apply ``notifications`` in as few commits as the store's limit allows; the number
        committed. After a full read, a tail that would make a small commit of its own is
        left for the next read, which continues it into a full one."""
        limit = self.store.max_changes_per_commit - self.projection.max_rows_per_event
        if self._one_by_one:
            limit = 0
        rows = Rows(self.store, view, self.cache)
        parked = self._parked_orders(view)
        orders: set[str] = set()
        first, last = position, position
        for notification in notifications:
            if len(rows) > limit:
                self._commit(rows, position, last, orders, expect)
                position, rows, orders = last, Rows(self.store, view, self.cache), set()
            order = str(notification.originator_id)
            if not self._park(rows, order, notification.id, parked):
                self._project(notification, rows)
                orders.add(order)
            last = notification.id
        if position == first or len(notifications) < self.batch_size:
            self._commit(rows, position, last, orders, expect)
            position = last
        return (position or 0) - (first or 0)

    def _park(self, rows: Rows, order: str, notification_id: int, parked: set[str]) -> bool:
        """Adds ``notification_id`` to the order's parked events if the order is parked (or
        to be parked); True if so."""
        if order not in parked and order not in self._to_park:
            return False
        row = rows.get(PARKED, order)
        if row is None and order not in self._to_park:
            parked.discard(order)  # released since the hint was read
            return False
        if row is None:  # parked now (to_park forgets it once committed)
            record = ParkedOrder(order, (notification_id,), self._to_park[order], time.time())
        else:
            before = parked_from_row(row)
            ids = tuple(sorted({*before.notification_ids, notification_id}))
            record = replace(before, notification_ids=ids)
        rows.put(PARKED, order, parked_row_data(record), (row.version if row else 0) + 1)
        return True

    def _project(self, notification: Notification, rows: Rows) -> None:
        """Projects ``notification``; raises :class:`Unhandled` if that fails."""
        order = str(notification.originator_id)
        try:
            event = self.decode(notification)
            if isinstance(event, OrderEvent):
                self.projection.project(event, rows)
        except Exception as error:  # a projection's or decoder's failure parks the order
            raise Unhandled(order, notification, error) from error

    def _commit(
        self,
        rows: Rows,
        position: int | None,
        last: int | None,
        orders: set[str],
        expect: Sequence[Expect] = (),
    ) -> None:
        assert last is not None
        view = rows.view
        changes = rows.changes()
        try:
            self.store.commit(changes, Advance(view, position, last), expect)
        except (RowConflictError, PositionConflictError):
            raise
        except ViewStoreError as error:  # a data error of the rows written
            if len(orders) == 1:
                (order,) = orders
                raise Unhandled(order, None, refused_rows(error)) from error
            if orders and not self._one_by_one:
                raise _DataError from error
            raise
        for change in changes:
            if isinstance(change, Put) and change.row.partition == PARKED:
                self._to_park.pop(change.row.key, None)
                if self._parked is not None:
                    self._parked[1].add(change.row.key)
        self._position = (view, last)
        rows.committed()
        processed = last - (position or 0)
        self.applied += processed
        self._pace(processed)

    def _pace(self, processed: int) -> None:
        if self.max_rate is None:
            return
        now = time.monotonic()
        if self._rate_started is None:
            self._rate_started, self._rate_applied = now, 0
        self._rate_applied += processed
        ahead = self._rate_applied / self.max_rate - (now - self._rate_started)
        if ahead > 0:
            time.sleep(ahead)

    def settle(self) -> int:
        """Applies the operators' requests on the parked orders of the generation written
        now: a skip releases the order with its reason; a retry applies its parked events
        once, in order, and releases it in the same commit (or, if one fails again, applies
        those before it and keeps the rest parked with the new reason). Returns how many
        requests it applied."""
        view = self.view
        lot = ViewParking(self.store, view)
        applied = 0
        for parked in lot.parked():
            if parked.request is Request.SKIP:
                lot.release(parked.order_id, skipped=parked.note or "skipped")
            elif parked.request is Request.RETRY:
                for attempt in range(1, MAX_ROW_CONFLICTS + 1):
                    try:
                        retry(self.store, view, parked.order_id, self.recorder, self._project)
                        break
                    except RowConflictError:
                        logger.info("%s: retry of %s conflicted (try %d)", view, parked, attempt)
            else:
                continue
            applied += 1
        self._parked = None
        return applied

    def catch_up(
        self,
        until: int | None = None,
        stop: threading.Event | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Process until nothing new is in the log (or ``until`` is reached, or ``stop`` is
        set); the number of notifications processed. ``on_progress`` gets each batch's count."""
        total = 0
        while stop is None or not stop.is_set():
            conflicts = self.conflicts
            count = self.run_once(until)
            if count == 0 and self.conflicts == conflicts:
                break
            total += count
            if on_progress is not None and count:
                on_progress(count)
        return total

    def run_forever(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        """Follow the log until ``stop`` is set, waiting ``poll_interval`` when idle."""
        while not stop.is_set():
            if self.run_once() == 0:
                stop.wait(poll_interval)


class _DataError(Exception):
    """A commit of several orders' rows was refused as data: which order is not known yet."""
