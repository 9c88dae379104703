"""The relay's ports: the bus it publishes to (:class:`Publisher`), the :class:`Lease` that
lets one relay publish at a time, where it reports (:class:`Metrics`, the
:class:`RelayCounters` it keeps), what it says of itself (:class:`RelayStatus`), and its
errors.

The bus adapters are ``adapters.eventbridge.bus`` (Amazon EventBridge) and ``adapters.local.bus``
(the local backend); the lease adapters ``adapters.local.backend`` (SQLite) and
``adapters.dynamodb.lease``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from eventsourcing.persistence import Notification

from schemas import Envelope


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


class Metrics(Protocol):
    """Where the relay reports counts (``PublishedEvents``, ``PublishCalls``,
    ``RetriedEntries``, ``Stopped``) and gauges (``Lag``, ``ParkedOrders``),
    once per window and on a stop."""

    def put(self, values: Mapping[str, float]) -> None: ...


@dataclass
class RelayCounters:
    """What this relay did since it started (``parked``: events it parked)."""

    published: int = 0
    calls: int = 0
    retried: int = 0
    parked: int = 0

    def since(self, before: RelayCounters) -> dict[str, float]:
        """The metrics of what happened since ``before`` (a copy of these counters)."""
        return {
            "PublishedEvents": self.published - before.published,
            "PublishCalls": self.calls - before.calls,
            "RetriedEntries": self.retried - before.retried,
        }


@dataclass(frozen=True)
class RelayStatus:
    """Where the relay ``name`` is: ``position`` (last id published or parked, and recorded),
    the log's ``head``, ``lag`` (head minus position), the lease's ``holder`` and how many
    orders are ``parked``."""

    name: str
    position: int
    head: int
    holder: LeaseTerm | None
    parked: int = 0

    @property
    def lag(self) -> int:
        return self.head - self.position


class RelayError(Exception):
    """The relay stopped; the message says why in one line."""


class UnpublishableEventError(Exception):
    """Notification ``notification_id`` can never be published (its order is parked)."""

    def __init__(self, notification: Notification, reason: str) -> None:
        super().__init__(
            f"notification {notification.id} (stream {notification.originator_id} version "
            f"{notification.originator_version}, {notification.topic}) cannot be published: "
            f"{reason}"
        )
        self.notification_id = notification.id


class LeaseLostError(Exception):
    """Another relay holds the lease now: this one must not publish."""
