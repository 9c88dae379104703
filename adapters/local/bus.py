"""The local backend's bus: hands each envelope to the consumers its routes lead to, in process.

The same routing as the rules on EventBridge
(:meth:`~adapters.eventbridge.wiring.BusWiring.routes_of`), the same limits per call, so the
relay behaves alike on both; and the same consumer code as SQS: each route has a *record
handler* (``adapters.consumers.dispatcher.Dispatcher``) that is given the envelope's contract
JSON text, exactly what a queue delivers, and parses it. A handler that raises is called again,
up to the wiring's ``max_receive_count`` times in all (as a queue redelivers); then the body is
kept in :class:`LocalDeadLetters`, a table of the local SQLite database, so it outlives the
process: ``orders dlq list|redrive ROUTE`` show it and apply it again. A handler's failure never
refuses the entry: as on EventBridge, the bus accepted it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from eventsourcing.persistence import Notification

from adapters.consumers.dispatcher import failure_reason
from adapters.eventbridge.bus import MAX_BYTES, MAX_ENTRIES, entry_size
from adapters.eventbridge.wiring import BusWiring, bus_entry
from adapters.relay.ports import Entry, Publisher, Rejection
from schemas import Envelope, to_json

log = logging.getLogger(__name__)

RecordHandler = Callable[[str], None]
"""A consumer's record handler: a function of one message body (JSON text); raising fails it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    route TEXT NOT NULL, event_id TEXT NOT NULL, body TEXT NOT NULL, reason TEXT NOT NULL,
    attempts INTEGER NOT NULL, dead_lettered_at TEXT NOT NULL,
    PRIMARY KEY (route, event_id)
)
"""


@dataclass(frozen=True)
class DeadLetter:
    """``body`` (event ``event_id``) failed ``route``'s handler ``attempts`` times in a row;
    ``reason`` is the last failure."""

    route: str
    event_id: str
    body: str
    reason: str
    attempts: int
    dead_lettered_at: str


@dataclass(frozen=True)
class RedriveOutcome:
    """What a redrive did: dead letters applied (and removed) and those that failed again."""

    applied: int
    failed: int


class LocalDeadLetters:
    """Dead letters in table ``dead_letters`` of the SQLite file ``path`` (created if missing),
    one per route and event id (a second failure of the same event replaces the first)."""

    def __init__(self, path: Path | str, *, lock_timeout: float = 10.0) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=lock_timeout, isolation_level=None, check_same_thread=False
        )
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, route: str, event_id: str, body: str, reason: str, attempts: int) -> None:
        """Keep ``body`` as a dead letter of ``route``."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?)",
                (route, event_id, body, reason, attempts, datetime.now(UTC).isoformat()),
            )

    def list(self, route: str | None = None, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters (of ``route``, if given), oldest first, at most ``limit``."""
        sql = "SELECT * FROM dead_letters"
        parameters: list[object] = []
        if route is not None:
            sql += " WHERE route = ?"
            parameters.append(route)
        sql += " ORDER BY dead_lettered_at, event_id LIMIT ?"
        parameters.append(-1 if limit is None else limit)
        with self._lock:
            found = self._db.execute(sql, parameters).fetchall()
        return [DeadLetter(*row) for row in found]

    def count(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
        return int(count)

    def redrive(
        self, route: str, handler: RecordHandler, limit: int | None = None
    ) -> RedriveOutcome:
        """Hand each dead letter of ``route`` to ``handler`` once: one that succeeds is removed,
        one that fails again stays with its new reason. At least once: a crash between the
        handler and the removal applies it again next time (consumers skip duplicates)."""
        applied = failed = 0
        for letter in self.list(route, limit):
            try:
                handler(letter.body)
            except Exception as error:  # the consumer's failure: keep the letter, say why
                failed += 1
                self.add(route, letter.event_id, letter.body, failure_reason(error), 1)
                log.warning("%s: dead letter %s failed again: %s", route, letter.event_id, error)
                continue
            with self._lock:
                self._db.execute(
                    "DELETE FROM dead_letters WHERE route = ? AND event_id = ?",
                    (route, letter.event_id),
                )
            applied += 1
        return RedriveOutcome(applied, failed)


class InProcessBus(Publisher):
    """Delivers envelopes to ``handlers`` (record handlers, by route name) as ``wiring``
    routes them, in calls of at most ``max_bytes`` as EventBridge takes them, keeping what
    keeps failing in ``dead_letters``."""

    max_entries = MAX_ENTRIES

    def __init__(
        self,
        handlers: Mapping[str, RecordHandler],
        dead_letters: LocalDeadLetters,
        wiring: BusWiring | None = None,
        *,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.max_bytes = max_bytes
        self.wiring = wiring or BusWiring()
        for name in handlers:
            self.wiring.route(name)  # a handler for no route is a mistake: say so now
        self.handlers = dict(handlers)
        self.dead_letters = dead_letters

    def entry(self, notification: Notification, envelope: Envelope) -> Entry:
        body = bus_entry(envelope)
        return Entry(notification, envelope, body, entry_size(body))

    def send(self, entries: Sequence[Entry]) -> list[Rejection | None]:
        for entry in entries:
            self.deliver(entry.envelope)
        return [None] * len(entries)

    def deliver(self, envelope: Envelope) -> None:
        """Hands ``envelope``'s JSON to the handler of every route it matches."""
        body = to_json(envelope)
        for route in self.wiring.routes_of(envelope):
            handler = self.handlers.get(route.name)
            if handler is not None:
                self._call(route.name, handler, str(envelope.id), body)

    def _call(self, route: str, handler: RecordHandler, event_id: str, body: str) -> None:
        attempts = self.wiring.max_receive_count
        for attempt in range(1, attempts + 1):
            try:
                handler(body)
            except Exception as error:  # a consumer's failure is the consumer's, as on SQS
                reason = failure_reason(error)
                log.warning(
                    "%s: attempt %d on event %s failed: %s", route, attempt, event_id, reason
                )
            else:
                return
        log.error("%s: event %s dead-lettered after %d attempts", route, event_id, attempts)
        self.dead_letters.add(route, event_id, body, reason, attempts)
