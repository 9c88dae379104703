"""The indexed write mode: a save writes only its streams; the indexer writes the log.

Contracts (beyond the library's, which they meet but for ids: ``insert_events`` returns
``None`` and the indexer, :mod:`adapters.dynamodb.indexer`, assigns them later):

- Every event is an item of its own keyed by its version, put under ``attribute_not_exists``,
  so a save based on any stored version (the last or an earlier one) collides with the item
  of the version after it: the expected-version check is exact. Each item names its stream
  and the last version of its save (``z``), so the indexer logs a save whole or not at all.
- A 1-event save is ONE ``PutItem`` (1 WCU per started KB); a save of several events or
  streams is ONE ``TransactWriteItems`` of such puts. No item is shared between streams.
- Each save once under unknown outcomes: a ``PutItem`` applied whose answer was lost and that
  botocore sent again fails its condition on the recorder's own item; the item comes back
  (``ReturnValuesOnConditionCheckFailure=ALL_OLD``) and, if botocore had sent the call more
  than once (``RetryAttempts``) and the item holds exactly the event sent (its state has the
  event's timestamp), the save has succeeded. A save of an event stored already by an
  earlier call is a conflict, as the library's contract asks. A transaction
  sent again carries the same ``ClientRequestToken`` (botocore), so DynamoDB applies it once.
- Limits, in this mode's terms: a save holds at most :data:`MAX_SAVE_EVENTS` events (one
  action each), one fewer with tracking; checked before anything is sent.
- A rejected save raises :class:`StreamConflictError` with the version it collided with as the
  version found (the stream holds at least that).
- The namespace's write mode is recorded by the first save; a writer in the other mode is
  refused (:class:`~adapters.dynamodb.recorders.WriteModeError`) before it writes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from adapters.dynamodb.datastore import ConditionFailed, Item, TransactionCancelled
from adapters.dynamodb.items import (
    EVENTS,
    empty_batch_size,
    encode_stream_event,
    first_keyed_batch_item,
    pack,
    stream_pk,
)
from adapters.dynamodb.recorders import (
    CONDITION_FAILED,
    TRANSACTION_CONFLICT,
    StreamWrite,
    by_stream,
    describe_event,
    found_positions,
    last_version,
    put_new,
    reason_code,
)
from adapters.dynamodb.table import MAX_TRANSACTION_ACTIONS, DynamoDBLimitError
from adapters.dynamodb.transactional import DynamoDBApplicationRecorder, DynamoDBProcessRecorder

MAX_SAVE_EVENTS = MAX_TRANSACTION_ACTIONS
"""Events in one save of the indexed mode (one put each), one fewer when it carries tracking."""


class DynamoDBIndexedApplicationRecorder(DynamoDBApplicationRecorder):
    """The indexed write mode: a save writes only its streams; the indexer writes the log.

    Reads of the log are the transactional recorder's (same items); ids appear once the
    indexer has caught up, so right after a save ``max_notification_id`` may not count it.
    """

    ids_of_nothing = None
    packs_events = False
    write_mode: ClassVar[str] = "indexed"

    def _insert(self, stored_events: Sequence[StoredEvent], extra: list[Item]) -> None:
        """Writes each stream's items (and ``extra``) in one request: a ``PutItem`` when
        there is one item, else a ``TransactWriteItems``."""
        what = f"insert_events of {len(stored_events)} events"
        if len(stored_events) + len(extra) > MAX_SAVE_EVENTS:
            what += " (the indexed mode writes one item per event, and one for tracking)"
            raise DynamoDBLimitError(
                "events per save", len(stored_events) + len(extra), MAX_SAVE_EVENTS, what
            )
        streams = [self._event_items_write(events) for events in by_stream(stored_events)]
        actions = [action for stream in streams for action in stream.actions]
        what = f"{what} in {len(streams)} streams"
        self.claim_write_mode()
        if len(actions) == 1 and not extra:
            put = actions[0]["Put"]
            try:
                self.datastore.put_item(put, what)
            except ConditionFailed as e:
                if e.retried and e.item is not None and e.item[EVENTS] == put["Item"][EVENTS]:
                    return  # This call's own item: applied, then botocore sent it again.
                raise streams[0].conflict(last_version(e.item)) from None
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
                    if reason_code(reason) == CONDITION_FAILED:
                        raise stream.conflict(last_version(reason.get("Item"))) from None
                    if reason_code(reason) == TRANSACTION_CONFLICT:
                        raise stream.conflict(None) from None
                index += len(stream.actions)
            codes = [reason_code(r) for r in e.reasons]
            if CONDITION_FAILED in codes:
                found = found_positions(e.reasons)
                msg = f"{what}: tracking position already recorded (found {found})"
                raise IntegrityError(msg) from None
            raise OperationalError(f"{what}: cancelled by DynamoDB ({codes})") from None

    def _event_items_write(self, events: list[StoredEvent]) -> StreamWrite:
        """One stream's events, one item each keyed by its version, each put only if new,
        each saying the save's last version."""
        originator_id = events[0].originator_id
        pk = stream_pk(self.events_namespace, originator_id)
        empty = empty_batch_size(pk, originator_id)
        save_last = events[-1].originator_version
        actions = []
        for event in events:
            (encoded,) = pack([event], encode_stream_event, empty, describe_event)
            version = event.originator_version
            item = first_keyed_batch_item(
                pk, originator_id, version, version, encoded, save_last=save_last
            )
            put = put_new(item)
            put["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            actions.append(put)
        return StreamWrite(originator_id, events[0].originator_version, actions)


class DynamoDBIndexedProcessRecorder(DynamoDBProcessRecorder, DynamoDBIndexedApplicationRecorder):
    """A process recorder in the indexed write mode: events and tracking in one request."""
