"""Per-order parking: where a worker sets aside an order whose event it cannot handle.

A worker of the log (the relay, a projection runner) that meets an event it can never publish
or project parks that event's order: the event, and every later event of the order, wait in
the order's :class:`ParkedOrder` record, in log order, while the worker goes on with every other
order (Axon's sequenced dead letters). The worker's position may then move past the parked
events, because they are recorded (with their notification ids) before it does: nothing is
skipped without a trace. An operator asks for a :attr:`Request.RETRY` (after a fix: the worker
handles the parked events once, in order, and releases the order) or a :attr:`Request.SKIP`
(with a reason: the events are dropped, recorded in :meth:`ParkingLot.skipped`, and the order's
later events flow again).

:class:`ParkingLot` is the port, one lot per worker. Its adapters keep it where the worker keeps
its position: the relay's in the event store's database (``adapters.local.parking`` on SQLite,
``adapters.dynamodb.parking``), a runner's in its view (:class:`ViewParking`, written in the
same commit as the rows and the position).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from eventsourcing.persistence import ApplicationRecorder, Notification

from projections.ports import (
    Delete,
    PositionConflictError,
    Put,
    Row,
    RowConflictError,
    ViewStore,
    ViewStoreError,
)
from projections.rows import Rows


class Request(StrEnum):
    """What an operator asked the worker to do with a parked order."""

    RETRY = "retry"
    SKIP = "skip"


@dataclass(frozen=True)
class ParkedOrder:
    """``order_id``'s events ``notification_ids`` (in log order) wait; ``reason`` says why the
    first (or the last retried) could not be handled. ``request`` and ``note`` (a skip's reason)
    are what an operator asked, until the worker applies it."""

    order_id: str
    notification_ids: tuple[int, ...]
    reason: str
    parked_at: float
    request: Request | None = None
    note: str | None = None


@dataclass(frozen=True)
class SkippedOrder:
    """``order_id``'s events ``notification_ids`` were skipped on request, because ``note``."""

    order_id: str
    notification_ids: tuple[int, ...]
    reason: str
    note: str
    skipped_at: float


class NotParkedError(LookupError):
    """``order_id`` is not parked by this worker."""

    def __init__(self, worker: str, order_id: str) -> None:
        super().__init__(f"order {order_id} is not parked by {worker}")
        self.order_id = order_id


class ParkingLot(ABC):
    """The parked orders of one worker, named ``worker``. Only the worker itself (the one
    holding its lease or position) calls :meth:`park` and :meth:`release`; anyone may
    :meth:`ask`. Each call is atomic and durable when it returns."""

    worker: str

    @abstractmethod
    def parked(self) -> list[ParkedOrder]:
        """Every order parked now, the earliest parked notification first."""

    @abstractmethod
    def park(
        self,
        order_id: str,
        notification_ids: Sequence[int],
        reason: str,
        *,
        keep_request: bool = True,
    ) -> None:
        """Makes ``notification_ids`` (all of them, in log order) the order's parked events
        and ``reason`` its reason, creating the record if the order was not parked; a pending
        request stays unless ``keep_request`` is False (a retry that failed again)."""

    @abstractmethod
    def ask(self, order_id: str, request: Request, note: str | None = None) -> ParkedOrder:
        """Records ``request`` (and ``note``) on the parked order; the record as it is now.

        Raises :class:`NotParkedError` if the order is not parked.
        """

    @abstractmethod
    def release(self, order_id: str, *, skipped: str | None = None) -> None:
        """Forgets the parked order (handled, or with ``skipped`` set: dropped for that reason
        and recorded in :meth:`skipped`). Nothing if it is not parked."""

    @abstractmethod
    def skipped(self) -> list[SkippedOrder]:
        """Every order skipped, in the order it was skipped."""


PARKED = "~parked"
"""The partition of a view holding its runner's parked orders, keyed by order id."""
SKIPPED = "~skipped"
"""The partition of a view holding its runner's skipped orders, keyed by time and order."""


def parked_row_data(parked: ParkedOrder) -> dict[str, object]:
    """A parked order as a view row's data (:class:`ViewParking` and the runner's batches)."""
    return {
        "ids": list(parked.notification_ids),
        "reason": parked.reason,
        "at": repr(parked.parked_at),
        "request": parked.request.value if parked.request else None,
        "note": parked.note,
    }


def parked_from_row(row: Row) -> ParkedOrder:
    data = row.data
    return ParkedOrder(
        row.key,
        tuple(int(n) for n in data["ids"]),
        str(data["reason"]),
        float(data["at"]),
        Request(data["request"]) if data.get("request") else None,
        data.get("note"),
    )


class ViewParking(ParkingLot):
    """The parking of the runner writing ``view`` in ``store``: rows of that view (so a
    retired generation is dropped with its parking), partition :data:`PARKED` keyed by order
    id, partition :data:`SKIPPED` keyed by the time and the order. Every write is conditioned
    on the row's version, so an operator's request and a runner's batch never overwrite each
    other (the loser fails whole and reads again)."""

    def __init__(self, store: ViewStore, view: str) -> None:
        self.store = store
        self.worker = view
        self.view = view

    def _row(self, order_id: str) -> Row | None:
        return self.store.get(self.view, PARKED, order_id)

    def parked(self) -> list[ParkedOrder]:
        records = [parked_from_row(row) for row in self._rows(PARKED)]
        return sorted(records, key=lambda parked: parked.notification_ids[:1])

    def _rows(self, partition: str) -> list[Row]:
        rows: list[Row] = []
        after: str | None = None
        while True:
            page = self.store.query(self.view, partition, after=after, limit=100)
            rows.extend(page.rows)
            if page.next_key is None:
                return rows
            after = page.next_key

    def park(
        self,
        order_id: str,
        notification_ids: Sequence[int],
        reason: str,
        *,
        keep_request: bool = True,
    ) -> None:
        row = self._row(order_id)
        before = parked_from_row(row) if row else None
        parked = ParkedOrder(
            order_id,
            tuple(notification_ids),
            reason,
            before.parked_at if before else time.time(),
            before.request if before and keep_request else None,
            before.note if before and keep_request else None,
        )
        self._put(parked, row)

    def _put(self, parked: ParkedOrder, row: Row | None) -> None:
        version = row.version if row else 0
        data = parked_row_data(parked)
        self.store.commit(
            [Put(Row(self.view, PARKED, parked.order_id, data, version + 1), version)]
        )

    def ask(self, order_id: str, request: Request, note: str | None = None) -> ParkedOrder:
        row = self._row(order_id)
        if row is None:
            raise NotParkedError(self.worker, order_id)
        before = parked_from_row(row)
        parked = ParkedOrder(
            order_id, before.notification_ids, before.reason, before.parked_at, request, note
        )
        self._put(parked, row)
        return parked

    def release(self, order_id: str, *, skipped: str | None = None) -> None:
        row = self._row(order_id)
        if row is None:
            return
        self.store.commit(release_changes(self.view, row, skipped))

    def skipped(self) -> list[SkippedOrder]:
        return [
            SkippedOrder(
                str(row.data["order"]),
                tuple(int(n) for n in row.data["ids"]),
                str(row.data["reason"]),
                str(row.data["note"]),
                float(row.data["at"]),
            )
            for row in self._rows(SKIPPED)
        ]


def release_changes(view: str, row: Row, skipped: str | None) -> list[Put | Delete]:
    """The changes that forget parked ``row`` of parking view ``view`` (recording it as
    skipped for reason ``skipped``, if given)."""
    changes: list[Put | Delete] = [Delete(view, PARKED, row.key, expected_version=row.version)]
    if skipped is not None:
        parked = parked_from_row(row)
        now = time.time()
        data = {
            "order": parked.order_id,
            "ids": list(parked.notification_ids),
            "reason": parked.reason,
            "note": skipped,
            "at": repr(now),
        }
        key = f"{now:020.6f}#{parked.order_id}"
        changes.append(Put(Row(view, SKIPPED, key, data), expected_version=0))
    return changes


class Unhandled(Exception):  # noqa: N818 - the order is parked, not an error of the caller
    """``order``'s event ``notification`` could not be projected, because ``error``."""

    def __init__(self, order: str, notification: Notification | None, error: object) -> None:
        reason = str(error) if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if notification is not None:
            where = f"version {notification.originator_version}, {notification.topic}"
            reason = f"notification {notification.id} ({where}): {reason}"
        super().__init__(reason)
        self.order = order
        self.reason = reason


def refused_rows(error: ViewStoreError) -> str:
    """Why an order is parked when the view store refuses its rows as data."""
    return f"the view store refused its rows: {type(error).__name__}: {error}"


def retry(
    store: ViewStore,
    view: str,
    order: str,
    recorder: ApplicationRecorder,
    project: Callable[[Notification, Rows], None],
) -> None:
    """Applies ``order``'s parked events in ``view`` with ``project`` once, in order, and
    releases the order, in one commit conditioned on the rows read (a
    :class:`~projections.ports.RowConflictError` means: read again and retry). If an event
    fails (:class:`Unhandled`), those before it are applied and the rest stay parked with the
    new reason; either way the request is cleared. Nothing if no retry is pending."""
    rows = Rows(store, view)
    row = rows.get(PARKED, order)
    if row is None or parked_from_row(row).request is not Request.RETRY:
        return
    parked = parked_from_row(row)
    notifications = [recorder.select_notifications(n, 1)[0] for n in parked.notification_ids]
    done, reason = 0, None
    for notification in notifications:
        try:
            project(notification, rows)
        except Unhandled as bad:
            reason = bad.reason
            break
        done += 1
    if reason is not None:  # apply those before the failing one, on a fresh copy
        rows = Rows(store, view)
        rows.get(PARKED, order)
        for notification in notifications[:done]:
            project(notification, rows)
        left = ParkedOrder(order, parked.notification_ids[done:], reason, parked.parked_at)
        rows.put(PARKED, order, parked_row_data(left), row.version + 1)
    else:
        rows.delete(PARKED, order)
    try:
        store.commit(rows.changes())
    except (RowConflictError, PositionConflictError):
        raise
    except ViewStoreError as error:
        ViewParking(store, view).park(
            order, parked.notification_ids, refused_rows(error), keep_request=False
        )
