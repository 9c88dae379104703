"""The ``eventsourcing`` recorders on DynamoDB: aggregate, application, tracking, process.

Contracts (beyond the library's, which they all meet):

- ``insert_events`` is ONE ``TransactWriteItems``: all of it is written, or nothing. Each
  stream's head is updated under the condition that the stream holds no version at or past
  the first one being saved (``attribute_not_exists(v) OR v < :first``); a save rejected by
  it raises :class:`~orders.errors.VersionConflictError` with the version found, taken from
  the cancellation reason (``ReturnValuesOnConditionCheckFailure="ALL_OLD"``), not re-read.
  Versions within one save must be distinct (``IntegrityError`` otherwise). A stream only
  grows: a version lower than the highest stored is rejected even if that one is free.
- Application recorders number the events 1, 2, 3 ... without gaps; one save's ids are
  contiguous, in the order the events were given. The log head is updated in the same
  transaction under the condition that it still holds the number the save started from.
  When only that condition fails (another save took the numbers first) the recorder
  re-numbers from the head value returned in the cancellation reason and sends again, at
  most :data:`MAX_WRITE_ATTEMPTS` times, never reporting it as a conflict; a
  ``TransactionConflict`` cancellation (a concurrent transaction on the same item) is
  treated the same way, after reading the head afresh.
- ``select_notifications`` returns only a gapless run of ids: if a read sees an id whose
  predecessor is not visible yet, it stops before it, so a reader never skips an id that
  commits later (ids are only taken by committed saves, so the gap fills).
- Tracking (process recorders) is written in the same transaction as the events, under the
  condition that the stored position is lower.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any
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
    NOTIFICATION_ID,
    VERSION,
    batch_item,
    decode_log_event,
    decode_stream_event,
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
    tracking_pk,
)
from orders.errors import VersionConflictError

MAX_WRITE_ATTEMPTS = 100
"""Sends of one save that lost the race for the log head before the recorder gives up."""
INITIAL_VERSION = 1
"""The library's first aggregate version: a save starting there expected no stream."""

CONDITION_FAILED = "ConditionalCheckFailed"
TRANSACTION_CONFLICT = "TransactionConflict"


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


class DynamoDBRecorder(Recorder):
    def __init__(self, datastore: DynamoDBDatastore) -> None:
        self.datastore = datastore


class DynamoDBAggregateRecorder(DynamoDBRecorder, AggregateRecorder):
    """Stores streams of events under ``events_namespace`` (no notification log)."""

    def __init__(
        self,
        datastore: DynamoDBDatastore,
        events_namespace: str = "stored_events",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, **kwargs)
        self.events_namespace = events_namespace

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if stored_events:
            self._insert(stored_events, [])
        return None

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
        if desc:
            yield from self._straddling(values, lte)
        yield from self.datastore.query(condition, values, forward=not desc, page_size=page_size)
        if not desc:
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

    def _insert(self, stored_events: Sequence[StoredEvent], extra: list[Item]) -> list[int]:
        """Writes the events and the ``extra`` actions in one transaction; their ids."""
        streams = self._stream_writes(stored_events)
        what = f"insert_events of {len(stored_events)} events in {len(streams)} streams"
        position = self._start_position()
        for _ in range(MAX_WRITE_ATTEMPTS):
            sequence = self._sequence_actions(stored_events, position)
            actions = [a for s in streams for a in s.actions] + sequence + extra
            try:
                self.datastore.transact_write(actions, what)
            except TransactionCancelled as e:
                self._raise_for_conflicts(e.reasons, streams, len(extra), what)
                position = self._position_after_race(e.reasons, len(extra), position)
            else:
                return self._committed(len(stored_events), position)
        msg = f"{what}: lost the race for the log head {MAX_WRITE_ATTEMPTS} times, gave up"
        raise OperationalError(msg)

    def _stream_writes(self, stored_events: Sequence[StoredEvent]) -> list[_StreamWrite]:
        by_stream: dict[str, list[StoredEvent]] = {}
        for event in stored_events:
            by_stream.setdefault(str(event.originator_id), []).append(event)
        return [self._stream_write(events) for events in by_stream.values()]

    def _stream_write(self, events: list[StoredEvent]) -> _StreamWrite:
        events = sorted(events, key=lambda e: e.originator_version)
        versions = [e.originator_version for e in events]
        originator_id = events[0].originator_id
        if len(set(versions)) < len(versions):
            repeated = sorted({v for v in versions if versions.count(v) > 1})
            msg = f"stream {originator_id}: version(s) {repeated} given more than once in one save"
            raise IntegrityError(msg)
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

    def _raise_for_conflicts(
        self,
        reasons: Sequence[Mapping[str, Any]],
        streams: list[_StreamWrite],
        num_extra: int,
        what: str,
    ) -> None:
        """Raises what a cancellation means, unless it only lost a race worth re-sending."""
        index = 0
        for stream in streams:
            reason = reasons[index]
            if _code(reason) == CONDITION_FAILED:
                item = reason.get("Item")
                actual = int(item[VERSION]["N"]) if item else None
                first = stream.first_version
                expected = first - 1 if first > INITIAL_VERSION else None
                if isinstance(stream.originator_id, UUID):
                    raise VersionConflictError(stream.originator_id, expected, actual)
                msg = f"stream {stream.originator_id}: expected version {expected}, found {actual}"
                raise IntegrityError(msg)
            index += len(stream.actions)
        extra = reasons[len(reasons) - num_extra :] if num_extra else []
        if any(_code(r) == CONDITION_FAILED for r in extra):
            msg = f"{what}: tracking position already recorded (found {_found(extra)})"
            raise IntegrityError(msg)
        if self._lost_race(reasons, num_extra):
            return
        codes = [_code(r) for r in reasons]
        if CONDITION_FAILED in codes:
            raise IntegrityError(f"{what}: rejected by DynamoDB ({codes})")
        raise OperationalError(f"{what}: cancelled by DynamoDB ({codes})")

    def _lost_race(self, reasons: Sequence[Mapping[str, Any]], num_extra: int) -> bool:
        return any(_code(r) == TRANSACTION_CONFLICT for r in reasons)

    def _start_position(self) -> int:
        return 0

    def _sequence_actions(self, stored_events: Sequence[StoredEvent], position: int) -> list[Item]:
        return []

    def _position_after_race(
        self, reasons: Sequence[Mapping[str, Any]], num_extra: int, position: int
    ) -> int:
        return position

    def _committed(self, num_events: int, position: int) -> list[int]:
        return []


class DynamoDBApplicationRecorder(DynamoDBAggregateRecorder, ApplicationRecorder):
    """Stores streams and the application's notification log under ``events_namespace``."""

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
        self._numbering_lock = threading.Lock()
        self._listeners: set[threading.Event] = set()
        self._listeners_lock = threading.Lock()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._insert(stored_events, []) if stored_events else []

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
        values = {":pk": {"S": self._log_pk}, ":first": number(expected)}
        for item in self.datastore.query("pk = :pk AND sk >= :first", values, page_size=limit):
            first_id = int(item[FIRST]["N"])
            if first_id > expected:
                break  # A save before this one committed but is not visible yet.
            for offset, element in enumerate(item[EVENTS]["L"]):
                notification_id = first_id + offset
                if notification_id < expected:
                    continue
                if stop is not None and notification_id > stop:
                    return results
                notification = decode_log_event(notification_id, element)
                if not topics or notification.topic in topics:
                    results.append(notification)
                    if len(results) == limit:
                        return results
            expected = int(item["sk"]["N"]) + 1
        return results

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

    def _insert(self, stored_events: Sequence[StoredEvent], extra: list[Item]) -> list[int]:
        # The log head admits one save at a time: this process's saves queue here rather
        # than race each other for it (races with other processes are still re-numbered).
        with self._numbering_lock:
            return super()._insert(stored_events, extra)

    def _read_log_head(self) -> int:
        item = self.datastore.get_item(self._log_head_key)
        return int(item[NOTIFICATION_ID]["N"]) if item else 0

    def _start_position(self) -> int:
        return self._log_head_hint

    def _sequence_actions(self, stored_events: Sequence[StoredEvent], position: int) -> list[Item]:
        actions = []
        next_id = position + 1
        empty_size = empty_batch_size(self._log_pk)
        for batch in pack(stored_events, encode_log_event, empty_size, _describe):
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

    def _log_head_reason(
        self, reasons: Sequence[Mapping[str, Any]], num_extra: int
    ) -> Mapping[str, Any]:
        return reasons[len(reasons) - num_extra - 1]

    def _lost_race(self, reasons: Sequence[Mapping[str, Any]], num_extra: int) -> bool:
        log_head = self._log_head_reason(reasons, num_extra)
        return _code(log_head) == CONDITION_FAILED or super()._lost_race(reasons, num_extra)

    def _position_after_race(
        self, reasons: Sequence[Mapping[str, Any]], num_extra: int, position: int
    ) -> int:
        log_head = self._log_head_reason(reasons, num_extra)
        if _code(log_head) == CONDITION_FAILED:
            item = log_head.get("Item")
            return int(item[NOTIFICATION_ID]["N"]) if item else 0
        return self._read_log_head()

    def _committed(self, num_events: int, position: int) -> list[int]:
        self._log_head_hint = position + num_events
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.set()
        return list(range(position + 1, position + num_events + 1))


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
                self.datastore.update_item(**self.tracking_action(tracking)["Update"])
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
            return []
        extra = [self.tracking_action(tracking)] if tracking is not None else []
        return self._insert(stored_events, extra)


def _put_new(item: Item) -> Item:
    return {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


def _found(reasons: Sequence[Mapping[str, Any]]) -> str:
    items = [r["Item"] for r in reasons if r.get("Item")]
    return ", ".join(item[NOTIFICATION_ID]["N"] for item in items) or "none"
