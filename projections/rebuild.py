"""Rebuild by replay: a new generation of a view, filled from the start of the log while the live
one keeps serving, then switched to atomically (blue/green), and the old one dropped.

Steps, each safe to interrupt and run again (the next run resumes where this one stopped):

1. choose the generation to fill: ``name.next`` if it is ahead of ``name.live`` (a rebuild
   that was interrupted: resumed from its tracked position, nothing redone), else live + 1,
   recorded in ``name.next`` by a conditional write (two rebuilds cannot both start);
2. replay the log into it with a :class:`~projections.runtime.Runner` (batched, coalesced,
   rate-bounded), until it has every notification in the log;
3. optionally compare it with the live generation (:func:`compare`) *before* the switch: on a
   difference readers are not switched (unless ``switch_anyway``); the new generation stays
   planned, and the next run resumes it, verifies again and switches if it then agrees;
4. switch readers: ``name.live`` moves to the new generation in one conditional write, so a
   reader sees the old generation or the new one, never a mix;
5. after ``grace_seconds`` (readers still paging the old generation finish), tombstone the old
   one (its position becomes :data:`~projections.runtime.DROPPED`), then drop its rows.

Nothing can write into a generation after it was switched away from: a live runner's every
commit expects ``name.live`` as it read it, so its batch spanning the switch fails whole and it
follows the new generation from that generation's own position; the tombstone refuses any
other runner of the old generation. A repair (:func:`reproject_order`) expects the live
generation and its position and bumps the view's revision, which every live runner's commit
expects: a repair and a runner batch never both apply to the same reads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder

from orders.backoff import Backoff
from orders.events import OrderEvent
from projections.generations import (
    DROPPED,
    live_generation,
    live_pointer,
    next_pointer,
    revision_pointer,
    view_name,
)
from projections.ports import (
    Advance,
    Expect,
    JSONLike,
    PositionConflictError,
    Row,
    RowConflictError,
    ViewStore,
    ViewStoreError,
)
from projections.rows import Projection, RowCache, Rows
from projections.runtime import Decode, Runner

logger = logging.getLogger(__name__)

BACKOFF = Backoff()
"""The pause between the tries of a tombstone or a repair that lost a race with a runner."""


def dropped_pointer(projection: str) -> str:
    """The position naming the newest generation already dropped."""
    return f"{projection}.dropped"


@dataclass
class Difference:
    """A row that differs between two generations (``None``: missing from that side)."""

    partition: str
    key: str
    live: Row | None
    rebuilt: Row | None

    def fields(self) -> list[tuple[str, str, str]]:
        """``(field, live value, rebuilt value)`` of each field that differs, values shown as
        JSON (``12.50``, ``"pending"``; ``-``: no such row or field); ``(version)`` first."""
        live = {} if self.live is None else dict(self.live.data)
        rebuilt = {} if self.rebuilt is None else dict(self.rebuilt.data)
        found: list[tuple[str, str, str]] = []
        versions = (
            "-" if self.live is None else str(self.live.version),
            "-" if self.rebuilt is None else str(self.rebuilt.version),
        )
        if versions[0] != versions[1]:
            found.append(("(version)", *versions))
        for name in sorted(live.keys() | rebuilt.keys()):
            if name not in live or name not in rebuilt or live[name] != rebuilt[name]:
                found.append((name, shown(live, name), shown(rebuilt, name)))
        return found


def shown(data: dict[str, JSONLike], name: str) -> str:
    """Field ``name`` of ``data`` as JSON text, decimals with their digits; ``-`` if absent."""
    return json_text(data[name]) if name in data else "-"


def json_text(value: JSONLike) -> str:
    """A JSON-like value as JSON text, a ``Decimal`` as its digits (``12.50``)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(json_text(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(key)}: {json_text(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    return json.dumps(value, ensure_ascii=False)


@dataclass
class RebuildResult:
    """What a rebuild did: the generations, how many notifications it replayed in this run
    (``resumed_from`` > 0: the position an interrupted run had reached) in ``replay_seconds``,
    the differences found by ``verify`` (``None``: not verified), ``seconds`` in all, and
    whether readers were ``switched`` to the new generation."""

    projection: str
    old_generation: int
    new_generation: int
    resumed_from: int
    replayed: int
    seconds: float
    replay_seconds: float = 0.0
    differences: list[Difference] | None = None
    dropped_rows: int = 0
    positions: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)
    switched: bool = False


class Rebuild:
    """Rebuilds ``projection`` in ``store`` from ``recorder``'s log (see the module docstring).

    ``on_start(position, head)`` is called once the generation and its starting position are
    known, ``on_progress(count)`` after each batch (for a progress bar). ``align_seconds``
    bounds the wait for a lagging live generation before ``verify`` compares.
    """

    def __init__(
        self,
        projection: Projection,
        store: ViewStore,
        recorder: ApplicationRecorder,
        decode: Decode,
        *,
        batch_size: int = 5000,
        max_rate: float | None = None,
        grace_seconds: float = 2.0,
        align_seconds: float = 5.0,
        on_start: Callable[[int, int], None] = lambda position, head: None,
        on_progress: Callable[[int], None] = lambda count: None,
    ) -> None:
        self.projection = projection
        self.store = store
        self.recorder = recorder
        self.decode = decode
        self.batch_size = batch_size
        self.max_rate = max_rate
        self.grace_seconds = grace_seconds
        self.align_seconds = align_seconds
        self.on_start = on_start
        self.on_progress = on_progress

    def target_generation(self) -> tuple[int, int]:
        """``(live, target)``: the generation readers use and the one to fill, recording the
        target in ``name.next`` if no rebuild was under way."""
        name = self.projection.name
        live = live_generation(self.store, name)
        planned = self.store.position(next_pointer(name))
        if planned is not None and planned > live:
            return live, planned
        target = live + 1
        self.store.commit([], Advance(next_pointer(name), planned, target))
        return live, target

    def _align(self, runner: Runner, live_view: str, view: str) -> None:
        """Bring the rebuilt generation and the live one to one position before comparing
        them (the rebuilt one catches up; a live one behind is waited for, at most
        ``align_seconds``), so a live runner's lag is not reported as a difference."""
        deadline = time.monotonic() + self.align_seconds
        while True:
            live, rebuilt = (self.store.position(v) or 0 for v in (live_view, view))
            if live == rebuilt or time.monotonic() >= deadline:
                return
            if live > rebuilt:
                runner.catch_up(until=live)
            else:
                time.sleep(0.05)

    def run(
        self,
        *,
        verify: bool = False,
        switch_anyway: bool = False,
        stop: threading.Event | None = None,
    ) -> RebuildResult:
        """Rebuild, verify (if asked), switch and clean up; returns early, without switching,
        if ``stop`` is set or ``verify`` found differences (unless ``switch_anyway``)."""
        started = time.monotonic()
        name = self.projection.name
        pointer = live_pointer(name)
        live_as_read = self.store.position(pointer)
        live, target = self.target_generation()
        view = view_name(name, target)
        resumed_from = self.store.position(view) or 0
        # A generation this runner fills from empty: a cache miss means "no row", no read.
        runner = Runner(
            self.projection,
            self.store,
            self.recorder,
            self.decode,
            generation=target,
            batch_size=self.batch_size,
            max_rate=self.max_rate,
            cache=RowCache(complete=resumed_from == 0),
        )
        self.on_start(resumed_from, self.recorder.max_notification_id() or 0)
        replayed = runner.catch_up(stop=stop, on_progress=self.on_progress)
        result = RebuildResult(name, live, target, resumed_from, replayed, 0.0)
        if stop is not None and stop.is_set():
            result.notes.append("stopped before the switch: run again to resume")
            result.seconds = result.replay_seconds = time.monotonic() - started
            return result
        # Events saved while replaying: one more pass, so the switch does not step readers back.
        result.replayed += runner.catch_up()
        result.replay_seconds = time.monotonic() - started
        live_view = view_name(name, live)
        if verify:
            self._align(runner, live_view, view)
            result.differences = list(
                compare(
                    projection=self.projection,
                    store=self.store,
                    recorder=self.recorder,
                    decode=self.decode,
                    generation_a=live,
                    generation_b=target,
                )
            )
        result.positions = (self.store.position(live_view) or 0, self.store.position(view) or 0)
        if result.differences and not switch_anyway:
            result.seconds = time.monotonic() - started
            return result
        self.store.commit([], Advance(pointer, live_as_read, target))
        result.switched = True
        time.sleep(self.grace_seconds)
        result.dropped_rows = drop_retired(self.store, name)
        result.seconds = time.monotonic() - started
        return result


def drop_retired(store: ViewStore, projection: str) -> int:
    """Tombstone, then drop, every generation older than the live one not dropped yet; rows
    deleted."""
    live = live_generation(store, projection)
    dropped = store.position(dropped_pointer(projection))
    deleted = 0
    for generation in range((dropped or 0) + 1, live):
        view = view_name(projection, generation)
        tombstone(store, view)
        deleted += store.drop(view)
        store.commit([], Advance(dropped_pointer(projection), dropped, generation))
        dropped = generation
    return deleted


def tombstone(store: ViewStore, view: str, attempts: int = 20) -> None:
    """Move ``view``'s position to :data:`~projections.runtime.DROPPED`, from whatever it is,
    so no runner's commit lands in it any more (a runner advancing it meanwhile: try again)."""
    for attempt in range(1, attempts + 1):
        position = store.position(view)
        if position == DROPPED:
            return
        try:
            store.commit([], Advance(view, position, DROPPED))
        except PositionConflictError:
            BACKOFF.pause(attempt)
        else:
            return
    msg = f"{view}: could not tombstone it in {attempts} tries (a runner keeps advancing it)"
    raise ViewStoreError(msg)


def compare(
    projection: Projection,
    *,
    store: ViewStore,
    recorder: ApplicationRecorder,
    decode: Decode,
    generation_a: int,
    generation_b: int,
    page_size: int = 1000,
) -> Iterator[Difference]:
    """The rows that differ between two generations, partition by partition.

    The partitions come from one read of the log (each event names those it touches), so no
    query reads the whole store.
    """
    view_a = view_name(projection.name, generation_a)
    view_b = view_name(projection.name, generation_b)
    for partition in partitions_of(projection, recorder, decode, page_size):
        rows_a = {row.key: row for row in rows_of(store, view_a, partition)}
        rows_b = {row.key: row for row in rows_of(store, view_b, partition)}
        for key in sorted(rows_a.keys() | rows_b.keys()):
            a, b = rows_a.get(key), rows_b.get(key)
            if a is None or b is None or (a.data, a.version) != (b.data, b.version):
                yield Difference(partition, key, a, b)


def partitions_of(
    projection: Projection, recorder: ApplicationRecorder, decode: Decode, page_size: int = 1000
) -> list[str]:
    """Every partition the events in the log touch in ``projection``'s view, in log order."""
    partitions: dict[str, None] = {}
    start = 1
    while notifications := recorder.select_notifications(start=start, limit=page_size):
        for notification in notifications:
            event = decode(notification)
            if isinstance(event, OrderEvent):
                partitions.update(dict.fromkeys(projection.partitions(event)))
        start = notifications[-1].id + 1
    return list(partitions)


def rows_of(store: ViewStore, view: str, partition: str) -> Iterator[Row]:
    """Every row of one partition, a page at a time."""
    after: str | None = None
    while True:
        page = store.query(view, partition, limit=500, after=after)
        yield from page.rows
        if page.next_key is None:
            return
        after = page.next_key


def reproject_order(
    projection: Projection,
    store: ViewStore,
    events: Iterable[OrderEvent],
    order_id: UUID,
    attempts: int = 10,
) -> int:
    """Rewrite ``order_id``'s rows in the live generation from its stream ``events``; the
    number of rows changed.

    Safe while runners run and rebuilds switch: the commit expects the live generation and its
    position as read and bumps the view's revision (:func:`~projections.runtime.revision_pointer`),
    which every live runner's commit expects; a repair that lost a race is redone from fresh
    reads (up to ``attempts`` times, with jittered pauses), a runner batch read before it is
    redone by the runner. Runners then skip the events the repair applied.
    """
    events = list(events)
    name = projection.name
    attempt = 0
    while True:
        attempt += 1
        live = store.position(live_pointer(name))
        view = view_name(name, live or 1)
        position = store.position(view)
        revision = store.position(revision_pointer(view))
        rows = Rows(store, view)
        projection.forget(order_id, rows)
        for event in events:
            projection.apply(event, rows)
        changes = rows.changes()
        try:
            store.commit(
                changes,
                Advance(revision_pointer(view), revision, (revision or 0) + 1),
                [Expect(live_pointer(name), live), Expect(view, position)],
            )
        except (PositionConflictError, RowConflictError) as conflict:
            if attempt == attempts:
                raise
            logger.info("repair of order %s in %s: %s; again", order_id, view, conflict)
            BACKOFF.pause(attempt)
        else:
            return len(changes)
