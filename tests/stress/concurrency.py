"""Tools of the stress tests: run workers in threads, watch saves, follow the log, read it back.

Everything here observes the store from outside (a wrapper around ``insert_events``, the
recorder's own reads, a raw ``Query`` of the table); nothing changes what the store does.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from unittest import mock
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent

from adapters.dynamodb.items import (
    EVENTS,
    FIRST,
    NOTIFICATION_ID,
    VERSION,
    decode_log_event,
    decode_stream_event,
    head_pk,
    key,
    log_head_pk,
    log_pk,
    stream_pk,
)
from adapters.dynamodb.transactional import DynamoDBApplicationRecorder
from orders import OrderLine

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def recorder_of(app: Application[UUID]) -> DynamoDBApplicationRecorder:
    """The application's recorder, which must be the DynamoDB one."""
    recorder = app.recorder
    if not isinstance(recorder, DynamoDBApplicationRecorder):
        msg = f"expected the DynamoDB application recorder, got {type(recorder).__name__}"
        raise TypeError(msg)
    return recorder


def unique_lines(worker: int, command: int, part: int = 0) -> tuple[OrderLine, ...]:
    """One order line whose sku names ``(worker, command, part)``, so each change is traceable."""
    return (OrderLine(sku_of(worker, command, part), 1, Decimal("1.00")),)


def sku_of(worker: int, command: int, part: int = 0) -> str:
    return f"w{worker}-c{command}-p{part}"


def run_workers(
    workers: int, commands: int, command: Callable[[int, int], None], *, timeout: float
) -> dict[int, BaseException]:
    """Runs ``command(worker, i)`` for i in 0..commands-1 in each of ``workers`` threads.

    The threads are released together. A worker stops at its first exception; returns the
    exception of each worker that raised. Raises ``TimeoutError`` if the workers have not
    finished within ``timeout`` seconds (they are told to stop after their current command).
    """
    barrier = threading.Barrier(workers)
    stopping = threading.Event()
    failures: dict[int, BaseException] = {}

    def run(worker: int) -> None:
        try:
            barrier.wait(timeout)
            for i in range(commands):
                if stopping.is_set():
                    return
                command(worker, i)
        except BaseException as error:
            failures[worker] = error

    threads = [threading.Thread(target=run, args=(w,), name=f"worker-{w}") for w in range(workers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [thread.name for thread in threads if thread.is_alive()]
    if late:
        stopping.set()
        for thread in threads:
            thread.join()
        msg = f"{', '.join(late)} did not finish within {timeout} s"
        raise TimeoutError(msg)
    return failures


@dataclass
class SaveWatch:
    """Records every ``insert_events`` call of the recorders it watches, from every thread.

    ``committed`` holds each save that returned, with the notification ids it returned;
    ``conflicts`` the ``IntegrityError`` of each rejected save, by thread; ``other_errors``
    anything else a save raised.
    """

    committed: list[tuple[list[StoredEvent], list[int]]] = field(default_factory=list)
    conflicts: dict[int, list[IntegrityError]] = field(default_factory=dict)
    other_errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def watching(self, recorder: DynamoDBApplicationRecorder) -> Iterator[None]:
        """Watches ``recorder`` while the block runs (its behaviour is unchanged)."""
        insert_events = recorder.insert_events

        def watched(stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
            try:
                ids = insert_events(stored_events, **kwargs)
            except IntegrityError as conflict:
                with self._lock:
                    self.conflicts.setdefault(threading.get_ident(), []).append(conflict)
                raise
            except BaseException as error:
                with self._lock:
                    self.other_errors.append(error)
                raise
            with self._lock:
                self.committed.append((list(stored_events), list(ids or [])))
            return ids

        with mock.patch.object(recorder, "insert_events", new=watched):
            yield

    def conflicts_of_this_thread(self) -> int:
        with self._lock:
            return len(self.conflicts.get(threading.get_ident(), []))

    def all_conflicts(self) -> list[IntegrityError]:
        with self._lock:
            return [conflict for errors in self.conflicts.values() for conflict in errors]


class LogFollower:
    """A reader polling the notification log while writers run, as a projection would.

    It asks for the ids after the last one it saw and records any answer that does not start
    right after it or is not contiguous (``jumps``): a reader must never skip an id that a
    slower save commits later. It stops once ``stop()`` was called and it read up to the
    log head.
    """

    def __init__(self, recorder: DynamoDBApplicationRecorder, *, page_size: int = 50) -> None:
        self.recorder = recorder
        self.page_size = page_size
        self.seen: list[Notification] = []
        self.jumps: list[tuple[int, list[int]]] = []
        self.reads = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="log-follower", daemon=True)

    def __enter__(self) -> LogFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(timeout=60.0)

    def stop(self, *, timeout: float) -> None:
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            msg = f"the log follower did not catch up within {timeout} s"
            raise TimeoutError(msg)

    def _follow(self) -> None:
        try:
            while True:
                stopping = self._stopping.is_set()
                last = self.seen[-1].id if self.seen else 0
                page = self.recorder.select_notifications(last + 1, self.page_size)
                self.reads += 1
                ids = [n.id for n in page]
                if ids != list(range(last + 1, last + 1 + len(ids))):
                    self.jumps.append((last, ids))
                self.seen.extend(page)
                if stopping and not page and last == (self.recorder.max_notification_id() or 0):
                    return
                if not page:
                    time.sleep(0.005)
        except BaseException as error:
            self.error = error


@dataclass(frozen=True)
class RawTable:
    """The store's items read with a plain client, decoded with the store's own item helpers."""

    client: DynamoDBClient
    table_name: str
    namespace: str

    def stream(self, originator_id: UUID) -> list[StoredEvent]:
        """The events stored in the stream's batch items, in key order."""
        return [
            decode_stream_event(originator_id, encoded)
            for item in self.items(stream_pk(self.namespace, originator_id))
            for encoded in item[EVENTS]["L"]
        ]

    def stream_head(self, originator_id: UUID) -> int:
        return self.number(head_pk(self.namespace, originator_id), VERSION)

    def log(self) -> list[Notification]:
        """The notifications stored in the log's batch items, ids from each item's keys.

        Raises ``AssertionError`` if an item's events do not exactly fill its id range.
        """
        notifications = []
        for item in self.items(log_pk(self.namespace)):
            first, last = int(item[FIRST]["N"]), int(item["sk"]["N"])
            encoded = item[EVENTS]["L"]
            assert len(encoded) == last - first + 1, (first, last, len(encoded))
            notifications += [decode_log_event(first + i, e) for i, e in enumerate(encoded)]
        return notifications

    def log_head(self) -> int:
        return self.number(log_head_pk(self.namespace), NOTIFICATION_ID)

    def items(self, pk: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def number(self, pk: str, attribute: str) -> int:
        response = self.client.get_item(TableName=self.table_name, Key=key(pk), ConsistentRead=True)
        return int(response["Item"][attribute]["N"])


def identity(event: StoredEvent) -> tuple[str, int, str, bytes]:
    """What makes a stored event itself: stream, version, topic and state."""
    return (str(event.originator_id), event.originator_version, event.topic, event.state)


def repeated(values: Sequence[object]) -> list[object]:
    """The values that occur more than once in ``values``."""
    return sorted((v for v, n in Counter(values).items() if n > 1), key=repr)
