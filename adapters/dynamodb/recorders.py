"""The ``eventsourcing`` recorders on DynamoDB: aggregate, application, tracking, process.

Contracts (beyond the library's, which they all meet):

- Two write modes (``DYNAMODB_WRITE_MODE``) share one log format for readers:
  ``transactional`` (:class:`DynamoDBApplicationRecorder`, :class:`DynamoDBProcessRecorder`)
  numbers the log in the save's transaction; ``indexed``
  (:class:`DynamoDBIndexedApplicationRecorder`, :class:`DynamoDBIndexedProcessRecorder`)
  writes only the streams and leaves the log to :mod:`adapters.dynamodb.indexer`.
- Transactional: ``insert_events`` is ONE ``TransactWriteItems``: all of it is written, or
  nothing. Each stream's head is updated under the condition that the stream holds no version
  at or past the first one being saved (``attribute_not_exists(v) OR v < :first``); a save
  rejected by it raises :class:`StreamConflictError` with the version found, taken from the
  cancellation reason (``ReturnValuesOnConditionCheckFailure="ALL_OLD"``), not re-read.
  Versions within one save must be distinct (``IntegrityError`` otherwise). Such a stream
  only grows: a version lower than the highest stored is rejected even if it is free,
  which is what expected-version concurrency means for aggregates.
- Transactional recorders number the events 1, 2, 3 ... without gaps; one save's ids are
  contiguous, in the order the events were given. The log head is updated in the same
  transaction under the condition that it still holds the number the save started from.
  When only that condition fails (another process's save took the numbers first) the
  recorder re-numbers from the head value returned in the cancellation reason and sends
  again, for at most :data:`RACE_SECONDS`, pausing (jittered, capped) between sends
  without holding the lock; a ``TransactionConflict`` cancellation is treated the same way,
  after reading the head afresh. Saves through one recorder take turns (a lock), so they do
  not race each other. A cancellation that cannot be read raises ``OperationalError``.
- Indexed: every event is an item of its own keyed by its version, put under
  ``attribute_not_exists``, so a save based on any stored version (the last or an earlier
  one) collides with the item of the version after it: the expected-version check is exact.
  A 1-event save is ONE ``PutItem`` (1 WCU per started KB); a save of several events or
  streams is ONE ``TransactWriteItems`` of such puts (at most 100 events, checked before
  sending). No item is shared between streams. A rejected save raises
  :class:`StreamConflictError` with the version it collided with as the version found (the
  stream holds at least that). ``insert_events`` returns ``None``: the indexer assigns ids.
- ``select_notifications`` returns only a gapless run of ids: if a read sees an id whose
  predecessor is not visible yet, it stops before it, so a reader never skips an id that
  commits later (ids are only taken by committed writes, so the gap fills). A ``Query`` may
  see part of a transaction, so a write of more than one log batch (over 400 KB) can become
  visible a batch at a time, in order.
- The aggregate recorder (the snapshot store) keeps one item per event with no head:
  any version not stored yet is accepted, in any order, as on Postgres.
- Tracking (process recorders) is written in the same transaction as the events, under the
  condition that the stored position is lower.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar, NoReturn
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    IntegrityError,
    ListenNotifySubscription,
    Notification,
    OperationalError,
    ProcessRecorder,
    Recorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)

from adapters.dynamodb.datastore import (
    ConditionFailed,
    DynamoDBDatastore,
    Item,
    TransactionCancelled,
)
from adapters.dynamodb.items import (
    EVENTS,
    FIRST,
    LAST,
    NOTIFICATION_ID,
    VERSION,
    batch_item,
    decode_log_event,
    decode_stream_event,
    empty_batch_size,
    encode_log_event,
    encode_stream_event,
    first_keyed_batch_item,
    head_pk,
    key,
    log_head_pk,
    log_pk,
    number,
    pack,
    stream_pk,
    tracking_pk,
)

RACE_SECONDS = 30.0
"""How long one save keeps re-sending after lost races for the log head before it gives up
(``OperationalError``): many processes saving flat out lose many races, none of them an error."""
RACE_PAUSE_SECONDS = 0.002
"""Base of the jittered pause after a lost race for the log head (doubling per try)."""
RACE_PAUSE_MAX_SECONDS = 0.02
"""Cap of that pause."""
INITIAL_VERSION = 1
"""The library's first aggregate version: a save starting there expected no stream."""

CONDITION_FAILED = "ConditionalCheckFailed"
TRANSACTION_CONFLICT = "TransactionConflict"


class StreamConflictError(IntegrityError):
    """A save was rejected because the stream moved past the version the caller loaded.

    It is an ``IntegrityError``, so an ``eventsourcing`` ``Application`` treats it as the
    library's own recorders' conflicts. ``expected_version`` is the last version the caller
    believed stored (``None`` for a new stream); ``actual_version`` a version found stored
    (``None`` if DynamoDB did not say): the last one in the transactional mode, the last of
    the batch the save collided with in the indexed mode.
    """

    def __init__(
        self, originator_id: UUID | str, expected_version: int | None, actual_version: int | None
    ) -> None:
        super().__init__(
            f"stream {originator_id}: expected version {expected_version}, "
            f"found version {actual_version}"
        )
        self.originator_id = originator_id
        self.expected_version = expected_version
        self.actual_version = actual_version


def _describe(event: StoredEvent) -> str:
    return f"event {event.originator_id} version {event.originator_version}"


def _code(reason: Mapping[str, Any]) -> str:
    return str(reason.get("Code", "None"))


@dataclass(frozen=True)
class _StreamWrite:
    """The actions that append one stream's events: its head update, then its batches."""

    originator_id: UUID | str
    first_version: int
    actions: list[Item]

    def conflict(self, found: int | None) -> StreamConflictError:
        first = self.first_version
        expected = first - 1 if first > INITIAL_VERSION else None
        return StreamConflictError(self.originator_id, expected, found)


class DynamoDBRecorder(Recorder):
    def __init__(self, datastore: DynamoDBDatastore) -> None:
        self.datastore = datastore


class _EventStreams(DynamoDBRecorder):
    """Reads streams stored as batch items under ``events_namespace``."""

    packs_events = True
    """Whether a batch may hold several events (so one may straddle a version)."""

    def __init__(
        self,
        datastore: DynamoDBDatastore,
        events_namespace: str = "stored_events",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, **kwargs)
        self.events_namespace = events_namespace

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        if gt is not None and lte is not None and lte <= gt:
            return []
        selected = (
            event
            for item in self._batches(originator_id, gt, lte, desc=desc, page_size=limit)
            for event in self._unpack(originator_id, item, desc=desc)
            if (gt is None or event.originator_version > gt)
            and (lte is None or event.originator_version <= lte)
        )
        return list(islice(selected, limit))

    def _batches(
        self,
        originator_id: UUID | str,
        gt: int | None,
        lte: int | None,
        *,
        desc: bool,
        page_size: int | None,
    ) -> Iterator[Item]:
        """The batches that hold versions in (gt, lte], in version order (or reversed)."""
        values: Item = {":pk": {"S": stream_pk(self.events_namespace, originator_id)}}
        if gt is not None:
            values[":lo"] = number(gt + 1)
        if lte is None:
            condition = "pk = :pk AND sk >= :lo" if gt is not None else "pk = :pk"
            yield from self.datastore.query(
                condition, values, forward=not desc, page_size=page_size
            )
            return
        values[":lte"] = number(lte)
        # Batches that end at or before lte, plus the one batch that may straddle lte.
        condition = (
            "pk = :pk AND sk BETWEEN :lo AND :lte"
            if gt is not None
            else ("pk = :pk AND sk <= :lte")
        )
        if desc and self.packs_events:
            yield from self._straddling(values, lte)
        yield from self.datastore.query(condition, values, forward=not desc, page_size=page_size)
        if not desc and self.packs_events:
            yield from self._straddling(values, lte)

    def _straddling(self, values: Item, lte: int) -> Iterator[Item]:
        after = {":pk": values[":pk"], ":lte": values[":lte"]}
        for item in self.datastore.query("pk = :pk AND sk > :lte", after, page_size=1):
            if int(item[FIRST]["N"]) <= lte:
                yield item
            return

    @staticmethod
    def _unpack(originator_id: UUID | str, item: Item, *, desc: bool) -> Iterator[StoredEvent]:
        encoded: list[Item] = item[EVENTS]["L"]
        for element in reversed(encoded) if desc else encoded:
            yield decode_stream_event(originator_id, element)


class DynamoDBAggregateRecorder(_EventStreams, AggregateRecorder):
    """Stores streams of events one item per event, without a log or a head (snapshots).

    Each event is written under the condition that its version is not stored yet, so
    versions may come in any order (a snapshot may be taken of an older version after a
    newer one), as on Postgres. One event is one ``PutItem``; several are one
    ``TransactWriteItems`` of one ``Put`` each (at most 100).
    """

    packs_events = False

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return None
        _check_distinct(stored_events)
        what = f"insert_events of {len(stored_events)} events"
        puts = [self._put(event) for event in stored_events]
        if len(puts) == 1:
            try:
                self.datastore.put_item(puts[0]["Put"], what)
            except ConditionFailed:
                self._raise_already_stored(stored_events[:1])
            return None
        try:
            self.datastore.transact_write(puts, what)
        except TransactionCancelled as e:
            codes = [_code(r) for r in e.reasons]
            stored = [e for e, c in zip(stored_events, codes, strict=True) if c == CONDITION_FAILED]
            if stored:
                self._raise_already_stored(stored)
            raise OperationalError(f"{what}: cancelled by DynamoDB ({codes})") from None
        return None

    def _put(self, event: StoredEvent) -> Item:
        pk = stream_pk(self.events_namespace, event.originator_id)
        (encoded,) = pack([event], encode_stream_event, empty_batch_size(pk), _describe)
        version = event.originator_version
        return _put_new(batch_item(pk, version, version, encoded))

    @staticmethod
    def _raise_already_stored(events: Sequence[StoredEvent]) -> NoReturn:
        stored = ", ".join(f"{e.originator_id} version {e.originator_version}" for e in events)
        raise IntegrityError(f"already stored: {stored}")


class DynamoDBApplicationRecorder(_EventStreams, ApplicationRecorder):
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
        self._numbering_lock = threading.Lock()
        self._listeners: set[threading.Event] = set()
        self._listeners_lock = threading.Lock()

    ids_of_nothing: ClassVar[list[int] | None] = []
    """What saving no events returns (no ids; None where ids are assigned later)."""

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
        streams = [self._stream_write(events) for events in _by_stream(stored_events)]
        stream_actions = [action for stream in streams for action in stream.actions]
        log_batches = pack(
            stored_events, encode_log_event, empty_batch_size(self._log_pk), _describe
        )
        what = f"insert_events of {len(stored_events)} events in {len(streams)} streams"
        actions = len(stream_actions) + len(log_batches) + 1 + len(extra)
        # The log head admits one save at a time: this process's saves queue here rather
        # than race each other for it (races with other processes are re-numbered, after a
        # pause taken outside the lock).
        deadline = time.monotonic() + RACE_SECONDS
        attempt = 0
        while True:
            attempt += 1
            with self._numbering_lock:
                position = self._log_head_hint
                log_actions = self._log_actions(log_batches, position)
                try:
                    self.datastore.transact_write(stream_actions + log_actions + extra, what)
                except TransactionCancelled as e:
                    if len(e.reasons) != actions:
                        msg = f"{what}: cancelled by DynamoDB without reasons ({e})"
                        raise OperationalError(msg) from None
                    log_head = e.reasons[-len(extra) - 1]
                    if _code(log_head) == CONDITION_FAILED:
                        # Keep the head DynamoDB returned even if the save is refused for its
                        # version: the caller's retry then numbers right the first time.
                        self._log_head_hint = _log_head_value(log_head)
                    self._raise_unless_race(e.reasons, streams, len(extra), what)
                    if _code(log_head) != CONDITION_FAILED:
                        self._log_head_hint = self._read_log_head()  # No item came back.
                else:
                    self._log_head_hint = position + len(stored_events)
                    break
            if time.monotonic() > deadline:
                msg = f"{what}: lost the race for the log head {attempt} times in {RACE_SECONDS} s"
                raise OperationalError(msg)
            ceiling = min(RACE_PAUSE_MAX_SECONDS, RACE_PAUSE_SECONDS * 2.0 ** (attempt - 1))
            time.sleep(random.uniform(0, ceiling))
        self._notify_listeners()
        return list(range(position + 1, position + len(stored_events) + 1))

    def _stream_write(self, events: list[StoredEvent]) -> _StreamWrite:
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
        for batch in pack(events, encode_stream_event, empty_batch_size(pk), _describe):
            end = start + len(batch) - 1
            actions.append(_put_new(batch_item(pk, versions[start], versions[end], batch)))
            start = end + 1
        return _StreamWrite(originator_id, versions[0], actions)

    def _log_actions(self, log_batches: list[list[Item]], position: int) -> list[Item]:
        """The log batches numbered from ``position + 1``, and the log head update."""
        actions = []
        next_id = position + 1
        for batch in log_batches:
            last_id = next_id + len(batch) - 1
            actions.append(_put_new(batch_item(self._log_pk, next_id, last_id, batch)))
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
        streams: list[_StreamWrite],
        num_extra: int,
        what: str,
    ) -> None:
        """Raises what a cancellation means, unless it only lost a race for the log head."""
        index = 0
        for stream in streams:
            reason = reasons[index]
            if _code(reason) == CONDITION_FAILED:
                item = reason.get("Item")
                raise stream.conflict(int(item[VERSION]["N"]) if item else None)
            index += len(stream.actions)
        extra = reasons[len(reasons) - num_extra :] if num_extra else []
        if any(_code(r) == CONDITION_FAILED for r in extra):
            msg = f"{what}: tracking position already recorded (found {_found(extra)})"
            raise IntegrityError(msg)
        codes = [_code(r) for r in reasons]
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


class DynamoDBTrackingRecorder(DynamoDBRecorder, TrackingRecorder):
    """Stores, per upstream application, the last notification id processed."""

    def __init__(
        self,
        datastore: DynamoDBDatastore,
        tracking_namespace: str = "notification_tracking",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, **kwargs)
        self.tracking_namespace = tracking_namespace

    def tracking_action(self, tracking: Tracking) -> Item:
        """The transaction action recording ``tracking`` if it is past the stored position."""
        return {
            "Update": {
                "Key": key(tracking_pk(self.tracking_namespace, tracking.application_name)),
                "UpdateExpression": "SET #n = :n",
                "ConditionExpression": "attribute_not_exists(#n) OR #n < :n",
                "ExpressionAttributeNames": {"#n": NOTIFICATION_ID},
                "ExpressionAttributeValues": {":n": number(tracking.notification_id)},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def insert_tracking(self, tracking: Tracking) -> None:
        self.record(tracking)

    def record(self, tracking: Tracking, *actions: Item) -> None:
        """Writes ``actions`` (``TransactWriteItems`` entries without ``TableName``) and
        ``tracking`` atomically: a view's update and its position, exactly once.

        Raises ``IntegrityError`` if ``tracking`` is not past the stored position, or if
        one of ``actions`` fails its condition; nothing is written then.
        """
        what = f"tracking {tracking.application_name} {tracking.notification_id}"
        if not actions:
            try:
                self.datastore.update_item(self.tracking_action(tracking)["Update"])
            except ConditionFailed as e:
                found = e.item[NOTIFICATION_ID]["N"] if e.item else "none"
                raise IntegrityError(f"{what}: position already recorded (found {found})") from None
            return
        try:
            self.datastore.transact_write([*actions, self.tracking_action(tracking)], what)
        except TransactionCancelled as e:
            codes = [_code(r) for r in e.reasons]
            if codes[-1] == CONDITION_FAILED:
                msg = f"{what}: position already recorded (found {_found(e.reasons[-1:])})"
                raise IntegrityError(msg) from None
            if CONDITION_FAILED in codes:
                raise IntegrityError(f"{what}: rejected by DynamoDB ({codes})") from None
            raise OperationalError(f"{what}: cancelled by DynamoDB ({codes})") from None

    def max_tracking_id(self, application_name: str) -> int | None:
        item = self.datastore.get_item(key(tracking_pk(self.tracking_namespace, application_name)))
        return int(item[NOTIFICATION_ID]["N"]) if item else None


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


class DynamoDBIndexedApplicationRecorder(DynamoDBApplicationRecorder):
    """The indexed write mode: a save writes only its streams; the indexer writes the log.

    Reads of the log are the transactional recorder's (same items); ids appear once the
    indexer (:mod:`adapters.dynamodb.indexer`) has caught up, so right after a save
    ``max_notification_id`` may not count it yet.
    """

    ids_of_nothing = None
    packs_events = False

    def _insert(self, stored_events: Sequence[StoredEvent], extra: list[Item]) -> None:
        """Writes each stream's batches (and ``extra``) in one request: a ``PutItem`` when
        there is one item, else a ``TransactWriteItems``."""
        streams = [self._event_items_write(events) for events in _by_stream(stored_events)]
        actions = [action for stream in streams for action in stream.actions]
        what = f"insert_events of {len(stored_events)} events in {len(streams)} streams"
        if len(actions) == 1 and not extra:
            try:
                self.datastore.put_item(actions[0]["Put"], what)
            except ConditionFailed as e:
                raise streams[0].conflict(_last_version(e.item)) from None
            return
        try:
            self.datastore.transact_write(actions + extra, what)
        except TransactionCancelled as e:
            if len(e.reasons) != len(actions) + len(extra):
                msg = f"{what}: cancelled by DynamoDB without reasons ({e})"
                raise OperationalError(msg) from None
            index = 0
            for stream in streams:
                for reason in e.reasons[index : index + len(stream.actions)]:
                    if _code(reason) == CONDITION_FAILED:
                        raise stream.conflict(_last_version(reason.get("Item"))) from None
                    if _code(reason) == TRANSACTION_CONFLICT:
                        raise stream.conflict(None) from None
                index += len(stream.actions)
            codes = [_code(r) for r in e.reasons]
            if CONDITION_FAILED in codes:
                msg = f"{what}: tracking position already recorded (found {_found(e.reasons)})"
                raise IntegrityError(msg) from None
            raise OperationalError(f"{what}: cancelled by DynamoDB ({codes})") from None

    def _event_items_write(self, events: list[StoredEvent]) -> _StreamWrite:
        """One stream's events, one item each keyed by its version, each put only if new."""
        originator_id = events[0].originator_id
        pk = stream_pk(self.events_namespace, originator_id)
        empty = empty_batch_size(pk, originator_id)
        actions = []
        for event in events:
            (encoded,) = pack([event], encode_stream_event, empty, _describe)
            version = event.originator_version
            put = _put_new(first_keyed_batch_item(pk, originator_id, version, version, encoded))
            put["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            actions.append(put)
        return _StreamWrite(originator_id, events[0].originator_version, actions)


class DynamoDBIndexedProcessRecorder(DynamoDBProcessRecorder, DynamoDBIndexedApplicationRecorder):
    """A process recorder in the indexed write mode: events and tracking in one request."""


def _put_new(item: Item) -> Item:
    return {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


def _log_head_value(reason: Mapping[str, Any]) -> int:
    """The log head's last id as a failed condition returned it (``ALL_OLD``); 0 if absent."""
    item = reason.get("Item")
    return int(item[NOTIFICATION_ID]["N"]) if item else 0


def _last_version(item: Item | None) -> int | None:
    """The last version of an indexed-mode batch as a failed condition returned it."""
    return int(item[LAST]["N"]) if item else None


def _found(reasons: Sequence[Mapping[str, Any]]) -> str:
    items = [r["Item"] for r in reasons if r.get("Item")]
    return ", ".join(item[NOTIFICATION_ID]["N"] for item in items) or "none"


def _by_stream(stored_events: Sequence[StoredEvent]) -> list[list[StoredEvent]]:
    """The events of each stream, in version order; ``IntegrityError`` if a version repeats."""
    _check_distinct(stored_events)
    streams: dict[str, list[StoredEvent]] = {}
    for event in stored_events:
        streams.setdefault(str(event.originator_id), []).append(event)
    return [sorted(events, key=lambda e: e.originator_version) for events in streams.values()]


def _check_distinct(stored_events: Sequence[StoredEvent]) -> None:
    seen: set[tuple[str, int]] = set()
    for event in stored_events:
        position = (str(event.originator_id), event.originator_version)
        if position in seen:
            msg = (
                f"stream {event.originator_id}: version {event.originator_version} "
                "given more than once in one save"
            )
            raise IntegrityError(msg)
        seen.add(position)
