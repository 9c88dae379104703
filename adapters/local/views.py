"""A view store in one SQLite file: the local backend's read models.

Two tables: ``view_rows`` (primary key ``view, partition, key``, so a query reads one index
range) and ``view_positions``. A commit is one ``BEGIN IMMEDIATE`` transaction: the conditions
are checked and the changes applied under SQLite's write lock, so commits from several
processes on one file are serialised and each is all or nothing. Row data is JSON text
(:mod:`projections.codec`), exact for ``Decimal``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from projections.codec import dumps, loads_data
from projections.memory import check_commit, row_id
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
    ViewStore,
    ViewStoreError,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS view_rows (
    view TEXT NOT NULL, partition TEXT NOT NULL, key TEXT NOT NULL,
    version INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (view, partition, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_positions (
    name TEXT PRIMARY KEY, value INTEGER NOT NULL
) WITHOUT ROWID;
"""


class SQLiteViewStore(ViewStore):
    """Views in the SQLite file ``path`` (created with its tables if missing).

    ``lock_timeout`` is how long, in seconds, a commit waits for another process's.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_changes_per_commit: int = 1000,
        lock_timeout: float = 10.0,
    ) -> None:
        self.path = str(path)
        self.max_changes_per_commit = max_changes_per_commit
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            self.path, timeout=lock_timeout, isolation_level=None, check_same_thread=False
        )
        with self._errors():
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        self._connection.close()

    @contextmanager
    def _errors(self) -> Iterator[sqlite3.Connection]:
        """The connection, under this store's lock, with SQLite's errors as ours."""
        with self._lock:
            try:
                yield self._connection
            except sqlite3.Error as error:
                msg = f"SQLite view store {self.path}: {error}"
                raise ViewStoreError(msg) from error

    def commit(
        self,
        changes: Sequence[Change],
        advance: Advance | None = None,
        expect: Sequence[Expect] = (),
    ) -> None:
        check_commit(changes, self.max_changes_per_commit)
        with self._errors() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._check(db, changes, advance, expect)
                for change in changes:
                    self._apply(db, change)
                if advance is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO view_positions (name, value) VALUES (?, ?)",
                        (advance.name, advance.to),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def _check(
        db: sqlite3.Connection,
        changes: Sequence[Change],
        advance: Advance | None,
        expect: Sequence[Expect],
    ) -> None:
        held = [Expect(advance.name, advance.expected)] if advance is not None else []
        for position in [*held, *expect]:
            found = db.execute(
                "SELECT value FROM view_positions WHERE name = ?", (position.name,)
            ).fetchone()
            actual = found[0] if found else None
            if actual != position.value:
                raise PositionConflictError(position.name, position.value, actual)
        for change in changes:
            expected = None if isinstance(change, Add) else change.expected_version
            if expected is None:
                continue
            view, partition, key = row_id(change)
            found = db.execute(
                "SELECT version FROM view_rows WHERE view = ? AND partition = ? AND key = ?",
                (view, partition, key),
            ).fetchone()
            actual = found[0] if found else 0
            if actual != expected:
                raise RowConflictError(view, partition, key, expected, actual)

    @staticmethod
    def _apply(db: sqlite3.Connection, change: Change) -> None:
        view, partition, key = row_id(change)
        if isinstance(change, Put):
            db.execute(
                "INSERT OR REPLACE INTO view_rows VALUES (?, ?, ?, ?, ?)",
                (view, partition, key, change.row.version, dumps(dict(change.row.data))),
            )
        elif isinstance(change, Delete):
            db.execute(
                "DELETE FROM view_rows WHERE view = ? AND partition = ? AND key = ?",
                (view, partition, key),
            )
        else:
            found = db.execute(
                "SELECT version, data FROM view_rows WHERE view = ? AND partition = ? AND key = ?",
                (view, partition, key),
            ).fetchone()
            version, data = (found[0], loads_data(found[1])) if found else (0, {})
            for name, delta in change.deltas.items():
                data[name] = data.get(name, 0) + delta
            data.update(change.data)
            db.execute(
                "INSERT OR REPLACE INTO view_rows VALUES (?, ?, ?, ?, ?)",
                (view, partition, key, version, dumps(data)),
            )

    def get(self, view: str, partition: str, key: str) -> Row | None:
        with self._errors() as db:
            found = db.execute(
                "SELECT version, data FROM view_rows WHERE view = ? AND partition = ? AND key = ?",
                (view, partition, key),
            ).fetchone()
        return Row(view, partition, key, loads_data(found[1]), found[0]) if found else None

    def query(
        self,
        view: str,
        partition: str,
        *,
        descending: bool = False,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        order, beyond = ("DESC", "<") if descending else ("ASC", ">")
        sql = "SELECT key, version, data FROM view_rows WHERE view = ? AND partition = ?"
        parameters: list[object] = [view, partition]
        if after is not None:
            sql += f" AND key {beyond} ?"
            parameters.append(after)
        sql += f" ORDER BY key {order}"
        if limit is not None:
            sql += " LIMIT ?"
            parameters.append(limit + 1)
        with self._errors() as db:
            found = db.execute(sql, parameters).fetchall()
        more = limit is not None and len(found) > limit
        chosen = found[:limit] if limit is not None else found
        rows = [Row(view, partition, k, loads_data(data), version) for k, version, data in chosen]
        return Page(rows, rows[-1].key if more and rows else None)

    def position(self, name: str) -> int | None:
        with self._errors() as db:
            found = db.execute(
                "SELECT value FROM view_positions WHERE name = ?", (name,)
            ).fetchone()
        return found[0] if found else None

    def drop(self, view: str) -> int:
        with self._errors() as db:
            return db.execute("DELETE FROM view_rows WHERE view = ?", (view,)).rowcount
