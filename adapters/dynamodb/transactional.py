"""The transactional write mode: each save numbers its events in the log, in its transaction.

Contracts (beyond the library's, which they all meet):

- ``insert_events`` is ONE ``TransactWriteItems``: all of it is written, or nothing. Each
  stream's head is updated under the condition that the stream holds no version at or past
  the first one being saved (``attribute_not_exists(v) OR v < :first``); a save rejected by
  it raises :class:`StreamConflictError` with the version found, taken from the cancellation
  reason (``ReturnValuesOnConditionCheckFailure="ALL_OLD"``), not re-read. Versions within
  one save must be distinct (``IntegrityError`` otherwise). Such a stream only grows.
- The events are numbered 1, 2, 3 ... without gaps; one save's ids are contiguous, in the
  order the events were given. The log head is updated in the same transaction under the
  condition that it still holds the number the save started from. When only that condition
  fails (another process's save took the numbers first) the recorder re-numbers from the head
  value returned in the cancellation reason and sends again, for at most
  :data:`RACE_SECONDS`, pausing (:class:`~orders.backoff.Backoff`) between sends without
  holding the lock; a ``TransactionConflict`` is treated the same way, after reading the head
  afresh. Saves through one recorder take turns (a lock), so they do not race each other;
  the lock is given up when botocore is about to pause before sending a call again
  (throttling), so no save waits through another's pause. A cancellation that cannot be
  read raises ``OperationalError``.
- Each save once under unknown outcomes: a transaction sent again by botocore carries the
  same ``ClientRequestToken``, so DynamoDB applies it once and answers as the first time.
- Limits, in this mode's terms: a save takes per stream a head and a batch item per 400 KB,
  a log batch per 400 KB, the log head, and tracking: at most 100 actions and 4 MB, checked
  before anything is sent.
- ``select_notifications`` returns only a gapless run of ids: if a read sees an id whose
  predecessor is not visible yet, it stops before it, so a reader never skips an id that
  commits later.
- The namespace's write mode is recorded by the first save; a writer in the other mode is
  refused (:class:`~adapters.dynamodb.recorders.WriteModeError`) before it writes anything.
- Tracking (process recorders) is written in the same transaction as the events.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    ListenNotifySubscription,
    Notification,
    OperationalError,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
)

from adapters.dynamodb.datastore import DynamoDBDatastore, Item, TransactionCancelled
from adapters.dynamodb.items import (
    EVENTS,
    FIRST,
    NOTIFICATION_ID,
    VERSION,
    batch_item,
    decode_log_event,
    empty_batch_size,
    encode_log_event,
    encode_stream_event,
    head_pk,
    key,
    log_head_pk,
    log_pk,
    number,
    pack,
    stream_pk,
)
from adapters.dynamodb.recorders import (
    CONDITION_FAILED,
    TRANSACTION_CONFLICT,
    DynamoDBTrackingRecorder,
    EventStreams,
    StreamWrite,
    by_stream,
    check_write_mode,
    describe_event,
    found_positions,
    put_new,
    reason_code,
)
from adapters.dynamodb.table import MAX_TRANSACTION_ACTIONS, DynamoDBLimitError
from orders.backoff import Backoff

RACE_SECONDS = 30.0
"""How long one save keeps re-sending after lost races for the log head before it gives up
(``OperationalError``): many processes saving flat out lose many races, none of them an error."""
RACE_BACKOFF = Backoff(base=0.002, cap=0.02)
"""The jittered pause after a lost race for the log head (doubling per try, capped)."""


class _NumberingLock:
    """The lock this process's saves take turns on for the log head, let go early when
    botocore is about to pause before sending a call again (throttling, a transient error),
    so no other save waits through that pause: they number on, and this save's resend, if
    it lost the race meanwhile, is cancelled and numbered again."""

    _NOT_RETRIED = frozenset({"TransactionCanceledException", "ValidationException"})

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder = threading.local()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._lock.acquire()
        self._holder.held = True
        try:
            yield
        finally:
            self.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def release(self) -> None:
        if getattr(self._holder, "held", False):
            self._holder.held = False
            self._lock.release()

    def before_retry(
        self, response: Any = None, caught_exception: object = None, **kwargs: Any
    ) -> None:
        """botocore's ``needs-retry`` hook: if the attempt failed, a pause may follow."""
        if caught_exception is None:
            if response is None or response[0].status_code < 400:
                return
            if response[1].get("Error", {}).get("Code") in self._NOT_RETRIED:
                return
        self.release()


class DynamoDBApplicationRecorder(EventStreams, ApplicationRecorder):
    """Stores streams (head and packed batches) and the application's notification log."""

    def __init__(
        self,
        datastore: DynamoDBDatastore,
        events_namespace: str = "stored_events",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, events_namespace, **kwargs)
        self._log_pk = log_pk(events_namespace)
        self._log_head_key = key(log_head_pk(events_namespace))
        self._log_head_hint = 0
        self._last_log_item: tuple[int, int, Item] | None = None
        """(first id, last id, item) of the log item read last."""
        self._numbering_lock = _NumberingLock()
        datastore.client.meta.events.register(
            "needs-retry.dynamodb.TransactWriteItems",
            self._numbering_lock.before_retry,
            unique_id=f"numbering-lock-{id(self)}",
        )
        self._mode_lock = threading.Lock()
        self._mode_checked = False
        self._listeners: set[threading.Event] = set()
        self._listeners_lock = threading.Lock()

    ids_of_nothing: ClassVar[list[int] | None] = []
    """What saving no events returns (no ids; None where ids are assigned later)."""
    write_mode: ClassVar[str] = "transactional"

    def claim_write_mode(self) -> None:
        """Before this recorder's first write: refuses a namespace written in the other mode
        (:class:`~adapters.dynamodb.recorders.WriteModeError`), records the mode if none is."""
        if self._mode_checked:
            return
        with self._mode_lock:
            if not self._mode_checked:
                check_write_mode(self.datastore, self.events_namespace, self.write_mode)
                self._mode_checked = True

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._insert(stored_events, []) if stored_events else self.ids_of_nothing

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        expected = 1 if start is None else max(1, start if inclusive_of_start else start + 1)
        if limit < 1 or (stop is not None and stop < expected):
            return []
        results: list[Notification] = []
        for item in self._log_items(expected, limit):
            first_id = int(item[FIRST]["N"])
            if first_id > expected:
                break  # A save before this one committed but is not visible yet.
            self._last_log_item = (first_id, int(item["sk"]["N"]), item)
            elements = item[EVENTS]["L"]
            for offset in range(expected - first_id, len(elements)):
                notification_id = first_id + offset
                if stop is not None and notification_id > stop:
                    return results
                notification = decode_log_event(notification_id, elements[offset])
                if not topics or notification.topic in topics:
                    results.append(notification)
                    if len(results) == limit:
                        return results
            expected = int(item["sk"]["N"]) + 1
        return results

    def _log_items(self, first: int, limit: int) -> Iterator[Item]:
        """The log batch items from the one holding id ``first``, read lazily.

        Log items never change once written, so the one read last is kept: a reader going on
        from inside it (a relay reading 100 events of a 900-event item) reads nothing. Pages
        are sized to the items ``limit`` events likely take (as many as the last item held),
        since DynamoDB reads whole items, up to 1 MB a page.
        """
        last = self._last_log_item
        if last is not None and last[0] <= first <= last[1]:
            yield last[2]
            first = last[1] + 1
        per_item = len(last[2][EVENTS]["L"]) if last is not None else 1
        values = {":pk": {"S": self._log_pk}, ":first": number(first)}
        page_size = max(1, -(-limit // per_item))
        yield from self.datastore.query("pk = :pk AND sk >= :first", values, page_size=page_size)

    def max_notification_id(self) -> int | None:
        return self._read_log_head() or None

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return DynamoDBSubscription(self, gt=gt, topics=topics)

    def listen(self, event: threading.Event) -> None:
        """Sets ``event`` after every save this recorder commits."""
        with self._listeners_lock:
            self._listeners.add(event)

    def unlisten(self, event: threading.Event) -> None:
        with self._listeners_lock:
            self._listeners.discard(event)

    def _insert(self, stored_events: Sequence[StoredEvent], extra: list[Item]) -> list[int] | None:
        """Writes the events, their log entries and the ``extra`` actions in one transaction,
        re-numbering after a lost race for the log head; returns the events' ids."""
        streams = [self._stream_write(events) for events in by_stream(stored_events)]
        stream_actions = [action for stream in streams for action in stream.actions]
        log_batches = pack(
            stored_events, encode_log_event, empty_batch_size(self._log_pk), describe_event
        )
        what = f"insert_events of {len(stored_events)} events in {len(streams)} streams"
        actions = len(stream_actions) + len(log_batches) + 1 + len(extra)
        if actions > MAX_TRANSACTION_ACTIONS:
            what += (
                " (the transactional mode writes per stream a head and a batch item per 400 KB,"
                " a log batch per 400 KB, the log head and tracking in one transaction)"
            )
            raise DynamoDBLimitError("transaction actions", actions, MAX_TRANSACTION_ACTIONS, what)
        self.claim_write_mode()
        # The log head admits one save at a time: this process's saves queue here rather
        # than race each other for it (races with other processes are re-numbered, after a
        # pause taken outside the lock).
        deadline = time.monotonic() + RACE_SECONDS
        attempt = 0
        while True:
            attempt += 1
            with self._numbering_lock.held():
                position = self._log_head_hint
                log_actions = self._log_actions(log_batches, position)
                try:
                    self.datastore.transact_write(stream_actions + log_actions + extra, what)
                except TransactionCancelled as e:
                    if len(e.reasons) != actions:
                        msg = f"{what}: cancelled by DynamoDB without reasons ({e})"
                        raise OperationalError(msg) from None
                    log_head = e.reasons[-len(extra) - 1]
                    if reason_code(log_head) == CONDITION_FAILED:
                        # Keep the head DynamoDB returned even if the save is refused for its
                        # version: the caller's retry then numbers right the first time.
                        self._log_head_hint = _log_head_value(log_head)
                    self._raise_unless_race(e.reasons, streams, len(extra), what)
                    if reason_code(log_head) != CONDITION_FAILED:
                        self._log_head_hint = self._read_log_head()  # No item came back.
                else:
                    self._log_head_hint = position + len(stored_events)
                    break
            if time.monotonic() > deadline:
                msg = f"{what}: lost the race for the log head {attempt} times in {RACE_SECONDS} s"
                raise OperationalError(msg)
            RACE_BACKOFF.pause(attempt, time.sleep)
        self._notify_listeners()
        return list(range(position + 1, position + len(stored_events) + 1))

    def _stream_write(self, events: list[StoredEvent]) -> StreamWrite:
        """The head update (checking the expected version) and the batches of one stream."""
        versions = [e.originator_version for e in events]
        originator_id = events[0].originator_id
        head: Item = {
            "Update": {
                "Key": key(head_pk(self.events_namespace, originator_id)),
                "UpdateExpression": "SET #v = :last",
                "ConditionExpression": "attribute_not_exists(#v) OR #v < :first",
                "ExpressionAttributeNames": {"#v": VERSION},
                "ExpressionAttributeValues": {
                    ":last": number(versions[-1]),
                    ":first": number(versions[0]),
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        pk = stream_pk(self.events_namespace, originator_id)
        actions = [head]
        start = 0
        for batch in pack(events, encode_stream_event, empty_batch_size(pk), describe_event):
            end = start + len(batch) - 1
            actions.append(put_new(batch_item(pk, versions[start], versions[end], batch)))
            start = end + 1
        return StreamWrite(originator_id, versions[0], actions)

    def _log_actions(self, log_batches: list[list[Item]], position: int) -> list[Item]:
        """The log batches numbered from ``position + 1``, and the log head update."""
        actions = []
        next_id = position + 1
        for batch in log_batches:
            last_id = next_id + len(batch) - 1
            actions.append(put_new(batch_item(self._log_pk, next_id, last_id, batch)))
            next_id = last_id + 1
        head: Item = {
            "Key": self._log_head_key,
            "UpdateExpression": "SET #n = :last",
            "ExpressionAttributeNames": {"#n": NOTIFICATION_ID},
            "ExpressionAttributeValues": {":last": number(next_id - 1)},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if position:
            head["ConditionExpression"] = "#n = :position"
            head["ExpressionAttributeValues"][":position"] = number(position)
        else:
            head["ConditionExpression"] = "attribute_not_exists(#n)"
        actions.append({"Update": head})
        return actions

    @staticmethod
    def _raise_unless_race(
        reasons: Sequence[Mapping[str, Any]],
        streams: list[StreamWrite],
        num_extra: int,
        what: str,
    ) -> None:
        """Raises what a cancellation means, unless it only lost a race for the log head."""
        index = 0
        for stream in streams:
            reason = reasons[index]
            if reason_code(reason) == CONDITION_FAILED:
                item = reason.get("Item")
                raise stream.conflict(int(item[VERSION]["N"]) if item else None)
            index += len(stream.actions)
        extra = reasons[len(reasons) - num_extra :] if num_extra else []
        if any(reason_code(r) == CONDITION_FAILED for r in extra):
            msg = f"{what}: tracking position already recorded (found {found_positions(extra)})"
            raise IntegrityError(msg)
        codes = [reason_code(r) for r in reasons]
        log_head = codes[len(codes) - num_extra - 1]
        if log_head == CONDITION_FAILED or TRANSACTION_CONFLICT in codes:
            return
        if CONDITION_FAILED in codes:
            raise IntegrityError(f"{what}: rejected by DynamoDB ({codes})")
        raise OperationalError(f"{what}: cancelled by DynamoDB ({codes})")

    def _read_log_head(self) -> int:
        item = self.datastore.get_item(self._log_head_key)
        return int(item[NOTIFICATION_ID]["N"]) if item else 0

    def _notify_listeners(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.set()


class DynamoDBSubscription(ListenNotifySubscription[DynamoDBApplicationRecorder]):
    """Notifications after ``gt``: at once for saves through the same recorder, otherwise
    within the datastore's ``poll_interval``."""

    def __init__(
        self,
        recorder: DynamoDBApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        self._stopping = threading.Event()
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        recorder.listen(self._has_been_notified)
        self._poll_thread = threading.Thread(target=self._poll, daemon=True)
        self._poll_thread.start()

    def _poll(self) -> None:
        while not self._stopping.wait(self._recorder.datastore.poll_interval):
            self._has_been_notified.set()

    def stop(self) -> None:
        super().stop()
        self._stopping.set()
        self._recorder.unlisten(self._has_been_notified)

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._poll_thread.join()


class DynamoDBProcessRecorder(
    DynamoDBTrackingRecorder, DynamoDBApplicationRecorder, ProcessRecorder
):
    """An application recorder whose saves can carry tracking, in the same transaction."""

    def __init__(
        self,
        datastore: DynamoDBDatastore,
        events_namespace: str = "stored_events",
        tracking_namespace: str = "notification_tracking",
    ) -> None:
        super().__init__(
            datastore, tracking_namespace=tracking_namespace, events_namespace=events_namespace
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        if not stored_events:
            if tracking is not None:
                self.insert_tracking(tracking)
            return self.ids_of_nothing
        extra = [self.tracking_action(tracking)] if tracking is not None else []
        return self._insert(stored_events, extra)


def _log_head_value(reason: Mapping[str, Any]) -> int:
    """The log head's last id as a failed condition returned it (``ALL_OLD``); 0 if absent."""
    item = reason.get("Item")
    return int(item[NOTIFICATION_ID]["N"]) if item else 0
