"""The projection runtime: projections as plain code, and the runner that feeds them from the log.

A :class:`Projection` turns order events into row changes through :class:`Rows`, a batch's
read-through, write-back view of one generation of its view: many events of one order make one
write. A :class:`Runner` follows an application's notification log (only through the library's
recorder interface: ``select_notifications`` and ``max_notification_id``) from the position
tracked in the view store, and commits each batch's changes together with the new position in
one :meth:`~projections.ports.ViewStore.commit`, so:

- a restart resumes from the tracked position: nothing skipped, nothing applied twice;
- of two runners of one generation, only one advances it; the other's batch fails whole with
  ``PositionConflictError``, and it carries on from the position the winner recorded;
- every row written is conditioned on the version it was read at, and every commit expects the
  view's repair revision (:func:`revision_pointer`) as read before the batch's rows, which a
  repair (``orders projections rebuild NAME --order ID``) bumps: a batch read before a repair
  fails whole rather than writing stale data (or counting stale totals); the runner reads again
  and redoes it;
- a runner following the live generation expects ``name.live`` unchanged in every commit, so
  no batch lands in a generation readers were switched away from; a dropped generation's
  position is a tombstone (:data:`DROPPED`) no advance starts from.

Generations (blue/green): the rows of projection ``name`` at generation ``g`` live in view
``name@g``, tracked by the position of the same name. Readers use the live generation, the
position ``name.live`` (absent: 1); a rebuild fills generation ``name.next`` and switches
``name.live`` to it in one conditional write (see :mod:`projections.rebuild`).

Each projection keeps, per order, one row whose version is the last stream version it applied
(:meth:`Projection.order_row`): events at or below it are skipped, which makes re-projecting one
order from its stream safe while runners run, and gives read-your-writes by order version.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification

from orders.events import OrderEvent
from projections.ports import (
    Add,
    Advance,
    Change,
    Delete,
    Expect,
    JSONLike,
    PositionConflictError,
    Put,
    Row,
    RowConflictError,
    ViewStore,
)

logger = logging.getLogger(__name__)

RowKey = tuple[str, str]
"""``(partition, key)`` of a row within one view."""

Decode = Callable[[Notification], object]
"""Turns a notification into a domain event (``OrderService(...).mapper.to_domain_event``)."""


def view_name(projection: str, generation: int) -> str:
    """The view (and position) name of ``projection`` at ``generation``."""
    return f"{projection}@{generation}"


def live_pointer(projection: str) -> str:
    """The position naming the generation readers use."""
    return f"{projection}.live"


def next_pointer(projection: str) -> str:
    """The position naming the generation a rebuild fills (equal to live when none is running)."""
    return f"{projection}.next"


DROPPED = -1
"""The position of a dropped generation (its tombstone): a runner's advance never starts from it."""


def revision_pointer(view: str) -> str:
    """The position counting the repairs of ``view`` (absent: none yet)."""
    return f"{view}.revision"


def live_generation(store: ViewStore, projection: str) -> int:
    """The generation readers use: ``projection.live``, or 1 before any rebuild."""
    return store.position(live_pointer(projection)) or 1


class Projection(ABC):
    """Events in, row changes out; pure code against :class:`Rows`, no I/O of its own.

    ``name`` names the read model; ``max_rows_per_event`` bounds the distinct rows one event
    may touch (the runner cuts batches so a commit stays within the store's limit).
    """

    name: ClassVar[str]
    max_rows_per_event: ClassVar[int]

    @abstractmethod
    def order_row(self, order_id: UUID) -> RowKey:
        """The row whose version is the last version of ``order_id`` applied to this view."""

    @abstractmethod
    def apply(self, event: OrderEvent, rows: Rows) -> None:
        """Apply ``event``, which follows the order's row version by exactly one."""

    @abstractmethod
    def forget(self, order_id: UUID, rows: Rows) -> None:
        """Remove everything ``order_id`` contributed to the view (before re-projecting it)."""

    @abstractmethod
    def partitions(self, event: OrderEvent) -> Iterable[str]:
        """The partitions ``event`` touches (what ``--verify`` compares between generations)."""

    def project(self, event: OrderEvent, rows: Rows) -> bool:
        """Apply ``event`` unless this view already has it (its order row is at or past it)."""
        partition, key = self.order_row(event.originator_id)
        row = rows.get(partition, key)
        if row is not None and row.version >= event.originator_version:
            return False
        self.apply(event, rows)
        return True


class RowCache:
    """Rows a runner wrote, by row, at most ``max_rows`` (least recently used dropped).

    ``complete`` says the cache holds every row of the view (a generation built from empty by
    this runner alone, and nothing dropped yet), so a miss means "no row" without a read;
    rows it was told to :meth:`forget` (counted ones) are read from the store.
    """

    def __init__(self, max_rows: int = 200_000, *, complete: bool = False) -> None:
        self.max_rows = max_rows
        self.complete = complete
        self._rows: OrderedDict[RowKey, Row | None] = OrderedDict()
        self._unknown: set[RowKey] = set()

    def lookup(self, row_key: RowKey) -> tuple[bool, Row | None]:
        """``(True, row or None)`` if the cache knows the row, else ``(False, None)``."""
        if row_key in self._rows:
            self._rows.move_to_end(row_key)
            return True, self._rows[row_key]
        return self.complete and row_key not in self._unknown, None

    def store(self, row_key: RowKey, row: Row | None) -> None:
        self._rows[row_key] = row
        self._rows.move_to_end(row_key)
        while len(self._rows) > self.max_rows:
            self._rows.popitem(last=False)
            self.complete = False

    def forget(self, row_key: RowKey) -> None:
        self._rows.pop(row_key, None)
        self._unknown.add(row_key)

    def clear(self) -> None:
        self._rows.clear()
        self._unknown.clear()
        self.complete = False


class Rows:
    """One batch's working copy of view ``view``: reads through to the store (or the cache),
    keeps writes in memory, and yields one coalesced change per row (:meth:`changes`).

    A row is either written whole (:meth:`put`, :meth:`delete`) or counted (:meth:`add`), not
    both in one batch. Every put or delete is conditioned on the version the row was read at.
    """

    def __init__(self, store: ViewStore, view: str, cache: RowCache | None = None) -> None:
        self.store = store
        self.view = view
        self._cache = cache
        self._read: dict[RowKey, Row | None] = {}
        self._written: dict[RowKey, Row | None] = {}
        self._adds: dict[RowKey, tuple[dict[str, int | Decimal], dict[str, JSONLike]]] = {}

    def __len__(self) -> int:
        """The distinct rows changed so far."""
        return len(self._written) + len(self._adds)

    def get(self, partition: str, key: str) -> Row | None:
        """The row as this batch left it, else as stored."""
        row_key = (partition, key)
        if row_key in self._adds:
            msg = f"row {partition}/{key} of {self.view} is counted with add(): it cannot be read"
            raise ValueError(msg)
        if row_key in self._written:
            return self._written[row_key]
        return self._base(row_key)

    def _base(self, row_key: RowKey) -> Row | None:
        if row_key not in self._read:
            known, row = self._cache.lookup(row_key) if self._cache else (False, None)
            self._read[row_key] = row if known else self.store.get(self.view, *row_key)
        return self._read[row_key]

    def put(self, partition: str, key: str, data: Mapping[str, JSONLike], version: int = 0) -> None:
        """Write the row whole."""
        self._check_not_counted(partition, key)
        self._base((partition, key))
        self._written[(partition, key)] = Row(self.view, partition, key, dict(data), version)

    def delete(self, partition: str, key: str) -> None:
        """Delete the row (absent: nothing to do)."""
        self._check_not_counted(partition, key)
        self._base((partition, key))
        self._written[(partition, key)] = None

    def add(
        self,
        partition: str,
        key: str,
        deltas: Mapping[str, int | Decimal],
        data: Mapping[str, JSONLike] | None = None,
    ) -> None:
        """Add ``deltas`` to the row's numbers (exactly), setting ``data`` beside them."""
        row_key = (partition, key)
        if row_key in self._written:
            msg = f"row {partition}/{key} of {self.view} is written whole: it cannot be counted"
            raise ValueError(msg)
        totals, fields = self._adds.setdefault(row_key, ({}, {}))
        for name, delta in deltas.items():
            totals[name] = totals.get(name, 0) + delta
        fields.update(data or {})

    def _check_not_counted(self, partition: str, key: str) -> None:
        if (partition, key) in self._adds:
            msg = f"row {partition}/{key} of {self.view} is counted with add(): it cannot be put"
            raise ValueError(msg)

    def changes(self) -> list[Change]:
        """One change per row touched, each put or delete conditioned on the version read."""
        changes: list[Change] = []
        for (partition, key), row in self._written.items():
            base = self._read[(partition, key)]
            expected = base.version if base else 0
            if row is not None:
                changes.append(Put(row, expected_version=expected))
            elif base is not None:
                changes.append(Delete(self.view, partition, key, expected_version=expected))
        for (partition, key), (deltas, data) in self._adds.items():
            changes.append(Add(self.view, partition, key, deltas, data))
        return changes

    def committed(self) -> None:
        """Tell the cache what the store now holds, after a successful commit."""
        if self._cache is None:
            return
        for row_key, row in self._written.items():
            self._cache.store(row_key, row)
        for row_key in self._adds:
            self._cache.forget(row_key)


class NotCaughtUpError(TimeoutError):
    """A view did not reach what a caller waited for within the timeout; nothing stale was
    returned. ``view`` names it, ``wanted`` and ``reached`` say how far it was."""

    def __init__(self, view: str, wanted: str, reached: str, timeout: float) -> None:
        super().__init__(
            f"view {view} has not processed {wanted} after {timeout:g} s (it is at {reached}); "
            "is a projection runner running (orders projections run)?"
        )
        self.view = view


def wait_for_notification(
    store: ViewStore,
    projection: str,
    notification_id: int,
    timeout: float,
    interval: float = 0.02,
) -> int:
    """Wait until the live generation of ``projection`` has processed ``notification_id``;
    returns that generation (query it). Raises :class:`NotCaughtUpError` past ``timeout``."""
    return _wait_until(
        store,
        projection,
        lambda view: store.position(view) or 0,
        notification_id,
        wanted=f"notification {notification_id}",
        unit="notification",
        timeout=timeout,
        interval=interval,
    )


def wait_for_order(
    store: ViewStore,
    projection: Projection,
    order_id: UUID,
    version: int,
    *,
    timeout: float,
    interval: float = 0.02,
) -> int:
    """Wait until the live generation of ``projection`` has applied ``order_id`` up to
    ``version`` (what a command returned; works when notification ids are assigned later);
    returns that generation. Raises :class:`NotCaughtUpError` past ``timeout``."""
    partition, key = projection.order_row(order_id)

    def applied_version(view: str) -> int:
        row = store.get(view, partition, key)
        return row.version if row else 0

    return _wait_until(
        store,
        projection.name,
        applied_version,
        version,
        wanted=f"order {order_id} version {version}",
        unit="version",
        timeout=timeout,
        interval=interval,
    )


def _wait_until(
    store: ViewStore,
    projection: str,
    reached_in: Callable[[str], int],
    target: int,
    *,
    wanted: str,
    unit: str,
    timeout: float,
    interval: float,
) -> int:
    """Poll the live generation until ``reached_in(view) >= target``; its generation.

    The live generation is read again on each poll, so a switch to a rebuilt one is followed.
    """
    deadline = time.monotonic() + timeout
    while True:
        generation = live_generation(store, projection)
        view = view_name(projection, generation)
        reached = reached_in(view)
        if reached >= target:
            return generation
        if time.monotonic() >= deadline:
            raise NotCaughtUpError(view, wanted, f"{unit} {reached}", timeout)
        time.sleep(interval)


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


@dataclass
class _ReadAhead:
    """A read of the log running in the runner's reader thread, for the batch after the
    current one: the store serves it while the current batch is applied and committed.

    Once the current batch is committed, ``start`` is the next notification the runner needs
    and ``left`` those of the batch not committed; the read continues from them. Until then
    (and if the batch failed) ``start`` is None, and the runner reads afresh.
    """

    view: str
    until: int | None
    read: concurrent.futures.Future[Sequence[Notification]]
    start: int | None = None
    left: list[Notification] = field(default_factory=list)


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
        self._ahead: _ReadAhead | None = None
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None

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

    def _tracked(self, view: str) -> int | None:
        """The position of ``view``: as this runner last committed it, else as stored (a
        position moved by another runner makes the next commit fail, then it is read again)."""
        if self._position is None or self._position[0] != view:
            self._position = (view, self.store.position(view))
        return self._position[1]

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
        notifications = self._read(view, start, until)
        if not notifications:
            return 0
        for attempt in range(1, 4):
            try:
                applied = self._apply(view, position, notifications, expect)
            except PositionConflictError as conflict:
                self._position_moved(view, conflict)
                return 0
            except RowConflictError as conflict:
                self.conflicts += 1
                self._position = None
                if self.cache is not None:
                    self.cache.clear()
                logger.info("%s; reading the rows again (try %d)", conflict, attempt)
                self._revision = None  # a repair may have changed them: expect its revision
                expect = self._expectations(view)
                position = self._tracked(view)
                notifications = [n for n in notifications if n.id > (position or 0)]
                if not notifications:
                    return 0
            else:
                if self._ahead is not None:
                    committed = (position or 0) + applied
                    self._ahead.left = [n for n in notifications if n.id > committed]
                    self._ahead.start = committed + 1
                return applied
        msg = f"{view}: a batch failed its row conditions 3 times in a row; giving up"
        raise RunnerStoppedError(msg)

    def _read(self, view: str, start: int, until: int | None) -> list[Notification]:
        """The notifications from ``start``: what was read ahead for exactly this, else a
        read now. After a full read, the next one starts in a thread of its own."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and (ahead.view, ahead.start, ahead.until) == (view, start, until):
            notifications = [*ahead.left, *ahead.read.result()]
        else:
            notifications = list(self._select(start, until))
        if len(notifications) >= self.batch_size:
            if self._reader is None:
                self._reader = concurrent.futures.ThreadPoolExecutor(1, "log-read-ahead")
            read = self._reader.submit(self._select, notifications[-1].id + 1, until)
            self._ahead = _ReadAhead(view, until, read)
        return notifications

    def _select(self, start: int, until: int | None) -> Sequence[Notification]:
        return self.recorder.select_notifications(start=start, limit=self.batch_size, stop=until)

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
        rows = Rows(self.store, view, self.cache)
        first, last = position, position
        for notification in notifications:
            if len(rows) > limit:
                self._commit(rows, position, last, expect)
                position, rows = last, Rows(self.store, view, self.cache)
            event = self.decode(notification)
            if isinstance(event, OrderEvent):
                self.projection.project(event, rows)
            last = notification.id
        if position == first or len(notifications) < self.batch_size:
            self._commit(rows, position, last, expect)
            position = last
        return (position or 0) - (first or 0)

    def _commit(
        self, rows: Rows, position: int | None, last: int | None, expect: Sequence[Expect]
    ) -> None:
        assert last is not None
        view = rows.view
        self.store.commit(rows.changes(), Advance(view, position, last), expect)
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
