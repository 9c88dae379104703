"""The local backend's bus: hands each envelope to the handlers its routes lead to, in process.

The same routing as the rules on EventBridge
(:meth:`~adapters.eventbridge.wiring.BusWiring.routes_of`),
the same handlers as the SQS consumers (a :data:`Handler` per route name), the same limits per
call, so the relay behaves alike on both. A handler that raises is called again, up to the
wiring's ``max_receive_count`` times in all (as a queue redelivers); then the envelope is kept
in :attr:`InProcessBus.dead_letters` and logged, as a dead-letter queue would keep it. A
handler's failure never refuses the entry: as on EventBridge, the bus accepted it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from eventsourcing.persistence import Notification

from adapters.eventbridge.bus import MAX_BYTES, MAX_ENTRIES, entry_size
from adapters.eventbridge.wiring import BusWiring, bus_entry
from adapters.relay.outbox import Entry, Publisher, Rejection
from schemas import Envelope

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], None]
"""A consumer: a transport-free function of a validated envelope; raising means failure."""


@dataclass(frozen=True)
class DeadLetter:
    """``envelope`` failed ``route``'s handler every time; ``error`` is the last failure."""

    route: str
    envelope: Envelope
    error: str


class InProcessBus(Publisher):
    """Delivers envelopes to ``handlers`` (by route name) as ``wiring`` routes them."""

    max_entries = MAX_ENTRIES
    max_bytes = MAX_BYTES

    def __init__(self, handlers: Mapping[str, Handler], wiring: BusWiring | None = None) -> None:
        self.wiring = wiring or BusWiring()
        for name in handlers:
            self.wiring.route(name)  # a handler for no route is a mistake: say so now
        self.handlers = dict(handlers)
        self.dead_letters: list[DeadLetter] = []

    def entry(self, notification: Notification, envelope: Envelope) -> Entry:
        body = bus_entry(envelope)
        return Entry(notification, envelope, body, entry_size(body))

    def send(self, entries: Sequence[Entry]) -> list[Rejection | None]:
        for entry in entries:
            self.deliver(entry.envelope)
        return [None] * len(entries)

    def deliver(self, envelope: Envelope) -> None:
        """Hands ``envelope`` to the handler of every route it matches."""
        for route in self.wiring.routes_of(envelope):
            handler = self.handlers.get(route.name)
            if handler is not None:
                self._call(route.name, handler, envelope)

    def _call(self, route: str, handler: Handler, envelope: Envelope) -> None:
        for attempt in range(1, self.wiring.max_receive_count + 1):
            try:
                handler(envelope)
            except Exception as error:  # a consumer's failure is the consumer's, as on SQS
                last = f"{type(error).__name__}: {error}"
                log.warning(
                    "%s: attempt %d on event %s failed: %s", route, attempt, envelope.id, last
                )
            else:
                return
        log.error("%s: event %s dead-lettered after %d attempts", route, envelope.id, attempt)
        self.dead_letters.append(DeadLetter(route, envelope, last))
