"""``EventStreams``: the plain event-store interface, for streams kept without aggregates.

A payment service or a migration appends typed events to a stream and reads them back::

    streams = EventStreams(env)                       # the same env as OrderService's
    version = streams.append(stream_id, [PaymentAuthorised(amount=Decimal("9.99"))])
    streams.append(stream_id, [PaymentCaptured()], expected_version=version)
    for event in streams.get_events(stream_id):
        print(event.version, event.timestamp, event.correlation_id, event)

It is an ``eventsourcing`` application: it runs on every persistence module (POPO, SQLite,
DynamoDB in either write mode), its events go to the same notification log as the orders',
and it imports nothing of the adapters. Guarantees:

- an append is atomic: all its events are stored, at consecutive versions after the stream's
  last, or none is;
- with ``expected_version`` (0 for a new stream) an append is stored only if the stream's last
  version is exactly that; otherwise ``ExpectedVersionError`` names both versions and nothing
  is written, also when another writer appends between the check and the write (the store's
  version condition refuses the second write);
- without it, the events go after whatever the stream holds (a lost race is tried again).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

from orders.values import Trace

NO_STREAM = UUID(int=0)
_UNSET = datetime.fromtimestamp(0, UTC)
APPEND_ATTEMPTS = 5
"""Tries of an append without ``expected_version`` that keeps losing races."""


@dataclass(frozen=True, kw_only=True)
class StreamEvent:
    """Base of the events kept in plain streams: subclass it as a frozen, keyword-only dataclass.

    The metadata fields are set by ``EventStreams.append`` (leave them out when making an
    event); events read back carry them as stored.
    """

    originator_id: UUID = NO_STREAM
    originator_version: int = 0
    timestamp: datetime = _UNSET
    correlation_id: str = ""
    causation_id: str | None = None

    @property
    def stream_id(self) -> UUID:
        """The stream the event was appended to."""
        return self.originator_id

    @property
    def version(self) -> int:
        """The event's position in its stream, from 1."""
        return self.originator_version


class ExpectedVersionError(Exception):
    """An append expected the stream at ``expected_version``; it was at ``actual_version``.

    Nothing of the append was written.
    """

    def __init__(self, stream_id: UUID, expected_version: int, actual_version: int) -> None:
        super().__init__(
            f"stream {stream_id}: expected version {expected_version}, "
            f"found version {actual_version}; nothing was appended"
        )
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class EventStreams(Application[UUID]):
    """Appends typed events to streams and reads them back; see the module's guarantees."""

    def append(
        self,
        stream_id: UUID,
        events: Sequence[StreamEvent],
        expected_version: int | None = None,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> int:
        """Append ``events`` to the stream in one atomic write; the stream's version after it.

        Raises ``ExpectedVersionError`` if ``expected_version`` is given and the stream is not
        at it. Every event gets the same correlation id (generated when not given).
        """
        if not events:
            msg = "append needs at least one event"
            raise ValueError(msg)
        trace = Trace.of(correlation_id, causation_id)
        for _ in range(APPEND_ATTEMPTS):
            current = self._last_version(stream_id)
            if expected_version is not None and current != expected_version:
                raise ExpectedVersionError(stream_id, expected_version, current)
            now = datetime.now(UTC)
            stamped = [
                dataclasses.replace(
                    event,
                    originator_id=stream_id,
                    originator_version=current + n,
                    timestamp=now,
                    correlation_id=trace.correlation_id,
                    causation_id=trace.causation_id,
                )
                for n, event in enumerate(events, start=1)
            ]
            try:
                self.events.put(stamped)
            except IntegrityError:
                if expected_version is not None:
                    found = self._last_version(stream_id)
                    raise ExpectedVersionError(stream_id, expected_version, found) from None
                continue
            return current + len(events)
        msg = f"stream {stream_id}: appends kept losing races after {APPEND_ATTEMPTS} tries"
        raise IntegrityError(msg)

    def get_events(self, stream_id: UUID, from_version: int = 0) -> Iterator[StreamEvent]:
        """The stream's events after ``from_version``, oldest first (none for an unknown stream)."""
        for event in self.events.get(stream_id, gt=from_version or None):
            yield _checked(event)

    def _last_version(self, stream_id: UUID) -> int:
        last = list(self.events.get(stream_id, desc=True, limit=1))
        return last[0].originator_version if last else 0


def _checked(event: Any) -> StreamEvent:
    if not isinstance(event, StreamEvent):
        msg = f"stream holds {type(event).__name__}, not a StreamEvent"
        raise TypeError(msg)
    return event
