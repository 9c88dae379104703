"""Projections as pure code, and the batch's working copy of a view they write through.

A :class:`Projection` turns order events into row changes through :class:`Rows`, a batch's
read-through, write-back view of one generation of its view: many events of one order make one
write. :class:`RowCache` keeps rows a runner wrote across batches (a rebuild).

Each projection keeps, per order, one row whose version is the last stream version it applied
(:meth:`Projection.order_row`): events at or below it are skipped, which makes re-projecting one
order from its stream safe while runners run, and gives read-your-writes by order version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from orders.events import OrderEvent
from projections.ports import Add, Change, Delete, JSONLike, Put, Row, ViewStore

RowKey = tuple[str, str]
"""``(partition, key)`` of a row within one view."""


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
