"""The outbox relay: publishes the notification log to a bus, at least once, never skipping.

The notification log is the outbox: an event is in it if and only if its save committed. The
:class:`Relay` follows it from a tracked position, through the ``eventsourcing`` recorder
interface only (``select_notifications``, ``max_notification_id``), so it runs on SQLite and
on the DynamoDB store in either write mode. Guarantees:

- **At least once, nothing invented**: every notification after the position is published or
  parked; the position moves only past notifications the bus accepted or the parking lot
  recorded, so a crash re-publishes some (under the same event id, which consumers deduplicate
  on) and loses none. Only what the log holds is published.
- **Per order in version order**: a call carries at most one event of an order, and an order's
  next event goes out only after the bus accepted the one before.
- **Failed entries only are re-sent**, alone, after a jittered backoff; accepted ones never.
- **One bad order never stalls everyone**: an event that can never be published (a mapping
  error, over the bus's size limit, refused as malformed) parks its order in the
  :class:`~projections.parking.ParkingLot`: it and the order's later events wait there, in
  order, while every other order is published. ``ParkedOrders`` is reported every window. An
  operator's retry publishes the parked events once, in order, and releases the order; a skip
  drops them with its recorded reason. Only a call refused for good as a whole (a missing
  bus) stops the relay (:class:`~adapters.relay.ports.RelayError`, counted ``Stopped``).
- **One active relay per destination**: it publishes only while it holds the
  :class:`~adapters.relay.ports.Lease`, renewed at half term; a relay that cannot renew stops
  publishing at once. A relay killed while holding it is replaced once its term ends.

Each destination (the in-process bus, each EventBridge bus) has a relay ``name`` of its own:
its position, lease and parking lot are kept under it.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Notification,
    Tracking,
    TrackingRecorder,
)

from adapters.relay.parked import ParkedOrders
from adapters.relay.ports import (
    Entry,
    Lease,
    LeaseLostError,
    Metrics,
    Publisher,
    PublishError,
    RelayCounters,
    RelayError,
    RelayStatus,
    UnpublishableEventError,
)
from adapters.relay.window import Window
from adapters.supervisor import PAUSES, Supervisor, WorkerStoppedError
from orders.backoff import Backoff
from projections.parking import ParkingLot
from schemas import Envelope

log = logging.getLogger(__name__)

MAX_WINDOWS = 4
"""A window grows to at most this many pages while calls would go out short of entries."""


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


class Relay:
    """Publishes ``recorder``'s notification log through ``publisher``, tracking its position
    as ``name`` in ``tracking``, parking orders in ``parking`` and holding ``lease`` while it
    does (see the module docstring).

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
        parking: ParkingLot,
        name: str,
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
        self.parking = parking
        self.name = name
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.settings = settings or RelaySettings()
        self.metrics = metrics
        self.clock = clock
        self.counters = RelayCounters()
        self._term_ends = 0.0
        self._stop = threading.Event()
        self.parked = ParkedOrders(parking, name, self.counters, clock)

    def position(self) -> int:
        """The last notification id published or parked, and recorded (0 before the first)."""
        return self.tracking.max_tracking_id(self.name) or 0

    def status(self) -> RelayStatus:
        return RelayStatus(
            self.name,
            self.position(),
            self.recorder.max_notification_id() or 0,
            self.lease.holder(),
            len(self.parking.parked()),
        )

    def run(self, stop: threading.Event | None = None, backoff: Backoff = PAUSES) -> None:
        """Relays until ``stop`` is set (or :meth:`stop` is called), then releases the lease.

        Supervised: a transient error (a throttled read, a reset) pauses (``backoff``) and the
        relay goes on; an event that can never be published parks its order. A permanent error
        (a call refused for good such as a missing bus or access denied, or any other) reports
        ``Stopped`` (``RelayStopped``) and raises :class:`~adapters.supervisor.WorkerStoppedError`
        after recording the position.
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
            if not isinstance(stopped.__cause__, RelayError):  # relay_window reported those
                self._report({"Stopped": 1})
            raise
        finally:
            self._release_lease()

    def stop(self) -> None:
        """Asks :meth:`run` to stop after the call in flight; safe from a signal handler."""
        self._stop.set()

    def run_until_caught_up(self, deadline: float) -> int:
        """Relays while the log has notifications and the clock is before ``deadline`` (for a
        scheduled Lambda); returns how many it handled (published or parked). Waits for
        nothing; publishes nothing if another relay holds the lease. A call refused for good
        reports ``Stopped`` (``RelayStopped``) and raises, as :meth:`run` does."""
        handled = 0
        try:
            while self.clock() < deadline and self.hold_lease():
                count = self.relay_window()
                handled += count
                if count < self.settings.window:
                    break
        except (LeaseLostError, _Stopped):
            pass
        finally:
            self._release_lease()
        return handled

    def settle(self) -> bool:
        """Applies the operators' requests (retries, skips) now, if no other relay holds the
        lease; True if it could (a relay that holds it applies them in its next window)."""
        try:
            if not self.hold_lease():
                return False
            before = replace(self.counters)
            self.parked.settle(self.recorder, self._publish_alone)
            self._report({**self.counters.since(before), **self._parked_gauge()})
            return True
        except (LeaseLostError, _Stopped):
            return False
        finally:
            self._release_lease()

    def _release_lease(self) -> None:
        if self._term_ends:
            self.lease.release(self.owner)
            self._term_ends = 0.0

    def hold_lease(self) -> bool:
        """True if this relay holds the lease for at least half a term more, renewing (or
        taking) it when less is left; False if another relay holds it."""
        now = self.clock()
        if self._term_ends - now > self.settings.lease_seconds / 2:
            return True
        until = now + self.settings.lease_seconds
        if self.lease.acquire(self.owner, until, now):
            if not self._term_ends:
                log.info("relay %s holds the lease of %s until %.3f", self.owner, self.name, until)
            self._term_ends = until
            return True
        self._term_ends = 0.0
        return False

    def relay_window(self) -> int:
        """Applies pending requests on parked orders, then publishes the next ``window``
        notifications (reading up to ``MAX_WINDOWS`` times as many while calls would go out
        short of entries), parks what cannot be published, and records the position after
        them; returns how many it handled (0 when caught up)."""
        before = replace(self.counters)
        self.parked.settle(self.recorder, self._publish_alone)
        position = self.position()
        window = Window()
        try:
            self._read(window, position)
            self._publish(window)
        except RelayError:
            self._report({**self.counters.since(before), "Stopped": 1})
            raise
        finally:
            self.parked.save()
            self._record(window.handled_up_to(position))
        if window.last_read is None:
            self._report({**self.counters.since(before), "Lag": 0, **self._parked_gauge()})
            return 0
        head = self.recorder.max_notification_id() or 0
        lag = {"Lag": head - window.last_read, **self._parked_gauge()}
        self._report({**self.counters.since(before), **lag})
        return window.last_read - position

    def _parked_gauge(self) -> dict[str, float]:
        return {"ParkedOrders": len(self.parked)}

    def _read(self, window: Window, after: int) -> None:
        """Adds the next page of the log after ``after`` to ``window``; a notification of a
        parked order, or one that cannot be mapped, is parked."""
        notifications = self.recorder.select_notifications(
            start=after, limit=self.settings.window, inclusive_of_start=False
        )
        for notification in notifications:
            order = str(notification.originator_id)
            if order in self.parked:
                self.parked.add(order, [notification.id])
                window.parked(notification.id)
                continue
            try:
                window.add(self._entry(notification))
            except UnpublishableEventError as error:
                self.parked.add(order, [notification.id], str(error))
                window.parked(notification.id)
        window.more = len(notifications) == self.settings.window

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

    def _publish(self, window: Window) -> None:
        """Publishes the window's entries; an entry refused for good parks its order (and
        its entries still pending) and the others go on."""
        failed: list[Entry] = []
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
                    assert window.last_read is not None
                    self._read(window, window.last_read)
                if not window.pending:
                    break
                batch = window.next_batch(self.publisher.max_entries, self.publisher.max_bytes)
            failed = self._send(batch, window)

    def _send(self, batch: list[Entry], window: Window) -> list[Entry]:
        """Sends ``batch``; returns the entries to send again. An entry refused for good parks
        its order, with the order's entries still pending in ``window``."""
        failed, refused = self._call(batch)
        not_accepted = {entry.notification_id for entry in failed} | set(refused)
        for entry in batch:
            if entry.notification_id not in not_accepted:
                window.accept(entry)
        for entry in batch:
            if entry.notification_id in refused:
                order = str(entry.notification.originator_id)
                pending = [e.notification_id for e in window.park(order)]
                self.parked.add(order, pending, refused[entry.notification_id])
        return failed

    def _call(self, batch: list[Entry]) -> tuple[list[Entry], dict[int, str]]:
        """One call: the entries to send again, and the ids of those refused for good (with
        why). Raises :class:`RelayError` if the call as a whole is refused for good."""
        if self._stop.is_set():
            raise _Stopped
        if not self.hold_lease():
            raise LeaseLostError
        self.counters.calls += 1
        try:
            rejections = self.publisher.send(batch)
        except PublishError as error:
            if not error.retryable:
                raise RelayError(str(error)) from None
            log.warning("relay %s: call failed, sending it again: %s", self.owner, error)
            return batch, {}
        failed: list[Entry] = []
        refused: dict[int, str] = {}
        for entry, rejection in zip(batch, rejections, strict=True):
            if rejection is None:
                self.counters.published += 1
            elif not rejection.permanent:
                failed.append(entry)
            else:
                why = UnpublishableEventError(entry.notification, rejection.reason)
                refused[entry.notification_id] = str(why)
        return failed, refused

    def _publish_alone(self, notification: Notification) -> str | None:
        """Publishes ``notification`` alone (sent again while the bus refuses it for a while);
        None once accepted, else why it cannot be published."""
        attempt = 0
        while True:
            try:
                failed, refused = self._call([self._entry(notification)])
            except UnpublishableEventError as error:
                return str(error)
            if refused:
                return refused[notification.id]
            if not failed:
                return None
            attempt += 1
            self.counters.retried += 1
            self._pause(attempt)

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
