"""The runner's read-ahead: the next page of the log, read in a thread while a batch commits."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass, field

from eventsourcing.persistence import ApplicationRecorder, Notification


@dataclass
class _Ahead:
    """A read for the batch after the current one. Once the current batch is committed,
    ``start`` is the next notification the runner needs and ``left`` those of the batch not
    committed; the read continues from them. Until then (and if the batch failed) ``start``
    is None, and the runner reads afresh."""

    view: str
    until: int | None
    read: concurrent.futures.Future[Sequence[Notification]]
    start: int | None = None
    left: list[Notification] = field(default_factory=list)


class ReadAhead:
    """Reads ``recorder``'s log ``batch_size`` notifications at a time; after a full read, the
    next one starts in a thread of its own (the store serves it while the runner applies and
    commits the current batch)."""

    def __init__(self, recorder: ApplicationRecorder, batch_size: int) -> None:
        self.recorder = recorder
        self.batch_size = batch_size
        self._ahead: _Ahead | None = None
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None

    def read(self, view: str, start: int, until: int | None) -> list[Notification]:
        """The notifications from ``start`` (none past ``until``) for ``view``: what was read
        ahead for exactly this, else a read now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and (ahead.view, ahead.start, ahead.until) == (view, start, until):
            notifications = [*ahead.left, *ahead.read.result()]
        else:
            notifications = list(self._select(start, until))
        if len(notifications) >= self.batch_size:
            if self._reader is None:
                self._reader = concurrent.futures.ThreadPoolExecutor(1, "log-read-ahead")
            read = self._reader.submit(self._select, notifications[-1].id + 1, until)
            self._ahead = _Ahead(view, until, read)
        return notifications

    def committed(self, notifications: Sequence[Notification], position: int) -> None:
        """The batch ``notifications`` was committed up to ``position``: the read ahead
        continues from there."""
        if self._ahead is not None:
            self._ahead.left = [n for n in notifications if n.id > position]
            self._ahead.start = position + 1

    def _select(self, start: int, until: int | None) -> Sequence[Notification]:
        return self.recorder.select_notifications(start=start, limit=self.batch_size, stop=until)
