"""One window of the relay: the notifications it read, queued per order, and what became of them.

A notification of the window is either an :class:`~adapters.relay.ports.Entry` to publish,
queued behind the earlier entries of its order, or parked (its order is parked). The relay's
position may move to the end of the window's *handled* prefix: every notification up to it was
accepted by the bus or parked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from adapters.relay.ports import Entry


class Window:
    """The notifications of one window; ``more`` if the log may hold more after them."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.last_read: int | None = None
        self.more = False
        self._read: list[int] = []
        self._queues: dict[str, deque[Entry]] = {}
        self._handled: set[int] = set()

    def add(self, entry: Entry) -> None:
        """Queues ``entry`` behind the earlier entries of its order."""
        self.entries.append(entry)
        self._read.append(entry.notification_id)
        self._queues.setdefault(str(entry.notification.originator_id), deque()).append(entry)
        self.last_read = entry.notification_id

    def parked(self, notification_id: int) -> None:
        """Notes that ``notification_id`` was read and parked (its order waits)."""
        self._read.append(notification_id)
        self._handled.add(notification_id)
        self.last_read = notification_id

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

    def accept(self, entry: Entry) -> None:
        order = str(entry.notification.originator_id)
        queue = self._queues[order]
        queue.popleft()
        if not queue:
            del self._queues[order]
        self._handled.add(entry.notification_id)

    def park(self, order_id: str) -> Sequence[Entry]:
        """Takes the order's pending entries out of the window (its first one could not be
        published); they count as handled once the caller has parked them."""
        entries = list(self._queues.pop(order_id, ()))
        self._handled.update(entry.notification_id for entry in entries)
        return entries

    def handled_up_to(self, position: int) -> int | None:
        """The last id of the handled prefix of the window (None if not past ``position``)."""
        last = None
        for notification_id in self._read:
            if notification_id not in self._handled:
                break
            last = notification_id
        return last if last is not None and last > position else None


def _notification_id(entry: Entry) -> int:
    return entry.notification_id
