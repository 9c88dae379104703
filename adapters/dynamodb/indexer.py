"""The indexed write mode's indexer: builds the notification log from the table's stream.

In the indexed mode (``DYNAMODB_WRITE_MODE=indexed``) a save writes only its stream's batch
items. The indexer reads the table's DynamoDB Stream (``NEW_IMAGE``), picks the new batches
of one application's streams, and appends their events to the same log items the
transactional mode writes (:mod:`adapters.dynamodb.items`), so readers
(``select_notifications``, ``max_notification_id``, ``subscribe``) are unchanged.

Guarantees, each enforced by a DynamoDB condition in the write that assigns the ids:

- Gapless ids, one writer at a time: every write is one ``TransactWriteItems`` that puts the
  log batch items (many events each, numbered from the log head) and updates the log head
  under the condition that it still holds the id the write numbered from. The head also
  holds the checkpoint (``cp``: per shard, the sequence number up to which every record was
  indexed or skipped) and the time of the write (``w``), so the checkpoint moves with the
  ids it covers. A second indexer (or a rebuild) racing it loses that condition, reloads the
  head and carries on from there: it never writes an id twice.
- Each event once, each stream in version order: the same write updates, per stream, an
  "indexed version" item under the condition that it holds exactly the version before the
  batch's first one (absent for version 1). A batch seen again (a restart re-reading past
  the checkpoint, a Lambda retry) fails that condition with a version at or past its own
  and is dropped; a batch whose predecessor is not indexed yet (stream records are ordered
  per item only, and each save is its own item) has the missing batches read from the table
  first (a consistent ``Query``): they are committed, since a later one exists. So no batch
  waits for a record that may have expired (records live 24 hours).
- Nothing is lost when the indexer stops at any moment: what was not committed is read again
  from the checkpoint; what was committed is not indexed again.

Cost: per write, 2 WCU per started KB of each log batch (about 100 small events per KB-
rounded item), 2 WCU per stream's indexed-version item, 2 for the head; one ``GetRecords``
per shard and poll. :func:`verify` compares the log with the stream items; :func:`rebuild`
indexes every stream item the log is missing (after an outage longer than the stream's 24
hours). :mod:`adapters.lambdas.indexer` runs it on a Lambda event source mapping.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from botocore.exceptions import BotoCoreError, ClientError
from eventsourcing.persistence import OperationalError

from adapters.deploy.resources import SETUP_COMMAND
from adapters.dynamodb.datastore import (
    DynamoDBDatastore,
    Item,
    TransactionCancelled,
    action_size,
    translate_errors,
)
from adapters.dynamodb.factory import DynamoDBFactory
from adapters.dynamodb.items import (
    EVENTS,
    FIRST,
    LAST,
    NOTIFICATION_ID,
    VERSION,
    batch_item,
    decode_originator,
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
from adapters.dynamodb.table import MAX_TRANSACTION_ACTIONS, item_size, value_size

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

logger = logging.getLogger(__name__)

CHECKPOINT = "cp"
WRITTEN_AT = "w"
FINISHED = "end"
"""A finished shard's checkpoint value: closed and read to its end."""
MAX_STREAMS_PER_WRITE = MAX_TRANSACTION_ACTIONS - 11
"""Streams per write: with the head and up to 10 log batches, a write fits in 100 actions."""
MAX_EVENT_BYTES_PER_WRITE = 3_500_000
"""Encoded event bytes per write (log batches stay within a transaction's 4 MB)."""
MAX_WRITE_ATTEMPTS = 50
"""Tries of one write that keeps being cancelled for a transaction conflict."""
SHARDS_REFRESH_SECONDS = 60.0
CACHE_SIZE = 100_000
"""Streams whose indexed version the indexer remembers (least recently used dropped)."""


@dataclass(frozen=True)
class Position:
    """Where a batch came from in the stream: its shard, its sequence number, and the
    sequence number of the record read before it in that shard (None if it came first)."""

    shard: str
    sequence: str
    before: str | None


@dataclass(frozen=True)
class StreamBatch:
    """One stream batch item of the indexed mode: versions ``first``..``last`` of a stream."""

    originator_id: UUID | str
    first: int
    last: int
    events: list[Item]
    position: Position | None = None

    @functools.cached_property
    def sizes(self) -> list[int]:
        """Each event's size as an element of a log batch's list (it names its stream)."""
        originator = sum(  # Its attributes in the event's map, as value_size counts them.
            1 + len(name) + value_size(value)
            for name, value in encode_originator(self.originator_id).items()
        )
        return [1 + value_size(event) + originator for event in self.events]

    @functools.cached_property
    def size(self) -> int:
        """Bytes of the encoded events in a log batch (what a write of them carries)."""
        return sum(self.sizes)

    @classmethod
    def from_item(cls, item: Item, position: Position | None = None) -> StreamBatch:
        return cls(
            originator_id=decode_originator(item),
            first=int(item["sk"]["N"]),
            last=int(item[LAST]["N"]),
            events=list(item[EVENTS]["L"]),
            position=position,
        )


@dataclass(frozen=True)
class _Page:
    """One ``GetRecords`` page of a shard: its batches, and where the shard stood after it."""

    shard_id: str
    batches: list[StreamBatch]
    records: int
    read_until: str | None
    finished: bool
    newest: float | None = None
    """When the newest record of ``batches`` was written (epoch seconds), if known."""


class IndexerFencedError(OperationalError):
    """Another indexer advanced the log head; this one must reload before writing again."""


@dataclass
class _Shard:
    """What the indexer knows of one shard while reading it."""

    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    finished: bool = False
    read_until: str | None = None
    """Sequence number of the last record read (indexed, skipped, or still pending)."""
    ending: str | None = None
    """The shard's last sequence number once it is closed (from ``DescribeStream``)."""


@dataclass
class IndexerStatus:
    """What ``orders indexer status`` shows: how far the log is and how far behind."""

    last_id: int
    written_at: float | None
    checkpoint: dict[str, str]
    pending_events: int
    oldest_pending_age: float | None
    """Seconds since the oldest stream record not indexed yet was written (None if none)."""


def indexer_of(factory: DynamoDBFactory, **options: Any) -> Indexer:
    """The indexer of the application whose factory (``app.factory``) is given."""
    return Indexer(factory.datastore, factory.streams_client(), factory.events_namespace, **options)


@contextlib.contextmanager
def indexing(factory: object, *, timeout: float = 120.0) -> Iterator[Indexer | None]:
    """Runs the indexer in a thread of this process while the block runs, if ``factory``
    (an application's ``factory``) is DynamoDB's in the indexed write mode, and catches up
    before leaving, so the log then holds every event saved in the block. Otherwise (the
    transactional mode, other stores) it does nothing and yields None.
    """
    if not isinstance(factory, DynamoDBFactory) or factory.write_mode != "indexed":
        yield None
        return
    indexer = indexer_of(factory)
    stopping = threading.Event()
    thread = threading.Thread(target=indexer.run, args=(stopping,), name="indexer", daemon=True)
    thread.start()
    try:
        yield indexer
    finally:
        stopping.set()
        thread.join()
    indexer.catch_up(timeout=timeout)


class Indexer:
    """Appends the new batches of the streams under ``events_namespace`` to its log.

    ``datastore`` reaches the table; ``streams`` is a ``dynamodbstreams`` client of the
    same endpoint. :meth:`run` follows the stream until told to stop; :meth:`catch_up`
    indexes what is there and returns; :meth:`index` indexes given batches (Lambda, rebuild).
    """

    def __init__(
        self,
        datastore: DynamoDBDatastore,
        streams: DynamoDBStreamsClient | None,
        events_namespace: str,
        *,
        poll_interval: float = 0.2,
        max_streams_per_write: int = MAX_STREAMS_PER_WRITE,
    ) -> None:
        self.datastore = datastore
        self.streams = streams
        self.events_namespace = events_namespace
        self.poll_interval = poll_interval
        self.max_streams_per_write = max_streams_per_write
        self._stream_prefix = stream_pk(events_namespace, "")
        self._log_pk = log_pk(events_namespace)
        self._head_key = key(log_head_pk(events_namespace))
        self._indexed: OrderedDict[str, int] = OrderedDict()
        self._shards: dict[str, _Shard] = {}
        self._arn = ""
        self._described_at = 0.0
        self._marks: dict[str, tuple[str | None, bool]] = {}
        """Per shard, where the pages handed to indexing ended, and whether it finished."""
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None
        self._prefetched: concurrent.futures.Future[list[_Page]] | None = None
        self.records_read = 0
        """Stream records the last poll read (of any kind)."""
        self.read_now = True
        """Whether the last poll read the stream itself (not pages read ahead)."""
        self._position = 0
        self._checkpoint: dict[str, str] = {}
        self._loaded = False
        self.events_indexed = 0
        self.writes = 0
        self.newest_indexed_at: float | None = None
        """When the newest stream record indexed so far was written (epoch seconds)."""

    # -- state -------------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)reads the log head and checkpoint; forgets what it cached of streams."""
        if self._prefetched is not None:
            concurrent.futures.wait([self._prefetched])  # Its pages are dropped.
            self._prefetched = None
        self._marks.clear()
        item = self.datastore.get_item(self._head_key) or {}
        self._position = int(item[NOTIFICATION_ID]["N"]) if NOTIFICATION_ID in item else 0
        self._checkpoint = {k: v["S"] for k, v in item.get(CHECKPOINT, {}).get("M", {}).items()}
        self._indexed.clear()
        self._shards.clear()
        self._loaded = True

    @property
    def last_id(self) -> int:
        """The last id this indexer assigned or found in the head."""
        return self._position

    # -- following the stream ----------------------------------------------------------------

    def run(
        self, stopping: threading.Event, *, on_write: Callable[[int], None] | None = None
    ) -> None:
        """Follows the stream until ``stopping`` is set; stops between writes, never in one.

        An operational error (DynamoDB unreachable, throttled past botocore's retries) is
        logged and the indexer tries again from its checkpoint after a pause.
        """
        while not stopping.is_set():
            try:
                indexed = self.poll_once()
            except OperationalError:
                logger.exception("indexer poll failed; retrying from the checkpoint")
                self._loaded = False
                stopping.wait(max(1.0, 10 * self.poll_interval))
                continue
            if on_write is not None and indexed:
                on_write(indexed)
            if indexed == 0:
                stopping.wait(self.poll_interval)

    def catch_up(self, *, timeout: float = 60.0) -> int:
        """Indexes until a pass over every shard, read at that moment (not read ahead
        during a write), finds no record; the events indexed."""
        deadline = time.monotonic() + timeout
        total = 0
        while True:
            indexed = self.poll_once()
            total += indexed
            if indexed == 0 and self.records_read == 0 and self.read_now:
                return total
            if time.monotonic() > deadline:
                msg = f"indexer did not catch up within {timeout} s"
                raise TimeoutError(msg)

    def poll_once(self) -> int:
        """Reads one page of every readable shard and indexes what it found; events indexed.

        Records that are not new batches of this namespace (the indexer's own writes, other
        applications' items) are skipped. The checkpoint is only written with events: a
        poll that finds none writes nothing (so the indexer's writes do not feed themselves).
        """
        if not self._loaded:
            self.load()
        try:
            self.read_now = self._prefetched is None
            if self._prefetched is not None:
                pages, self._prefetched = self._prefetched.result(), None
            else:
                pages = self._read_pages()
            self.records_read = sum(page.records for page in pages)
            for page in pages:
                self._marks[page.shard_id] = (page.read_until, page.finished)
            batches = [batch for page in pages for batch in page.batches]
            if self.records_read:
                # More may be waiting: read the next pages while these are written.
                if self._reader is None:
                    self._reader = concurrent.futures.ThreadPoolExecutor(1, "indexer-reader")
                self._prefetched = self._reader.submit(self._read_pages)
            if not batches:
                return 0
            indexed = self.index(batches, checkpoint=self._checkpoint_after)
            written = [page.newest for page in pages if page.newest is not None]
            if written:
                self.newest_indexed_at = max([*written, self.newest_indexed_at or 0.0])
            return indexed
        except IndexerFencedError:
            logger.warning("another indexer advanced the log head; reloading")
            self.load()
            return 0

    def _stream_arn(self) -> str:
        with translate_errors(self.datastore.table_name):
            table = self.datastore.client.describe_table(TableName=self.datastore.table_name)
        arn = table["Table"].get("LatestStreamArn")
        if not arn:
            msg = (
                f"DynamoDB table {self.datastore.table_name!r} has no stream: the indexed "
                "write mode needs StreamSpecification NEW_IMAGE (turn it on: "
                f"{SETUP_COMMAND} --write-mode indexed)"
            )
            raise OperationalError(msg)
        return arn

    def _describe_shards(self) -> None:
        assert self.streams is not None, "the indexer needs a dynamodbstreams client"
        arn = self._stream_arn()
        kwargs: dict[str, Any] = {"StreamArn": arn}
        listed: set[str] = set()
        while True:
            with _streams_errors():
                description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                listed.add(shard_id)
                if shard_id not in self._shards:
                    self._shards[shard_id] = _Shard(
                        shard_id,
                        shard.get("ParentShardId"),
                        finished=self._checkpoint.get(shard_id) == FINISHED,
                    )
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                self._shards[shard_id].ending = ending
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        self._arn = arn
        for shard_id in list(self._shards):
            if shard_id not in listed:  # Trimmed away after 24 hours.
                del self._shards[shard_id]

    def _readable_shards(self) -> list[_Shard]:
        """Shards not finished whose parent is finished or gone (children after parents);
        the stream's shards are listed again every minute and when all are finished."""
        stale = time.monotonic() - self._described_at > SHARDS_REFRESH_SECONDS
        if stale or all(s.finished for s in self._shards.values()):
            self._describe_shards()
            self._described_at = time.monotonic()
        return [
            shard
            for shard in self._shards.values()
            if not shard.finished
            and (shard.parent_id not in self._shards or self._shards[shard.parent_id].finished)
        ]

    def _read_pages(self) -> list[_Page]:
        return [self._read_page(shard) for shard in self._readable_shards()]

    def _read_page(self, shard: _Shard) -> _Page:
        assert self.streams is not None
        if shard.iterator is None:
            shard.iterator = self._iterator(shard)
        try:
            with _streams_errors():
                page = self.streams.get_records(ShardIterator=shard.iterator, Limit=1000)
        except (_ExpiredIteratorError, _TrimmedError) as error:
            # Read past a closed shard's end (as DynamoDB Local reports it), or an old
            # iterator: list the shards again, and go on from the last record read (records
            # read twice are dropped by the indexed-version check).
            self._described_at = 0.0
            read_all = shard.read_until is not None and shard.ending is not None
            if read_all and int(shard.read_until or 0) >= int(shard.ending or 0):
                shard.finished = True
            else:
                logger.warning("shard %s: %s; reading on anew", shard.shard_id, error)
                shard.iterator = self._iterator(shard)
            return _Page(shard.shard_id, [], 0, shard.read_until, finished=shard.finished)
        batches = []
        newest: float | None = None
        previous = shard.read_until or self._checkpoint.get(shard.shard_id)
        for record in page.get("Records", []):
            sequence = record["dynamodb"]["SequenceNumber"]
            batch = self.batch_of(record, Position(shard.shard_id, sequence, previous))
            if batch is not None:
                batches.append(batch)
                created = written_at(record)
                if created is not None:
                    newest = max(newest or 0.0, created)
            previous = sequence
        shard.read_until = previous
        shard.iterator = page.get("NextShardIterator")
        if shard.iterator is None:
            shard.finished = True
        records = len(page.get("Records", []))
        return _Page(shard.shard_id, batches, records, shard.read_until, shard.finished, newest)

    def _iterator(self, shard: _Shard) -> str:
        assert self.streams is not None
        after = shard.read_until or self._checkpoint.get(shard.shard_id)
        kwargs: dict[str, Any] = {"StreamArn": self._arn, "ShardId": shard.shard_id}
        if after and after != FINISHED:
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        try:
            with _streams_errors():
                return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
        except _TrimmedError:
            logger.error(
                "shard %s was trimmed past the checkpoint %s: records were lost to the stream's "
                "24 hours; run `orders indexer rebuild` to index them from the table",
                shard.shard_id,
                after,
            )
            kwargs = {k: v for k, v in kwargs.items() if k != "SequenceNumber"}
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            with _streams_errors():
                return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]

    def batch_of(self, record: Mapping[str, Any], position: Position | None) -> StreamBatch | None:
        """The indexed-mode batch a stream record inserted, or None if it is anything else."""
        if record.get("eventName") != "INSERT":
            return None
        image: Item = record.get("dynamodb", {}).get("NewImage") or {}
        pk = image.get("pk", {}).get("S", "")
        if not pk.startswith(self._stream_prefix) or LAST not in image:
            return None
        return StreamBatch.from_item(image, position)

    def _checkpoint_after(self, not_done: Iterable[StreamBatch]) -> dict[str, str]:
        """The checkpoint once every batch read but those in ``not_done`` is indexed."""
        checkpoint = dict(self._checkpoint)
        for shard_id, (read_until, finished) in self._marks.items():
            if read_until is not None:
                checkpoint[shard_id] = read_until
            if finished:
                checkpoint[shard_id] = FINISHED
        for batch in not_done:
            if batch.position is None:
                continue
            before = batch.position.before
            shard_id = batch.position.shard
            current = checkpoint.get(shard_id)
            if before is None:
                checkpoint.pop(shard_id, None)
            elif current in (None, FINISHED) or int(before) < int(current or 0):
                checkpoint[shard_id] = before
        return checkpoint

    # -- indexing ----------------------------------------------------------------------------

    def index(
        self,
        batches: Sequence[StreamBatch],
        *,
        checkpoint: Callable[[Iterable[StreamBatch]], dict[str, str]] | None = None,
    ) -> int:
        """Appends ``batches`` to the log (in as few writes as the limits allow); events
        appended. Batches already indexed are dropped; missing predecessors are read from the
        table and indexed first. ``checkpoint`` gives the head's checkpoint after each write
        from the batches still to write (unchanged if None)."""
        if not self._loaded:
            self.load()
        todo = list(batches)
        appended = 0
        attempts = 0
        while todo:
            chosen, todo, missing = self._choose(todo)
            if missing:
                todo = self._read_missing(missing) + todo
                continue
            if not chosen:
                break
            cp = checkpoint(todo) if checkpoint is not None else self._checkpoint
            try:
                self._write(chosen, cp)
            except _Refused as refused:
                attempts += 1
                if attempts >= MAX_WRITE_ATTEMPTS:
                    msg = f"indexer write refused {attempts} times: {refused}"
                    raise OperationalError(msg) from None
                todo = chosen + todo
                continue
            appended += sum(len(b.events) for b in chosen)
        self.events_indexed += appended
        return appended

    def _choose(
        self, todo: list[StreamBatch]
    ) -> tuple[list[StreamBatch], list[StreamBatch], dict[str, tuple[UUID | str, int, int]]]:
        """The batches of the next write, those left for later, and per stream the version
        range known to be missing before a batch (to be read from the table)."""
        chosen: list[StreamBatch] = []
        left: list[StreamBatch] = []
        missing: dict[str, tuple[UUID | str, int, int]] = {}
        ends: dict[str, int] = {}
        size = 0
        for batch in todo:
            name = str(batch.originator_id)
            end = ends.get(name, self._indexed.get(name))
            if end is not None and batch.last <= end:
                continue  # Indexed already (or earlier in this write).
            if end is not None and batch.first != end + 1:
                if name not in ends and name not in missing:
                    missing[name] = (batch.originator_id, end + 1, batch.first - 1)
                left.append(batch)
                continue
            fits = len(ends) < self.max_streams_per_write or name in ends
            if not fits or size + batch.size > MAX_EVENT_BYTES_PER_WRITE:
                left.append(batch)
                continue
            ends[name] = batch.last
            size += batch.size
            chosen.append(batch)
        if missing:
            # Read the gaps first; keep everything for after (in the order given).
            return [], todo, missing
        return chosen, left, {}

    def _read_missing(
        self, missing: Mapping[str, tuple[UUID | str, int, int]]
    ) -> list[StreamBatch]:
        """The batches of each stream between the versions given, read from the table."""
        batches = []
        for originator_id, first, last in missing.values():
            values = {
                ":pk": {"S": stream_pk(self.events_namespace, originator_id)},
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

    def _write(self, chosen: list[StreamBatch], checkpoint: Mapping[str, str]) -> None:
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
        next_id = self._position + 1
        for log_batch in log_batches:
            last_id = next_id + len(log_batch) - 1
            offset = next_id - self._position - 1
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
            actions.append(_marker_update(self.events_namespace, originator_id, first, last))
        actions.append(self._head_update(next_id - 1, checkpoint))
        action_sizes += [action_size(action) for action in actions[len(action_sizes) :]]
        what = f"indexing {len(events)} events of {len(markers)} streams"
        try:
            self.datastore.transact_write(actions, what, action_sizes)
        except TransactionCancelled as e:
            self._learn(e, len(log_batches), markers, what)
        else:
            self._position = next_id - 1
            self._checkpoint = dict(checkpoint)
            for name, (_, _, last) in markers:
                self._remember(name, last)
            self.writes += 1

    def _learn(
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
                self._remember(name, int(item[VERSION]["N"]) if item else 0)
                learned = True
        if learned:
            raise _Refused(f"{what}: streams were not where this indexer thought")
        raise _Refused(f"{what}: cancelled ({codes})")

    def _head_update(self, last_id: int, checkpoint: Mapping[str, str]) -> Item:
        head: Item = {
            "Key": self._head_key,
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
        if self._position:
            head["ConditionExpression"] = "#n = :position"
            head["ExpressionAttributeValues"][":position"] = number(self._position)
        else:
            head["ConditionExpression"] = "attribute_not_exists(#n)"
        return {"Update": head}

    def _remember(self, name: str, version: int) -> None:
        self._indexed[name] = version
        self._indexed.move_to_end(name)
        while len(self._indexed) > CACHE_SIZE:
            self._indexed.popitem(last=False)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> IndexerStatus:
        """The log head, and the stream records after the checkpoint (read, not consumed)."""
        self.load()
        item = self.datastore.get_item(self._head_key) or {}
        last_write = float(item[WRITTEN_AT]["N"]) if WRITTEN_AT in item else None
        pending = 0
        oldest: float | None = None
        for shard in self._readable_shards():
            for record in self._peek(shard):
                if self.batch_of(record, None) is None:
                    continue
                pending += len(record["dynamodb"]["NewImage"][EVENTS]["L"])
                created = written_at(record)
                if created is not None and (oldest is None or created < oldest):
                    oldest = created
        age = time.time() - oldest if oldest is not None else None
        return IndexerStatus(self._position, last_write, dict(self._checkpoint), pending, age)

    def _peek(self, shard: _Shard) -> Iterator[Mapping[str, Any]]:
        """The records of ``shard`` after the checkpoint, up to what is there now."""
        assert self.streams is not None
        iterator: str | None = self._iterator(shard)
        for _ in range(100):
            if iterator is None:
                return
            with _streams_errors():
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            records = page.get("Records", [])
            yield from records
            if not records:
                return
            iterator = page.get("NextShardIterator")


def written_at(record: Mapping[str, Any]) -> float | None:
    """When a stream record was written (epoch seconds), if it says: its
    ``ApproximateCreationDateTime``, a number in a Lambda event and a datetime from boto3,
    rounded down to the second by AWS (to the minute by DynamoDB Local)."""
    value = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if value is None:
        return None
    return value.timestamp() if isinstance(value, datetime) else float(value)


class _Refused(Exception):  # noqa: N818 - internal signal, never escapes the indexer.
    """A write was cancelled for a reason the next try can fix."""


class _ExpiredIteratorError(Exception):
    pass


class _TrimmedError(Exception):
    pass


@contextlib.contextmanager
def _streams_errors() -> Iterator[None]:
    """DynamoDB Streams errors: an expired iterator or trimmed data for the caller to handle,
    anything else as the library's ``OperationalError``."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ExpiredIteratorException":
            raise _ExpiredIteratorError(code) from error
        if code == "TrimmedDataAccessException":
            raise _TrimmedError(code) from error
        raise OperationalError(f"DynamoDB Streams: {error}") from error
    except BotoCoreError as error:
        raise OperationalError(f"DynamoDB Streams: {error}") from error


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


# -- repair -----------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What :func:`verify` found; ``ok`` when the log is exactly the stream items' events."""

    log_events: int = 0
    stored_events: int = 0
    last_id: int = 0
    gaps: list[int] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    not_stored: list[tuple[str, int]] = field(default_factory=list)
    differing: list[tuple[str, int]] = field(default_factory=list)
    not_indexed: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        problems = (
            self.gaps,
            self.duplicates,
            self.out_of_order,
            self.not_stored,
            self.differing,
            self.not_indexed,
        )
        return not any(problems)


def stream_items(datastore: DynamoDBDatastore, events_namespace: str) -> list[StreamBatch]:
    """Every indexed-mode batch item of the namespace (a ``Scan`` of the table), sorted by
    stream and version."""
    prefix = stream_pk(events_namespace, "")
    kwargs: dict[str, Any] = {
        "TableName": datastore.table_name,
        "ConsistentRead": True,
        "FilterExpression": "begins_with(pk, :prefix) AND attribute_exists(#l)",
        "ExpressionAttributeValues": {":prefix": {"S": prefix}},
        "ExpressionAttributeNames": {"#l": LAST},
    }
    batches = []
    while True:
        with translate_errors(datastore.table_name):
            page = datastore.client.scan(**kwargs)
        batches += [StreamBatch.from_item(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(batches, key=lambda b: (str(b.originator_id), b.first))


def verify(datastore: DynamoDBDatastore, events_namespace: str) -> VerifyReport:
    """Compares the log (every log item) with the stream items, event by event."""
    report = VerifyReport()
    stored: dict[tuple[str, int], Item] = {}  # (stream, version) -> the event's fields
    for batch in stream_items(datastore, events_namespace):
        for encoded in batch.events:
            stored[(str(batch.originator_id), int(encoded["M"][VERSION]["N"]))] = encoded["M"]
    report.stored_events = len(stored)
    head: Item = datastore.get_item(key(log_head_pk(events_namespace))) or {}
    report.last_id = int(head[NOTIFICATION_ID]["N"]) if NOTIFICATION_ID in head else 0
    seen: set[tuple[str, int]] = set()
    last_version: dict[str, int] = {}
    expected_id = 1
    values = {":pk": {"S": log_pk(events_namespace)}}
    for item in datastore.query("pk = :pk", values):
        first_id = int(item[FIRST]["N"])
        if first_id != expected_id:
            report.gaps.append(expected_id)
        expected_id = int(item["sk"]["N"]) + 1
        for element in item[EVENTS]["L"]:
            fields = element["M"]
            name = str(decode_originator(fields))
            version = int(fields[VERSION]["N"])
            report.log_events += 1
            if (name, version) in seen:
                report.duplicates.append((name, version))
            seen.add((name, version))
            if version <= last_version.get(name, 0):
                report.out_of_order.append(f"{name} version {version}")
            last_version[name] = version
            event = stored.get((name, version))
            if event is None:
                report.not_stored.append((name, version))
            elif event["t"] != fields["t"] or event["s"] != fields["s"]:
                report.differing.append((name, version))
    if expected_id - 1 != report.last_id:
        report.gaps.append(expected_id)
    report.not_indexed = sorted(set(stored) - seen)
    return report


def rebuild(indexer: Indexer) -> int:
    """Indexes every stream item of the namespace the log is missing; events appended.

    Safe while an indexer runs (the log head's condition lets one writer advance at a time)
    and safe to repeat: what is indexed already is dropped by the indexed-version check.
    """
    batches = stream_items(indexer.datastore, indexer.events_namespace)
    for _ in range(MAX_WRITE_ATTEMPTS):
        indexer.load()
        try:
            return indexer.index(batches)
        except IndexerFencedError:
            continue  # A running indexer advanced the head: number from where it is now.
    msg = "rebuild: the log head kept moving (is an indexer writing flat out?)"
    raise OperationalError(msg)
