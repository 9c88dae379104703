"""The ``eventsourcing`` recorders on DynamoDB: what both write modes share.

This module has the stream reads, the aggregate recorder (snapshots), the tracking recorder
and the helpers the write modes' recorders (:mod:`adapters.dynamodb.transactional`,
:mod:`adapters.dynamodb.indexed`) build on.

- The aggregate recorder (the snapshot store) keeps one item per event with no head:
  any version not stored yet is accepted, in any order, as on Postgres.
- Tracking is one item per upstream application, updated only forwards (under the condition
  that the stored position is lower), alone or in the same transaction as a view's changes.
- A conflict is a :class:`StreamConflictError` (the library's ``IntegrityError``) naming the
  version found.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, NoReturn
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    Recorder,
    StoredEvent,
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
    WRITE_MODE,
    batch_item,
    decode_stream_event,
    empty_batch_size,
    encode_stream_event,
    key,
    mode_pk,
    number,
    pack,
    stream_pk,
    tracking_pk,
)

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


def describe_event(event: StoredEvent) -> str:
    return f"event {event.originator_id} version {event.originator_version}"


def reason_code(reason: Mapping[str, Any]) -> str:
    return str(reason.get("Code", "None"))


@dataclass(frozen=True)
class StreamWrite:
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


class EventStreams(DynamoDBRecorder):
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


class DynamoDBAggregateRecorder(EventStreams, AggregateRecorder):
    """Stores streams of events one item per event, without a log or a head (snapshots).

    Each event is written under the condition that its version is not stored yet, so
    versions may come in any order (a snapshot may be taken of an older version after a
    newer one), as on Postgres. One event is one ``PutItem``; several are one
    ``TransactWriteItems`` of one ``Put`` each (at most 100). A ``PutItem`` botocore sent
    again after its answer was lost, failing on this very call's item, succeeds.
    """

    packs_events = False

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return None
        check_distinct(stored_events)
        what = f"insert_events of {len(stored_events)} events"
        puts = [self._put(event) for event in stored_events]
        if len(puts) == 1:
            put = puts[0]["Put"]
            try:
                self.datastore.put_item(put, what)
            except ConditionFailed as e:
                if e.retried and e.item is not None and e.item[EVENTS] == put["Item"][EVENTS]:
                    return None  # This call's own item: applied, then botocore sent it again.
                self._raise_already_stored(stored_events[:1])
            return None
        try:
            self.datastore.transact_write(puts, what)
        except TransactionCancelled as e:
            codes = [reason_code(r) for r in e.reasons]
            stored = [e for e, c in zip(stored_events, codes, strict=True) if c == CONDITION_FAILED]
            if stored:
                self._raise_already_stored(stored)
            raise OperationalError(f"{what}: cancelled by DynamoDB ({codes})") from None
        return None

    def _put(self, event: StoredEvent) -> Item:
        pk = stream_pk(self.events_namespace, event.originator_id)
        (encoded,) = pack([event], encode_stream_event, empty_batch_size(pk), describe_event)
        version = event.originator_version
        put = put_new(batch_item(pk, version, version, encoded))
        put["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return put

    @staticmethod
    def _raise_already_stored(events: Sequence[StoredEvent]) -> NoReturn:
        stored = ", ".join(f"{e.originator_id} version {e.originator_version}" for e in events)
        raise IntegrityError(f"already stored: {stored}")


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
            codes = [reason_code(r) for r in e.reasons]
            if codes[-1] == CONDITION_FAILED:
                msg = f"{what}: position already recorded (found {found_positions(e.reasons[-1:])})"
                raise IntegrityError(msg) from None
            if CONDITION_FAILED in codes:
                raise IntegrityError(f"{what}: rejected by DynamoDB ({codes})") from None
            raise OperationalError(f"{what}: cancelled by DynamoDB ({codes})") from None

    def max_tracking_id(self, application_name: str) -> int | None:
        item = self.datastore.get_item(key(tracking_pk(self.tracking_namespace, application_name)))
        return int(item[NOTIFICATION_ID]["N"]) if item else None


def put_new(item: Item) -> Item:
    return {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


def last_version(item: Item | None) -> int | None:
    """The last version of an indexed-mode batch as a failed condition returned it."""
    return int(item[LAST]["N"]) if item else None


def found_positions(reasons: Sequence[Mapping[str, Any]]) -> str:
    items = [r["Item"] for r in reasons if r.get("Item")]
    return ", ".join(item[NOTIFICATION_ID]["N"] for item in items) or "none"


def by_stream(stored_events: Sequence[StoredEvent]) -> list[list[StoredEvent]]:
    """The events of each stream, in version order; ``IntegrityError`` if a version repeats."""
    check_distinct(stored_events)
    streams: dict[str, list[StoredEvent]] = {}
    for event in stored_events:
        streams.setdefault(str(event.originator_id), []).append(event)
    return [sorted(events, key=lambda e: e.originator_version) for events in streams.values()]


def check_distinct(stored_events: Sequence[StoredEvent]) -> None:
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


class WriteModeError(ProgrammingError):
    """The namespace's streams were written in the other write mode; nothing was written.

    The two modes keep the log differently (numbered in each save, or by the indexer from
    the stream), so one namespace must never be written in both.
    """

    def __init__(self, namespace: str, recorded: str, mode: str) -> None:
        super().__init__(
            f"{namespace}: the table's events were written in the {recorded} write mode; "
            f"this writer is in the {mode} mode (set DYNAMODB_WRITE_MODE={recorded})"
        )
        self.recorded = recorded
        self.mode = mode


def check_write_mode(
    datastore: DynamoDBDatastore, namespace: str, mode: str, *, claim: bool = True
) -> None:
    """Raises :class:`WriteModeError` if ``namespace`` is recorded in another mode than
    ``mode``; if none is recorded and ``claim``, records ``mode`` (first writer wins, under
    a condition, so two writers in different modes cannot both claim it)."""
    mode_key = key(mode_pk(namespace))
    item = datastore.get_item(mode_key)
    if item is None and claim:
        put: Item = {"Item": {**mode_key, WRITE_MODE: {"S": mode}}}
        put |= {
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            datastore.put_item(put, f"recording the {mode} write mode of {namespace}")
            return
        except ConditionFailed as e:
            item = e.item or datastore.get_item(mode_key)
    recorded = item[WRITE_MODE]["S"] if item else mode
    if recorded != mode:
        raise WriteModeError(namespace, recorded, mode)
