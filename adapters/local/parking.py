"""A :class:`~projections.parking.ParkingLot` in the local backend's SQLite file.

The relay's parked orders live beside its position and lease, in tables ``parked_orders``
(one row per worker and order) and ``skipped_orders``; each call is one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from eventsourcing.sqlite import SQLiteDatastore

from projections.parking import NotParkedError, ParkedOrder, ParkingLot, Request, SkippedOrder

_COLUMNS = "order_id, ids, reason, parked_at, request, note"


class SQLiteParkingLot(ParkingLot):
    """The parked orders of ``worker`` in ``datastore`` (tables created if missing)."""

    def __init__(self, datastore: SQLiteDatastore, worker: str) -> None:
        self.datastore = datastore
        self.worker = worker
        with datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS parked_orders (worker TEXT NOT NULL, "
                "order_id TEXT NOT NULL, ids TEXT NOT NULL, first_id INTEGER NOT NULL, "
                "reason TEXT NOT NULL, parked_at REAL NOT NULL, request TEXT, note TEXT, "
                "PRIMARY KEY (worker, order_id))"
            )
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS skipped_orders (worker TEXT NOT NULL, "
                "order_id TEXT NOT NULL, ids TEXT NOT NULL, reason TEXT NOT NULL, "
                "note TEXT NOT NULL, skipped_at REAL NOT NULL)"
            )

    def parked(self) -> list[ParkedOrder]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT {_COLUMNS} FROM parked_orders WHERE worker = ? ORDER BY first_id",
                (self.worker,),
            )
            return [_parked(row) for row in cursor.fetchall()]

    def park(
        self,
        order_id: str,
        notification_ids: Sequence[int],
        reason: str,
        *,
        keep_request: bool = True,
    ) -> None:
        ids = list(notification_ids)
        keep = "" if keep_request else ", request = NULL, note = NULL"
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO parked_orders (worker, order_id, ids, first_id, reason, parked_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker, order_id) DO UPDATE SET "
                f"ids = excluded.ids, first_id = excluded.first_id, reason = excluded.reason{keep}",
                (self.worker, order_id, json.dumps(ids), ids[0] if ids else 0, reason, time.time()),
            )

    def ask(self, order_id: str, request: Request, note: str | None = None) -> ParkedOrder:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "UPDATE parked_orders SET request = ?, note = ? WHERE worker = ? AND order_id = ? "
                f"RETURNING {_COLUMNS}",
                (request.value, note, self.worker, order_id),
            )
            row = cursor.fetchone()
        if row is None:
            raise NotParkedError(self.worker, order_id)
        return _parked(row)

    def release(self, order_id: str, *, skipped: str | None = None) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"DELETE FROM parked_orders WHERE worker = ? AND order_id = ? RETURNING {_COLUMNS}",
                (self.worker, order_id),
            )
            row = cursor.fetchone()
            if row is not None and skipped is not None:
                cursor.execute(
                    "INSERT INTO skipped_orders (worker, order_id, ids, reason, note, skipped_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (self.worker, order_id, row[1], row[2], skipped, time.time()),
                )

    def skipped(self) -> list[SkippedOrder]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT order_id, ids, reason, note, skipped_at FROM skipped_orders "
                "WHERE worker = ? ORDER BY skipped_at, rowid",
                (self.worker,),
            )
            return [
                SkippedOrder(row[0], tuple(json.loads(row[1])), row[2], row[3], float(row[4]))
                for row in cursor.fetchall()
            ]


def _parked(row: Sequence[object]) -> ParkedOrder:
    order_id, ids, reason, parked_at, request, note = row
    return ParkedOrder(
        str(order_id),
        tuple(json.loads(str(ids))),
        str(reason),
        float(str(parked_at)),
        Request(str(request)) if request else None,
        None if note is None else str(note),
    )
