"""An in-memory view store: the reference implementation of the port, for unit tests."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import replace

from projections.ports import (
    Add,
    Advance,
    Change,
    Delete,
    Expect,
    Page,
    PositionConflictError,
    Put,
    Row,
    RowConflictError,
    ViewLimitError,
    ViewStore,
)

RowId = tuple[str, str, str]


class InMemoryViewStore(ViewStore):
    """Rows in a dict, behind one lock; every guarantee of :class:`ViewStore`."""

    def __init__(self, max_changes_per_commit: int = 99) -> None:
        self.max_changes_per_commit = max_changes_per_commit
        self._rows: dict[RowId, Row] = {}
        self._positions: dict[str, int] = {}
        self._lock = threading.Lock()

    def commit(
        self,
        changes: Sequence[Change],
        advance: Advance | None = None,
        expect: Sequence[Expect] = (),
    ) -> None:
        check_commit(changes, self.max_changes_per_commit)
        with self._lock:
            held = [Expect(advance.name, advance.expected)] if advance is not None else []
            for expected_position in [*held, *expect]:
                actual = self._positions.get(expected_position.name)
                if actual != expected_position.value:
                    raise PositionConflictError(
                        expected_position.name, expected_position.value, actual
                    )
            for change in changes:
                expected = None if isinstance(change, Add) else change.expected_version
                stored = self._rows.get(row_id(change))
                actual_version = stored.version if stored else 0
                if expected is not None and expected != actual_version:
                    view, partition, key = row_id(change)
                    raise RowConflictError(view, partition, key, expected, actual_version)
            for change in changes:
                self._apply(change)
            if advance is not None:
                self._positions[advance.name] = advance.to

    def _apply(self, change: Change) -> None:
        identity = row_id(change)
        if isinstance(change, Put):
            self._rows[identity] = copy.deepcopy(change.row)
        elif isinstance(change, Delete):
            self._rows.pop(identity, None)
        else:
            stored = self._rows.get(identity)
            data = dict(stored.data) if stored else {}
            for name, delta in change.deltas.items():
                data[name] = data.get(name, 0) + delta
            data.update(copy.deepcopy(dict(change.data)))
            view, partition, key = identity
            base = stored or Row(view, partition, key, {})
            self._rows[identity] = replace(base, data=data)

    def get(self, view: str, partition: str, key: str) -> Row | None:
        with self._lock:
            return copy.deepcopy(self._rows.get((view, partition, key)))

    def query(
        self,
        view: str,
        partition: str,
        *,
        descending: bool = False,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        with self._lock:
            keys = sorted(
                (k for v, p, k in self._rows if v == view and p == partition), reverse=descending
            )
            if after is not None:
                keys = [k for k in keys if (k < after if descending else k > after)]
            chosen = keys if limit is None else keys[:limit]
            rows = [copy.deepcopy(self._rows[(view, partition, k)]) for k in chosen]
        more = limit is not None and len(keys) > limit
        return Page(rows, chosen[-1] if more and chosen else None)

    def position(self, name: str) -> int | None:
        with self._lock:
            return self._positions.get(name)

    def drop(self, view: str) -> int:
        with self._lock:
            doomed = [identity for identity in self._rows if identity[0] == view]
            for identity in doomed:
                del self._rows[identity]
            return len(doomed)


def row_id(change: Change) -> RowId:
    """The ``(view, partition, key)`` a change addresses."""
    if isinstance(change, Put):
        return (change.row.view, change.row.partition, change.row.key)
    return (change.view, change.partition, change.key)


def check_commit(changes: Sequence[Change], maximum: int) -> None:
    """Refuse a commit of more than ``maximum`` changes (:class:`ViewLimitError`) or with two
    changes of one row (``ValueError``), before anything is written."""
    if len(changes) > maximum:
        msg = f"{len(changes)} changes exceed the {maximum} per commit"
        raise ViewLimitError(msg)
    ids = [row_id(change) for change in changes]
    if len(set(ids)) != len(ids):
        msg = "two changes of one commit address the same row: coalesce them first"
        raise ValueError(msg)
