"""The relay's parked orders: its parking lot as of its last read, and what it parked since.

An order is parked (:mod:`projections.parking`) when one of its events cannot be published;
its later events join it, in log order. :meth:`ParkedOrders.save` writes what was parked in a
window before the relay records a position past it. :meth:`ParkedOrders.settle` applies the
operators' requests: a skip releases the order with its reason, a retry publishes its parked
events once, in order, and releases it (or parks what is left, with the new reason).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from eventsourcing.persistence import ApplicationRecorder, Notification

from adapters.relay.ports import RelayCounters
from projections.parking import ParkedOrder, ParkingLot, Request

log = logging.getLogger(__name__)

PublishAlone = Callable[[Notification], "str | None"]
"""Publishes one notification; None once the bus accepted it, else why it cannot be."""


class ParkedOrders:
    """The parked orders of relay ``name`` in ``lot``; ``counters.parked`` counts the events
    parked."""

    def __init__(
        self,
        lot: ParkingLot,
        name: str,
        counters: RelayCounters,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lot = lot
        self.name = name
        self.counters = counters
        self.clock = clock
        self._parked: dict[str, ParkedOrder] = {}
        self._changed: set[str] = set()

    def __contains__(self, order: str) -> bool:
        return order in self._parked

    def __len__(self) -> int:
        return len(self._parked)

    def add(self, order: str, notification_ids: Sequence[int], reason: str | None = None) -> None:
        """Parks ``notification_ids`` of ``order`` (in memory until :meth:`save`); ``reason``
        is required when the order was not parked."""
        parked = self._parked.get(order)
        if parked is None:
            if reason is None:
                msg = f"order {order} is not parked: a reason is needed to park it"
                raise ValueError(msg)
            parked = ParkedOrder(order, (), reason, self.clock())
            log.error("relay %s: parked order %s: %s", self.name, order, reason)
        ids = tuple(sorted({*parked.notification_ids, *notification_ids}))
        self._parked[order] = replace(parked, notification_ids=ids, reason=reason or parked.reason)
        self._changed.add(order)
        self.counters.parked += len(notification_ids)

    def save(self) -> None:
        """Writes every order parked (or added to) since the last save."""
        for order in sorted(self._changed):
            parked = self._parked[order]
            self.lot.park(order, parked.notification_ids, parked.reason)
        self._changed.clear()

    def settle(self, recorder: ApplicationRecorder, publish: PublishAlone) -> None:
        """Reads the lot again, then applies each pending request (see the module docstring)."""
        self._changed.clear()
        self._parked = {parked.order_id: parked for parked in self.lot.parked()}
        for parked in list(self._parked.values()):
            if parked.request is Request.SKIP:
                note = parked.note or "skipped"
                self.lot.release(parked.order_id, skipped=note)
                del self._parked[parked.order_id]
                log.warning("relay %s: skipped order %s: %s", self.name, parked.order_id, note)
            elif parked.request is Request.RETRY:
                self._retry(parked, recorder, publish)

    def _retry(
        self, parked: ParkedOrder, recorder: ApplicationRecorder, publish: PublishAlone
    ) -> None:
        left = list(parked.notification_ids)
        reason = None
        while left and reason is None:
            (notification,) = recorder.select_notifications(start=left[0], limit=1)
            reason = publish(notification)
            if reason is None:
                left.pop(0)
        order = parked.order_id
        if reason is None:
            self.lot.release(order)
            del self._parked[order]
            log.info("relay %s: order %s published and released", self.name, order)
            return
        self.lot.park(order, left, reason, keep_request=False)
        self._parked[order] = replace(
            parked, notification_ids=tuple(left), reason=reason, request=None, note=None
        )
        log.error("relay %s: order %s still cannot be published: %s", self.name, order, reason)
