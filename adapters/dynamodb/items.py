"""Item layout of the event store: keys, packed event batches, and their sizes.

Every item lives under a partition key ``pk`` that starts with a namespace (one per
application and purpose, such as ``orderservice_events`` or ``orderservice_snapshots``), so
several applications and their snapshot stores share one table without sharing a key.

==================  ===================================  ====  ===============================
item                pk                                   sk    attributes
==================  ===================================  ====  ===============================
stream head         ``{ns}#head#{originator_id}``        0     ``v`` last version stored
stream batch        ``{ns}#stream#{originator_id}``      last  ``f`` first version, ``e`` events
                                                         vers. (``v`` version, ``t`` topic,
                                                               ``s`` state)
log head            ``{ns}#loghead``                     0     ``n`` last notification id
log batch           ``{ns}#log``                         last  ``f`` first id, ``e`` events
                                                         id    (``u`` UUID hex or ``o`` str
                                                               originator id, ``v``, ``t``,
                                                               ``s``)
tracking            ``{ns}#tracking#{application}``      0     ``n`` last notification id
write mode          ``{ns}#mode``                        0     ``m`` the mode the namespace's
                                                               streams are written in
==================  ===================================  ====  ===============================

A batch holds consecutive events of one save, as many as fit in one item; keying it by its
last version (or id) makes "batches holding anything after X" one key condition. The
aggregate recorder (snapshots) writes stream batches of one event each, and no head.

In the indexed write mode (:mod:`adapters.dynamodb.indexer`) a stream has no head and every
event is an item of its own, keyed by its version: a save based on any stored version, the
last or an earlier one, then collides with the item of the next version, which a single-key
item per save could not guarantee (a stale [2] beside [1, 2] under key 1, or beside [2, 3]
under key 3). The items carry their stream's id, for the indexer:

==================  ===================================  ====  ===============================
stream event        ``{ns}#stream#{originator_id}``      vers. ``l`` the version again, ``e`` the
(indexed mode)                                                 event, ``u`` or ``o`` stream id,
                                                               ``z`` the save's last version
indexed version     ``{ns}#indexed#{originator_id}``     0     ``v`` last version in the log
log head            ``{ns}#loghead``                     0     ``n``, and the indexer's ``cp``
                                                               checkpoint, ``w`` written at
==================  ===================================  ====  ===============================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent

from adapters.dynamodb.datastore import Item
from adapters.dynamodb.table import MAX_ITEM_BYTES, DynamoDBLimitError, item_size, value_size

T = TypeVar("T")

EVENTS = "e"
FIRST = "f"
LAST = "l"
VERSION = "v"
NOTIFICATION_ID = "n"
SAVE_LAST = "z"
"""On an indexed-mode stream item: the last version of its stream in the save that wrote it."""
WRITE_MODE = "m"


def number(value: int) -> dict[str, str]:
    return {"N": str(value)}


def key(pk: str, sk: int = 0) -> Item:
    return {"pk": {"S": pk}, "sk": number(sk)}


def stream_pk(namespace: str, originator_id: UUID | str) -> str:
    return f"{namespace}#stream#{originator_id}"


def head_pk(namespace: str, originator_id: UUID | str) -> str:
    return f"{namespace}#head#{originator_id}"


def indexed_pk(namespace: str, originator_id: UUID | str) -> str:
    return f"{namespace}#indexed#{originator_id}"


def log_pk(namespace: str) -> str:
    return f"{namespace}#log"


def log_head_pk(namespace: str) -> str:
    return f"{namespace}#loghead"


def mode_pk(namespace: str) -> str:
    return f"{namespace}#mode"


def tracking_pk(namespace: str, application_name: str) -> str:
    return f"{namespace}#tracking#{application_name}"


def encode_stream_event(event: StoredEvent) -> Item:
    return {
        "M": {
            "v": number(event.originator_version),
            "t": {"S": event.topic},
            "s": {"B": event.state},
        }
    }


def encode_log_event(event: StoredEvent) -> Item:
    encoded = encode_stream_event(event)
    encoded["M"].update(encode_originator(event.originator_id))
    return encoded


def encode_originator(originator_id: UUID | str) -> Item:
    """The originator id as attributes: ``u`` (a UUID's hex) or ``o`` (a string)."""
    if isinstance(originator_id, UUID):
        return {"u": {"S": originator_id.hex}}
    return {"o": {"S": originator_id}}


def decode_originator(fields: Item) -> UUID | str:
    return UUID(fields["u"]["S"]) if "u" in fields else str(fields["o"]["S"])


def decode_stream_event(originator_id: UUID | str, encoded: Item) -> StoredEvent:
    fields = encoded["M"]
    return StoredEvent(
        originator_id=originator_id,
        originator_version=int(fields["v"]["N"]),
        topic=fields["t"]["S"],
        state=bytes(fields["s"]["B"]),
    )


def decode_log_event(notification_id: int, encoded: Item) -> Notification:
    fields = encoded["M"]
    return Notification(
        id=notification_id,
        originator_id=decode_originator(fields),
        originator_version=int(fields["v"]["N"]),
        topic=fields["t"]["S"],
        state=bytes(fields["s"]["B"]),
    )


def pack(
    events: Sequence[T],
    encode: Callable[[T], Item],
    empty_item_size: int,
    describe: Callable[[T], str],
    sizes: Sequence[int] | None = None,
) -> list[list[Item]]:
    """Splits ``events`` (in order) into as few batches as fit in one item each.

    ``empty_item_size`` is the size of a batch item holding an empty event list; ``sizes``,
    if given, each encoded event's size in a list (1 + its value's size), known already.
    Raises :class:`DynamoDBLimitError` naming the event that does not fit in an item by itself.
    """
    batches: list[list[Item]] = []
    batch: list[Item] = []
    size = empty_item_size
    for n, event in enumerate(events):
        encoded = encode(event)
        event_size = sizes[n] if sizes is not None else 1 + value_size(encoded)
        if empty_item_size + event_size > MAX_ITEM_BYTES:
            raise DynamoDBLimitError(
                "item size", empty_item_size + event_size, MAX_ITEM_BYTES, describe(event)
            )
        if size + event_size > MAX_ITEM_BYTES:
            batches.append(batch)
            batch, size = [], empty_item_size
        batch.append(encoded)
        size += event_size
    if batch:
        batches.append(batch)
    return batches


def batch_item(pk: str, first: int, last: int, events: list[Item]) -> Item:
    return {**key(pk, last), FIRST: number(first), EVENTS: {"L": events}}


def first_keyed_batch_item(
    pk: str,
    originator_id: UUID | str,
    first: int,
    last: int,
    events: list[Item],
    *,
    save_last: int | None = None,
) -> Item:
    """A stream item of the indexed mode (one event: ``first`` = ``last``), naming its stream
    and the last version of the save it belongs to (``last`` if not given)."""
    return {
        **key(pk, first),
        LAST: number(last),
        EVENTS: {"L": events},
        **encode_originator(originator_id),
        SAVE_LAST: number(last if save_last is None else save_last),
    }


_LARGEST_NUMBER = 10**38 - 1  # Takes the most bytes a number can take (21).


def empty_batch_size(pk: str, originator_id: UUID | str | None = None) -> int:
    """Size of a batch item under ``pk`` with no events, whatever its first and last
    (of the indexed mode's layout if ``originator_id`` is given)."""
    if originator_id is None:
        return item_size(batch_item(pk, _LARGEST_NUMBER, _LARGEST_NUMBER, []))
    return item_size(
        first_keyed_batch_item(pk, originator_id, _LARGEST_NUMBER, _LARGEST_NUMBER, [])
    )
