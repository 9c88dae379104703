"""The indexer's writes: whole saves chosen within DynamoDB's limits, numbered from the head.

:class:`LogWriter` turns stream batches into log writes. Each write is one
``TransactWriteItems`` of the log batch items, one "indexed version" update per stream
(conditioned on the version before the write's first) and the log head (conditioned on the
id the write numbered from, carrying the checkpoint). It holds whole saves only: a stream's
batches are cut at the save ends their items name, and a save not wholly given is completed
from the table first. Writes are sized before sending: log batches, indexed-version items
and the head within 100 actions and 4 MB. A refused write tells where streams stand
(remembered, :class:`Refused`) or that another indexer moved the head
(:class:`IndexerFencedError`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.persistence import OperationalError

from adapters.dynamodb.datastore import (
    DynamoDBDatastore,
    Item,
    TransactionCancelled,
    action_size,
)
from adapters.dynamodb.items import (
    NOTIFICATION_ID,
    VERSION,
    batch_item,
    empty_batch_size,
    encode_originator,
    indexed_pk,
    key,
    log_head_pk,
    log_pk,
    number,
    pack,
    stream_pk,
)
from adapters.dynamodb.shards import StreamBatch
from adapters.dynamodb.table import (
    MAX_ITEM_BYTES,
    MAX_TRANSACTION_ACTIONS,
    MAX_TRANSACTION_BYTES,
    DynamoDBLimitError,
    item_size,
)

CHECKPOINT = "cp"
WRITTEN_AT = "w"
CACHE_SIZE = 100_000
"""Streams whose indexed version the writer remembers (least recently used dropped)."""
_LARGEST = 10**38 - 1  # A number taking the most bytes a number can take.


class IndexerFencedError(OperationalError):
    """Another indexer advanced the log head; this one must reload before writing again."""


class Refused(Exception):  # noqa: N818 - internal signal, never escapes the indexer.
    """A write was cancelled for a reason the next try can fix; ``learned`` if it told the
    indexer where a stream stands (progress)."""

    def __init__(self, message: str, *, learned: bool) -> None:
        super().__init__(message)
        self.learned = learned


@dataclass
class _Write:
    """The saves chosen for one write, and what they take (bounded before sending)."""

    namespace: str
    empty_log_item: int
    batches: list[StreamBatch] = field(default_factory=list)
    streams: dict[str, int] = field(default_factory=dict)
    """Per stream in the write, the bytes its indexed-version update takes at most."""
    log_items: int = 0
    log_bytes: int = 0
    fill: int = 0
    """Bytes of the log item being filled."""

    def try_add(self, unit: list[StreamBatch], head_bytes: int, max_streams: int) -> bool:
        """Adds a save's batches if the write still fits in DynamoDB's limits then."""
        name = str(unit[0].originator_id)
        streams = len(self.streams) + (name not in self.streams)
        items, fill, size = self.log_items, self.fill, self.log_bytes
        for event_size in (s for batch in unit for s in batch.sizes):
            if items == 0 or fill + event_size > MAX_ITEM_BYTES:
                items, fill, size = items + 1, self.empty_log_item, size + self.empty_log_item
            fill += event_size
            size += event_size
        marker = self.streams.get(name) or _marker_bytes(self.namespace, unit[0].originator_id)
        markers = sum(self.streams.values()) + (marker if name not in self.streams else 0)
        fits = (
            streams <= max_streams
            and items + streams + 1 <= MAX_TRANSACTION_ACTIONS
            and size + markers + head_bytes <= MAX_TRANSACTION_BYTES
        )
        if fits:
            self.batches += unit
            self.streams[name] = marker
            self.log_items, self.fill, self.log_bytes = items, fill, size
        return fits


class LogWriter:
    """Appends whole saves to the log of ``namespace``; ``position`` is the last id it
    assigned or found, ``indexed`` what it knows of each stream's indexed version."""

    def __init__(self, datastore: DynamoDBDatastore, namespace: str, max_streams: int) -> None:
        self.datastore = datastore
        self.namespace = namespace
        self.max_streams = max_streams
        self._log_pk = log_pk(namespace)
        self.head_key = key(log_head_pk(namespace))
        self.position = 0
        self.indexed: OrderedDict[str, int] = OrderedDict()
        self.writes = 0

    def reset(self, position: int) -> None:
        """Numbers on from ``position``; forgets the streams."""
        self.position = position
        self.indexed.clear()

    def choose(
        self, todo: list[StreamBatch], shards: Iterable[str]
    ) -> tuple[list[StreamBatch], list[StreamBatch], dict[str, tuple[UUID | str, int, int]]]:
        """The batches of the next write (whole saves, within the limits), those left for
        later, and per stream the versions to read from the table first (missing before a
        batch, or the rest of a save)."""
        by_stream: dict[str, list[StreamBatch]] = {}
        for batch in todo:
            end = self.indexed.get(str(batch.originator_id))
            if end is None or batch.last > end:
                by_stream.setdefault(str(batch.originator_id), []).append(batch)
        units, missing = self.saves(by_stream)
        if missing:
            return [], todo, missing  # Read the gaps first; keep everything for after.
        write = _Write(self.namespace, empty_batch_size(self._log_pk))
        head_bytes = self.head_bytes(shards)
        stopped: set[str] = set()
        for unit in units:
            name = str(unit[0].originator_id)
            if name in stopped or not write.try_add(unit, head_bytes, self.max_streams):
                stopped.add(name)  # Its later saves wait too: a stream goes in order.
        if not write.batches and units:
            events = sum(len(b.events) for b in units[0])
            what = f"indexing a save of {events} events of stream {units[0][0].originator_id}"
            raise DynamoDBLimitError("indexer write", events, MAX_TRANSACTION_ACTIONS, what)
        kept = {id(b) for found in by_stream.values() for b in found}
        chosen = {id(b) for b in write.batches}
        left = [b for b in todo if id(b) in kept and id(b) not in chosen]
        return write.batches, left, {}

    def saves(
        self, by_stream: Mapping[str, list[StreamBatch]]
    ) -> tuple[list[list[StreamBatch]], dict[str, tuple[UUID | str, int, int]]]:
        """The whole saves that can be written next (each stream's chain from its indexed
        version, cut at save ends), and the versions to read from the table first."""
        missing: dict[str, tuple[UUID | str, int, int]] = {}
        units: list[list[StreamBatch]] = []
        for name, found in by_stream.items():
            found.sort(key=lambda b: b.first)
            end = self.indexed.get(name)
            expected = found[0].first if end is None else end + 1
            chain: list[StreamBatch] = []
            for batch in found:
                if batch.first == expected:
                    chain.append(batch)
                    expected = batch.last + 1
                elif batch.first > expected:
                    break
            originator_id = found[0].originator_id
            if not chain:
                missing[name] = (originator_id, expected, found[0].first - 1)
                continue
            if chain[-1].save_last > chain[-1].last:
                missing[name] = (originator_id, chain[-1].last + 1, chain[-1].save_last)
            unit: list[StreamBatch] = []
            for batch in chain:
                unit.append(batch)
                if batch.last >= batch.save_last:
                    units.append(unit)
                    unit = []
        return units, missing

    def head_bytes(self, shards: Iterable[str]) -> int:
        """The most bytes the head update of the next write can take (checkpoint included)."""
        checkpoint = {shard: "9" * 64 for shard in shards}
        head = self.head_update(_LARGEST, checkpoint)
        head["Update"]["ExpressionAttributeValues"][":position"] = number(_LARGEST)
        return action_size(head)

    def read_missing(self, missing: Mapping[str, tuple[UUID | str, int, int]]) -> list[StreamBatch]:
        """The batches of each stream between the versions given, read from the table."""
        batches = []
        for originator_id, first, last in missing.values():
            values = {
                ":pk": {"S": stream_pk(self.namespace, originator_id)},
                ":lo": number(first),
                ":hi": number(last),
            }
            found = [
                StreamBatch.from_item(item)
                for item in self.datastore.query("pk = :pk AND sk BETWEEN :lo AND :hi", values)
            ]
            if not found or found[0].first != first or found[-1].last != last:
                msg = (
                    f"stream {originator_id}: versions {first} to {last} are not in the table "
                    "as one chain of batches, so later ones cannot be indexed in order"
                )
                raise OperationalError(msg)
            batches += found
        return batches

    def write(self, chosen: list[StreamBatch], checkpoint: Mapping[str, str]) -> None:
        """One transaction: the log batches, each stream's indexed version, the head."""
        events = [(batch.originator_id, event) for batch in chosen for event in batch.events]
        sizes = [size for batch in chosen for size in batch.sizes]
        log_batches = pack(
            events,
            _log_event,
            empty_batch_size(self._log_pk),
            lambda e: f"stream {e[0]}",
            sizes,
        )
        actions: list[Item] = []
        action_sizes: list[int] = []
        next_id = self.position + 1
        for log_batch in log_batches:
            last_id = next_id + len(log_batch) - 1
            offset = next_id - self.position - 1
            empty = item_size(batch_item(self._log_pk, next_id, last_id, []))
            action_sizes.append(empty + sum(sizes[offset : offset + len(log_batch)]))
            actions.append(
                {
                    "Put": {
                        "Item": batch_item(self._log_pk, next_id, last_id, log_batch),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
            next_id = last_id + 1
        streams: dict[str, tuple[UUID | str, int, int]] = {}
        for batch in chosen:
            name = str(batch.originator_id)
            first = streams[name][1] if name in streams else batch.first
            streams[name] = (batch.originator_id, first, batch.last)
        markers = list(streams.items())
        for _, (originator_id, first, last) in markers:
            actions.append(_marker_update(self.namespace, originator_id, first, last))
        actions.append(self.head_update(next_id - 1, checkpoint))
        action_sizes += [action_size(action) for action in actions[len(action_sizes) :]]
        what = f"indexing {len(events)} events of {len(markers)} streams"
        try:
            self.datastore.transact_write(actions, what, action_sizes)
        except TransactionCancelled as e:
            self.learn(e, len(log_batches), markers, what)
        else:
            self.position = next_id - 1
            for name, (_, _, last) in markers:
                self.remember(name, last)
            self.writes += 1

    def learn(
        self,
        cancelled: TransactionCancelled,
        log_batches: int,
        markers: list[tuple[str, tuple[UUID | str, int, int]]],
        what: str,
    ) -> None:
        """Reads a cancellation: remembers where streams stood; raises what to do next."""
        reasons = cancelled.reasons
        if len(reasons) != log_batches + len(markers) + 1:
            msg = f"{what}: cancelled by DynamoDB without reasons ({cancelled})"
            raise OperationalError(msg)
        codes = [str(r.get("Code", "None")) for r in reasons]
        if codes[-1] == "ConditionalCheckFailed" or any(
            c == "ConditionalCheckFailed" for c in codes[:log_batches]
        ):
            raise IndexerFencedError(f"{what}: the log head moved (another indexer)")
        learned = False
        for (name, _), reason in zip(markers, reasons[log_batches:-1], strict=True):
            if reason.get("Code") == "ConditionalCheckFailed":
                item = reason.get("Item")
                self.remember(name, int(item[VERSION]["N"]) if item else 0)
                learned = True
        if learned:
            raise Refused(f"{what}: streams were not where this indexer thought", learned=True)
        raise Refused(f"{what}: cancelled ({codes})", learned=False)

    def head_update(self, last_id: int, checkpoint: Mapping[str, str]) -> Item:
        head: Item = {
            "Key": self.head_key,
            "UpdateExpression": "SET #n = :last, #cp = :cp, #w = :w",
            "ExpressionAttributeNames": {
                "#n": NOTIFICATION_ID,
                "#cp": CHECKPOINT,
                "#w": WRITTEN_AT,
            },
            "ExpressionAttributeValues": {
                ":last": number(last_id),
                ":cp": {"M": {shard: {"S": value} for shard, value in checkpoint.items()}},
                ":w": {"N": f"{time.time():.3f}"},
            },
        }
        if self.position:
            head["ConditionExpression"] = "#n = :position"
            head["ExpressionAttributeValues"][":position"] = number(self.position)
        else:
            head["ConditionExpression"] = "attribute_not_exists(#n)"
        return {"Update": head}

    def remember(self, name: str, version: int) -> None:
        self.indexed[name] = version
        self.indexed.move_to_end(name)
        while len(self.indexed) > CACHE_SIZE:
            self.indexed.popitem(last=False)

    # -- status ------------------------------------------------------------------------------


def _log_event(pair: tuple[UUID | str, Item]) -> Item:
    originator_id, event = pair
    return {"M": {**event["M"], **encode_originator(originator_id)}}


def _marker_update(namespace: str, originator_id: UUID | str, first: int, last: int) -> Item:
    """Sets a stream's indexed version to ``last`` if it was exactly ``first - 1``."""
    update: Item = {
        "Key": key(indexed_pk(namespace, originator_id)),
        "UpdateExpression": "SET #v = :last",
        "ExpressionAttributeNames": {"#v": VERSION},
        "ExpressionAttributeValues": {":last": number(last)},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if first > 1:
        update["ConditionExpression"] = "#v = :previous"
        update["ExpressionAttributeValues"][":previous"] = number(first - 1)
    else:
        update["ConditionExpression"] = "attribute_not_exists(#v)"
    return {"Update": update}


def _marker_bytes(namespace: str, originator_id: UUID | str) -> int:
    """The most bytes a stream's indexed-version update takes."""
    return action_size(_marker_update(namespace, originator_id, _LARGEST, _LARGEST))
