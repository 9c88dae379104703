"""The outbox relay: publishes the notification log to a bus, at least once, never skipping.

The notification log is the outbox: an event is in it if and only if its save committed. The
:class:`Relay` follows it from a tracked position, through the ``eventsourcing`` recorder
interface only (``select_notifications``, ``max_notification_id``), so it runs on SQLite and
on the DynamoDB store in either write mode. Guarantees:

- **At least once, nothing invented**: every notification after the position is published;
  the position moves only past notifications the bus accepted, so a crash re-publishes some
  (under the same event id, which consumers deduplicate on) and loses none. Only what the log
  holds is published.
- **Per order in version order**: a call carries at most one event of an order, and an order's
  next event goes out only after the bus accepted the one before.
- **Failed entries only are re-sent**, alone, after a jittered backoff; accepted ones never.
- **Never skips**: an event that can never be published (a mapping error, over the bus's size
  limit, refused as malformed) stops the relay with :class:`UnpublishableEventError` naming it,
  after recording the position just before it, and counts ``UnpublishableEvents``.
- **One active relay per log**: it publishes only while it holds the :class:`Lease`, renewed
  at half term; a relay that cannot renew stops publishing at once. A relay killed while
  holding it is replaced once its term ends.

The bus is a :class:`Publisher` (``adapters.eventbridge.bus`` for Amazon EventBridge,
``adapters.local.bus`` for the local backend).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Notification,
    Tracking,
    TrackingRecorder,
)

from adapters.supervisor import PAUSES, Supervisor, WorkerStoppedError
from orders.backoff import Backoff
from schemas import Envelope

log = logging.getLogger(__name__)


class LeaseTerm(NamedTuple):
    """``owner`` holds the lease until ``expires_at`` (seconds since the epoch)."""

    owner: str
    expires_at: float


class Lease(ABC):
    """One named lease: at most one owner holds an unexpired term at any moment.

    Times are wall-clock seconds since the epoch, passed in by the caller, so holders on
    different machines compare the same numbers (their clocks must agree to well within a term).
    """

    @abstractmethod
    def acquire(self, owner: str, expires_at: float, now: float) -> bool:
        """Makes ``owner`` the holder until ``expires_at`` if the lease was never held, its
        term ended before ``now``, or ``owner`` holds it already (a renewal); True if so.

        Atomic: of owners racing for a free lease, exactly one gets it.
        """

    @abstractmethod
    def release(self, owner: str) -> None:
        """Ends ``owner``'s term now if ``owner`` still holds the lease; else does nothing."""

    @abstractmethod
    def holder(self) -> LeaseTerm | None:
        """The last term granted (it may have ended), or None if the lease was never held."""


@dataclass(frozen=True)
class Entry:
    """The envelope of ``notification`` ready to send: the bus's request ``body`` and its
    ``size`` as the bus counts it against its per-call limit."""

    notification: Notification
    envelope: Envelope
    body: Mapping[str, Any]
    size: int

    @property
    def notification_id(self) -> int:
        return self.notification.id

    @property
    def order_id(self) -> UUID:
        return self.envelope.detail.order_id


class Rejection(NamedTuple):
    """Why the bus did not accept an entry; ``permanent`` if sending it again cannot help."""

    reason: str
    permanent: bool


class PublishError(Exception):
    """A call failed as a whole: nothing is known of its entries (some may be accepted)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Publisher(ABC):
    """A bus taking calls of at most ``max_entries`` entries and ``max_bytes`` in all."""

    max_entries: int
    max_bytes: int

    @abstractmethod
    def entry(self, notification: Notification, envelope: Envelope) -> Entry:
        """``envelope`` (of ``notification``) as the bus takes it."""

    @abstractmethod
    def send(self, entries: Sequence[Entry]) -> Sequence[Rejection | None]:
        """Sends ``entries`` in one call; for each, None if accepted, else its rejection.

        Raises :class:`PublishError` when the call's outcome is unknown.
        """


MAX_WINDOWS = 4
"""A window grows to at most this many pages while calls would go out short of entries."""


class Metrics(Protocol):
    """Where the relay reports counts (``PublishedEvents``, ``PublishCalls``,
    ``RetriedEntries``, ``UnpublishableEvents``) and ``Lag``, once per window and on a stop."""

    def put(self, values: Mapping[str, float]) -> None: ...


class RelayError(Exception):
    """The relay stopped; the message says why in one line."""


class UnpublishableEventError(RelayError):
    """Notification ``notification_id`` can never be published: the relay stopped before it."""

    def __init__(self, notification: Notification, reason: str) -> None:
        super().__init__(
            f"notification {notification.id} (stream {notification.originator_id} version "
            f"{notification.originator_version}, {notification.topic}) cannot be published: "
            f"{reason}; the relay stopped at position {notification.id - 1}"
        )
        self.notification_id = notification.id


class LeaseLostError(Exception):
    """Another relay holds the lease now: this one must not publish."""


@dataclass(frozen=True)
class RelayStatus:
    """Where the relay is: ``position`` (last id published and recorded), the log's ``head``,
    ``lag`` (head minus position) and the lease's ``holder``."""

    position: int
    head: int
    holder: LeaseTerm | None

    @property
    def lag(self) -> int:
        return self.head - self.position


@dataclass
class RelaySettings:
    """How the relay paces itself.

    ``window``: notifications read per page, and published per position update (a window
    reads up to ``MAX_WINDOWS`` pages while calls would go out short); ``lease_seconds``: a
    term's length (a dead holder is replaced within it plus ``poll_seconds``);
    ``poll_seconds``: the pause when caught up or waiting for the lease; ``backoff_*``: the
    jittered exponential pause before re-sending failed entries.
    """

    window: int = 100
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    backoff_base_seconds: float = 0.05
    backoff_max_seconds: float = 5.0


@dataclass
class RelayCounters:
    """What this relay did since it started."""

    published: int = 0
    calls: int = 0
    retried: int = 0

    def since(self, before: RelayCounters) -> dict[str, float]:
        """The metrics of what happened since ``before`` (a copy of these counters)."""
        return {
            "PublishedEvents": self.published - before.published,
            "PublishCalls": self.calls - before.calls,
            "RetriedEntries": self.retried - before.retried,
        }


class Relay:
    """Publishes ``recorder``'s notification log through ``publisher``, tracking its position
    as ``name`` in ``tracking`` and holding ``lease`` while it does (see the module docstring).

    ``to_envelope`` maps a notification to its contract envelope (any exception it raises
    makes that notification unpublishable). ``owner`` names this relay in the lease (by
    default host, process id and a random part).
    """

    def __init__(
        self,
        recorder: ApplicationRecorder,
        tracking: TrackingRecorder,
        to_envelope: Callable[[Notification], Envelope],
        publisher: Publisher,
        lease: Lease,
        *,
        name: str = "eventbridge-relay",
        owner: str | None = None,
        settings: RelaySettings | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.recorder = recorder
        self.tracking = tracking
        self.to_envelope = to_envelope
        self.publisher = publisher
        self.lease = lease
        self.name = name
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.settings = settings or RelaySettings()
        self.metrics = metrics
        self.clock = clock
        self.counters = RelayCounters()
        self._term_ends = 0.0
        self._stop = threading.Event()

    def position(self) -> int:
        """The last notification id published and recorded (0 before the first)."""
        return self.tracking.max_tracking_id(self.name) or 0

    def status(self) -> RelayStatus:
        return RelayStatus(
            self.position(), self.recorder.max_notification_id() or 0, self.lease.holder()
        )

    def run(self, stop: threading.Event | None = None, backoff: Backoff = PAUSES) -> None:
        """Relays until ``stop`` is set (or :meth:`stop` is called), then releases the lease.

        Supervised: a transient error (a throttled read, a reset) pauses (``backoff``) and the
        relay goes on. Any other error (an :class:`UnpublishableEventError`, a call refused for
        good such as a missing bus or access denied) reports ``Stopped`` to the metrics and
        raises :class:`~adapters.supervisor.WorkerStoppedError` after recording the position.
        """
        if stop is not None:
            self._stop = stop

        def step() -> None:
            if not self.hold_lease():
                self._stop.wait(self.settings.poll_seconds)
                return
            try:
                published = self.relay_window()
            except (LeaseLostError, _Stopped):
                return
            if published < self.settings.window:
                self._stop.wait(self.settings.poll_seconds)

        try:
            Supervisor("relay", self._stop, backoff=backoff).run(step)
        except WorkerStoppedError as stopped:
            if not isinstance(stopped.__cause__, UnpublishableEventError):  # reported already
                self._report({"Stopped": 1})
            raise
        finally:
            if self._term_ends:
                self.lease.release(self.owner)
                self._term_ends = 0.0

    def stop(self) -> None:
        """Asks :meth:`run` to stop after the call in flight; safe from a signal handler."""
        self._stop.set()

    def run_until_caught_up(self, deadline: float) -> int:
        """Relays while the log has notifications and the clock is before ``deadline`` (for a
        scheduled Lambda); returns how many it published. Waits for nothing. Stopping on a
        :class:`RelayError` reports ``Stopped`` (``RelayStopped``), as :meth:`run` does."""
        published = 0
        try:
            while self.clock() < deadline and self.hold_lease():
                count = self.relay_window()
                published += count
                if count < self.settings.window:
                    break
        except (LeaseLostError, _Stopped):
            pass
        except RelayError as error:
            if not isinstance(error, UnpublishableEventError):  # that one is reported already
                self._report({"Stopped": 1})
            raise
        finally:
            if self._term_ends:
                self.lease.release(self.owner)
                self._term_ends = 0.0
        return published

    def hold_lease(self) -> bool:
        """True if this relay holds the lease for at least half a term more, renewing (or
        taking) it when less is left; False if another relay holds it."""
        now = self.clock()
        if self._term_ends - now > self.settings.lease_seconds / 2:
            return True
        until = now + self.settings.lease_seconds
        if self.lease.acquire(self.owner, until, now):
            if not self._term_ends:
                log.info("relay %s holds the lease until %.3f", self.owner, until)
            self._term_ends = until
            return True
        self._term_ends = 0.0
        return False

    def relay_window(self) -> int:
        """Publishes the next ``window`` notifications (reading up to ``MAX_WINDOWS`` times
        as many while calls would go out short of entries) and records the position after
        them; returns how many it published (0 when caught up)."""
        position = self.position()
        before = replace(self.counters)
        window = _Window()
        self._read(window, position)
        if not window.entries and window.unpublishable is None:
            self._report({**self.counters.since(before), "Lag": 0})
            return 0
        unpublishable = window.unpublishable
        try:
            self._publish(window)
            unpublishable = window.unpublishable
        except _Refused as refused:
            unpublishable = UnpublishableEventError(refused.entry.notification, str(refused))
        finally:
            self._record(window.accepted_up_to(position))
        if unpublishable is not None:
            self._report({**self.counters.since(before), "UnpublishableEvents": 1})
            raise unpublishable
        last = window.entries[-1].notification_id
        head = self.recorder.max_notification_id() or 0
        self._report({**self.counters.since(before), "Lag": head - last})
        return len(window.entries)

    def _read(self, window: _Window, after: int) -> None:
        """Adds the next page of the log after ``after`` to ``window``, up to the first
        unpublishable notification."""
        notifications = self.recorder.select_notifications(
            start=after, limit=self.settings.window, inclusive_of_start=False
        )
        entries: list[Entry] = []
        for notification in notifications:
            try:
                entries.append(self._entry(notification))
            except UnpublishableEventError as error:
                window.unpublishable = error
                break
        window.extend(entries)
        window.more = len(notifications) == self.settings.window and not window.unpublishable

    def _entry(self, notification: Notification) -> Entry:
        try:
            entry = self.publisher.entry(notification, self.to_envelope(notification))
        except Exception as error:  # any failure to map makes it unpublishable
            raise UnpublishableEventError(
                notification, f"{type(error).__name__}: {error}"
            ) from None
        if entry.size > self.publisher.max_bytes:
            reason = f"entry of {entry.size} bytes, over the bus's {self.publisher.max_bytes}"
            raise UnpublishableEventError(notification, reason)
        return entry

    def _publish(self, window: _Window) -> None:
        """Publishes the window; after a refusal for good, still publishes every entry before
        the refused one (so the position reaches it), then raises :class:`_Refused`."""
        failed: list[Entry] = []
        refused: _Refused | None = None
        attempt = 0
        while failed or window.pending:
            if failed:
                attempt += 1
                self._pause(attempt)
                batch = failed
                self.counters.retried += len(failed)
            else:
                attempt = 0
                if (
                    window.more
                    and window.orders < self.publisher.max_entries
                    and len(window.entries) < MAX_WINDOWS * self.settings.window
                ):
                    self._read(window, window.entries[-1].notification_id)
                batch = window.next_batch(self.publisher.max_entries, self.publisher.max_bytes)
            if self._stop.is_set():
                raise _Stopped
            if not self.hold_lease():
                raise LeaseLostError
            failed, refusal = self._send(batch, window)
            if refusal is not None and (refused is None or refusal.before(refused)):
                refused = refusal
            if refused is not None:
                window.more = False
                window.drop_from(refused.entry.notification_id)
                failed = [e for e in failed if e.notification_id < refused.entry.notification_id]
        if refused is not None:
            raise refused

    def _send(self, batch: list[Entry], window: _Window) -> tuple[list[Entry], _Refused | None]:
        """Sends ``batch``; returns the entries to send again, and the earliest refused for
        good."""
        self.counters.calls += 1
        try:
            rejections = self.publisher.send(batch)
        except PublishError as error:
            if not error.retryable:
                raise RelayError(str(error)) from None
            log.warning("relay %s: call failed, sending it again: %s", self.owner, error)
            return batch, None
        failed: list[Entry] = []
        refused: _Refused | None = None
        for entry, rejection in zip(batch, rejections, strict=True):
            if rejection is None:
                window.accept(entry)
                self.counters.published += 1
            elif not rejection.permanent:
                failed.append(entry)
            elif refused is None or entry.notification_id < refused.entry.notification_id:
                refused = _Refused(entry, rejection.reason)
        return failed, refused

    def _pause(self, attempt: int) -> None:
        ceiling = min(
            self.settings.backoff_max_seconds,
            self.settings.backoff_base_seconds * 2 ** (attempt - 1),
        )
        self._stop.wait(random.uniform(ceiling / 2, ceiling))

    def _record(self, position: int | None) -> None:
        if position is None:
            return
        try:
            self.tracking.insert_tracking(Tracking(self.name, position))
        except IntegrityError:
            log.info("relay %s: position %d was recorded already", self.owner, position)

    def _report(self, values: Mapping[str, float]) -> None:
        if self.metrics is not None:
            self.metrics.put(values)


class _Stopped(Exception):  # noqa: N818 - control flow, never leaves the relay
    """The relay was asked to stop in the middle of a window."""


class _Refused(Exception):  # noqa: N818 - turned into UnpublishableEventError
    def __init__(self, entry: Entry, reason: str) -> None:
        super().__init__(reason)
        self.entry = entry

    def before(self, other: _Refused) -> bool:
        return self.entry.notification_id < other.entry.notification_id


class _Window:
    """The entries of one window, queued per order, and which of them the bus accepted;
    ``more`` if the log may hold more after them, ``unpublishable`` the notification that
    ended the window, if one did."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._queues: dict[UUID, deque[Entry]] = {}
        self._accepted: set[int] = set()
        self.more = False
        self.unpublishable: UnpublishableEventError | None = None

    def extend(self, entries: Sequence[Entry]) -> None:
        self.entries.extend(entries)
        for entry in entries:
            self._queues.setdefault(entry.order_id, deque()).append(entry)

    @property
    def pending(self) -> bool:
        return bool(self._queues)

    @property
    def orders(self) -> int:
        """How many orders have entries pending."""
        return len(self._queues)

    def next_batch(self, max_entries: int, max_bytes: int) -> list[Entry]:
        """The first pending entry of as many orders as fit, earliest in the log first."""
        heads = sorted((queue[0] for queue in self._queues.values()), key=_notification_id)
        batch: list[Entry] = []
        size = 0
        for entry in heads:
            if len(batch) == max_entries or size + entry.size > max_bytes:
                break
            batch.append(entry)
            size += entry.size
        return batch

    def drop_from(self, notification_id: int) -> None:
        """Forgets the pending entries from ``notification_id`` on."""
        for order_id, queue in list(self._queues.items()):
            while queue and queue[-1].notification_id >= notification_id:
                queue.pop()
            if not queue:
                del self._queues[order_id]

    def accept(self, entry: Entry) -> None:
        queue = self._queues[entry.order_id]
        queue.popleft()
        if not queue:
            del self._queues[entry.order_id]
        self._accepted.add(entry.notification_id)

    def accepted_up_to(self, position: int) -> int | None:
        """The last id of the accepted prefix of the window (None if not past ``position``)."""
        last = None
        for entry in self.entries:
            if entry.notification_id not in self._accepted:
                break
            last = entry.notification_id
        return last if last is not None and last > position else None


def _notification_id(entry: Entry) -> int:
    return entry.notification_id
