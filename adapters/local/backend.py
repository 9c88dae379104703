"""The embedded local backend: zero set-up, no AWS account, no server.

Events go to the ``eventsourcing`` SQLite recorder in one file under a data directory, so what a
run stored is there for the next run. :class:`SQLiteLease` keeps the relay's lease in the same
file, so relays in several processes on one data directory take turns.
"""

from __future__ import annotations

from pathlib import Path

from eventsourcing.sqlite import SQLiteDatastore

from adapters.relay.ports import Lease, LeaseTerm

EVENTS_FILE_NAME = "events.sqlite3"


def local_env(data_dir: Path) -> dict[str, str]:
    """Application settings that store events in ``data_dir`` (created if missing)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(data_dir / EVENTS_FILE_NAME),
        "SQLITE_LOCK_TIMEOUT": "10",
    }


class SQLiteLease(Lease):
    """The lease ``name`` in table ``leases`` of ``datastore`` (created if missing).

    Taking or renewing is one conditional upsert in a write transaction, which SQLite
    serialises, so of racing owners exactly one wins.
    """

    def __init__(self, datastore: SQLiteDatastore, name: str) -> None:
        self.datastore = datastore
        self.name = name
        with datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS leases "
                "(name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL)"
            )

    def acquire(self, owner: str, expires_at: float, now: float) -> bool:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at < ? "
                "RETURNING owner",
                (self.name, owner, expires_at, now),
            )
            return cursor.fetchone() is not None

    def release(self, owner: str) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ?",
                (self.name, owner),
            )

    def holder(self) -> LeaseTerm | None:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (self.name,))
            row = cursor.fetchone()
        return None if row is None else LeaseTerm(row[0], float(row[1]))
