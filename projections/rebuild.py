"""Rebuild by replay: a new generation of a view, filled from the start of the log while the live
one keeps serving, then switched to atomically (blue/green), and the old one dropped.

Steps, each safe to interrupt and run again (the next run resumes where this one stopped):

1. choose the generation to fill: ``name.next`` if it is ahead of ``name.live`` (a rebuild
   that was interrupted: resumed from its tracked position, nothing redone), else live + 1,
   recorded in ``name.next`` by a conditional write (two rebuilds cannot both start);
2. replay the log into it with a :class:`~projections.runtime.Runner` (batched, coalesced,
   rate-bounded), until it has every notification in the log;
3. optionally compare it with the live generation (:func:`compare`);
4. switch readers: ``name.live`` moves to the new generation in one conditional write, so a
   reader sees the old generation or the new one, never a mix;
5. after ``grace_seconds`` (readers still paging the old generation finish), drop the old one.

A live runner (``orders projections run``) re-reads ``name.live`` each batch, so after the
switch it feeds the new generation from that generation's own position.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder

from orders.events import OrderEvent
from projections.generations import live_generation, live_pointer, next_pointer, view_name
from projections.ports import Advance, Row, ViewStore
from projections.rows import Projection, RowCache, Rows
from projections.runtime import Decode, Runner


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


@dataclass
class RebuildResult:
    """What a rebuild did: the generations, how many notifications it replayed in this run
    (``resumed_from`` > 0: the position an interrupted run had reached) in ``replay_seconds``,
    the differences found by ``verify`` (``None``: not verified), ``seconds`` in all."""

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


class Rebuild:
    """Rebuilds ``projection`` in ``store`` from ``recorder``'s log (see the module docstring).

    ``on_start(position, head)`` is called once the generation and its starting position are
    known, ``on_progress(count)`` after each batch (for a progress bar).
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

    def run(self, *, verify: bool = False, stop: threading.Event | None = None) -> RebuildResult:
        """Rebuild, switch and clean up; returns early (no switch) if ``stop`` is set."""
        started = time.monotonic()
        name = self.projection.name
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
        pointer = live_pointer(name)
        self.store.commit([], Advance(pointer, self.store.position(pointer), target))
        time.sleep(self.grace_seconds)
        result.dropped_rows = drop_retired(self.store, name)
        result.seconds = time.monotonic() - started
        return result


def drop_retired(store: ViewStore, projection: str) -> int:
    """Drop every generation older than the live one not dropped yet; rows deleted."""
    live = live_generation(store, projection)
    dropped = store.position(dropped_pointer(projection))
    deleted = 0
    for generation in range((dropped or 0) + 1, live):
        deleted += store.drop(view_name(projection, generation))
        store.commit([], Advance(dropped_pointer(projection), dropped, generation))
        dropped = generation
    return deleted


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
) -> int:
    """Rewrite ``order_id``'s rows in the live generation from its stream ``events``; the
    number of rows changed. Safe while runners run: each row is conditioned on the version
    read, and runners skip the events already applied."""
    view = view_name(projection.name, live_generation(store, projection.name))
    rows = Rows(store, view)
    projection.forget(order_id, rows)
    for event in events:
        projection.apply(event, rows)
    changes = rows.changes()
    store.commit(changes)
    return len(changes)
