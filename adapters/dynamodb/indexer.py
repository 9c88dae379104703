"""The indexed write mode's indexer: builds the notification log from the table's stream.

In the indexed mode (``DYNAMODB_WRITE_MODE=indexed``) a save writes only its stream's event
items. The indexer reads the table's DynamoDB Stream (``NEW_IMAGE``, through
:class:`~adapters.dynamodb.shards.ShardReader`), picks the new items of one application's
streams, and appends their events to the same log items the transactional mode writes
(:mod:`adapters.dynamodb.items`), so readers (``select_notifications``,
``max_notification_id``, ``subscribe``) are unchanged.

Guarantees, each enforced by a DynamoDB condition in the write that assigns the ids:

- Gapless ids, one writer at a time: every write is one ``TransactWriteItems`` that puts the
  log batch items (many events each, numbered from the log head) and updates the log head
  under the condition that it still holds the id the write numbered from. The head also
  holds the checkpoint (``cp``: per shard the stream still lists, the sequence number up to
  which every record was indexed or skipped) and the time of the write (``w``), so the
  checkpoint moves with the ids it covers. A second indexer (or a rebuild) racing it loses
  that condition, reloads the head and carries on from there: it never writes an id twice.
- Each event once, each stream in version order: the same write updates, per stream, an
  "indexed version" item under the condition that it holds exactly the version before the
  first one written (absent for version 1). An item seen again fails that condition with a
  version at or past its own and is dropped; items whose predecessors are not indexed yet
  (stream records are ordered per item only) have the missing ones read from the table
  first (a consistent ``Query``), so nothing waits for a record that may have expired.
- A save is visible whole or not at all: each item says the last version of its save
  (``z``); a write holds whole saves only, and the rest of a save not read from the stream
  yet is read from the table before any of it is committed.
- Limits counted, never exceeded: a write is chosen so that its log batches, its indexed
  version items and the head fit in 100 actions and 4 MB (sizes bounded before sending).
- Nothing is lost or skipped when a write or a read fails or the indexer stops at any
  moment: any failure drops what the indexer held in memory (positions read, pages read
  ahead, versions cached) and it reads again from the checkpoint.

Cost: per write, 2 WCU per started KB of each log batch, 2 WCU per stream's indexed-version
item, 2 for the head; one ``GetRecords`` per shard and poll, polls backing off while the
stream is idle. :mod:`adapters.dynamodb.repair` verifies and rebuilds the log;
:mod:`adapters.lambdas.indexer` runs the indexer on a Lambda event source mapping.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import OperationalError

from adapters.dynamodb.datastore import (
    DynamoDBDatastore,
)
from adapters.dynamodb.factory import DynamoDBFactory
from adapters.dynamodb.items import (
    NOTIFICATION_ID,
    stream_pk,
)
from adapters.dynamodb.log_writes import (
    CHECKPOINT,
    WRITTEN_AT,
    IndexerFencedError,
    LogWriter,
    Refused,
)
from adapters.dynamodb.recorders import check_write_mode
from adapters.dynamodb.shards import (
    FINISHED,
    RECORDS_PER_READ,
    Page,
    ShardReader,
    StreamBatch,
    written_at,
)
from adapters.dynamodb.table import (
    MAX_TRANSACTION_ACTIONS,
)
from orders.backoff import Backoff

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

logger = logging.getLogger(__name__)

MAX_UNLEARNED_REFUSALS = 20
"""Refusals in a row that taught the indexer nothing (transaction conflicts) before a call
gives up; a refusal that told where a stream stands is progress and is not counted."""


@dataclass
class IndexerStatus:
    """What ``orders indexer status`` shows: how far the log is and how far behind."""

    last_id: int
    written_at: float | None
    checkpoint: dict[str, str]
    pending_events: int
    oldest_pending_age: float | None
    """Seconds since the oldest stream record seen not indexed yet was written (None if none)."""
    more_pending: bool = False
    """Whether the sample (one page per shard) was full, so more may be waiting."""


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
    """Appends the new event items of the streams under ``events_namespace`` to its log.

    ``datastore`` reaches the table; ``streams`` is a ``dynamodbstreams`` client of the
    same endpoint. :meth:`run` follows the stream until told to stop; :meth:`catch_up`
    indexes what is there and returns; :meth:`index` indexes given batches (Lambda, rebuild).
    ``poll_interval`` is the pause after a poll that found nothing; it doubles per idle
    poll up to ``idle_poll_max``. ``backoff`` paces retries after failures and conflicts.
    """

    def __init__(
        self,
        datastore: DynamoDBDatastore,
        streams: DynamoDBStreamsClient | None,
        events_namespace: str,
        *,
        poll_interval: float = 0.2,
        idle_poll_max: float = 5.0,
        max_streams_per_write: int = MAX_TRANSACTION_ACTIONS - 2,
        backoff: Backoff = Backoff(base=0.05, cap=5.0),  # noqa: B008 - immutable.
    ) -> None:
        self.datastore = datastore
        self.events_namespace = events_namespace
        self.poll_interval = poll_interval
        self.idle_poll_max = max(idle_poll_max, poll_interval)
        self.backoff = backoff
        self.reader = ShardReader(datastore, streams, stream_pk(events_namespace, ""))
        self.log = LogWriter(datastore, events_namespace, max_streams_per_write)
        self._marks: dict[str, tuple[str | None, bool]] = {}
        """Per shard, where the pages handed to indexing ended, and whether it finished."""
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._prefetched: concurrent.futures.Future[list[Page]] | None = None
        self.records_read = 0
        """Stream records the last poll read (of any kind)."""
        self.read_now = True
        """Whether the last poll read the stream itself (not pages read ahead)."""
        self._loaded = False
        self.events_indexed = 0
        self.newest_indexed_at: float | None = None
        """When the newest stream record indexed so far was written (epoch seconds)."""

    # -- state -------------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)reads the log head and checkpoint; forgets what it read and cached of streams.

        Raises :class:`~adapters.dynamodb.recorders.WriteModeError` if the table's events
        were written in the transactional mode (the log is theirs)."""
        if self._prefetched is not None:
            concurrent.futures.wait([self._prefetched])  # Its pages are dropped.
            self._prefetched = None
        self._marks.clear()
        check_write_mode(self.datastore, self.events_namespace, "indexed", claim=False)
        item = self.datastore.get_item(self.log.head_key) or {}
        self.log.reset(int(item[NOTIFICATION_ID]["N"]) if NOTIFICATION_ID in item else 0)
        checkpoint = {k: v["S"] for k, v in item.get(CHECKPOINT, {}).get("M", {}).items()}
        self.reader.reset(checkpoint)
        self._loaded = True

    @property
    def last_id(self) -> int:
        """The last id this indexer assigned or found in the head."""
        return self.log.position

    @property
    def writes(self) -> int:
        """Writes this indexer committed."""
        return self.log.writes

    @property
    def checkpoint(self) -> dict[str, str]:
        """The checkpoint of the last write this indexer made or loaded."""
        return dict(self.reader.checkpoint)

    def know(self, indexed: Mapping[str, int]) -> None:
        """Takes the indexed versions of streams as read from their items (rebuild)."""
        for name, version in indexed.items():
            self.log.remember(name, version)

    def batch_of(self, record: Mapping[str, Any]) -> StreamBatch | None:
        """The event item a stream record inserted, or None if it is anything else."""
        return self.reader.batch_of(record, None)

    # -- following the stream ----------------------------------------------------------------

    def run(
        self, stopping: threading.Event, *, on_write: Callable[[int], None] | None = None
    ) -> None:
        """Follows the stream until ``stopping`` is set; stops between writes, never in one.

        An operational error (DynamoDB unreachable, throttled past botocore's retries) is
        logged and the indexer tries again from its checkpoint after a jittered pause that
        grows with failures in a row. While the stream is idle the pause between polls
        doubles, up to ``idle_poll_max``.
        """
        failures = idle = 0
        idle_pauses = Backoff(base=self.poll_interval, cap=self.idle_poll_max)
        while not stopping.is_set():
            try:
                indexed = self.poll_once()
            except OperationalError:
                failures += 1
                logger.exception("indexer poll failed; retrying from the checkpoint")
                Backoff(base=1.0, cap=60.0).pause(failures, stopping.wait)
                continue
            failures = 0
            if indexed:
                idle = 0
                if on_write is not None:
                    on_write(indexed)
                continue
            idle = idle + 1 if self.records_read == 0 else 0
            stopping.wait(idle_pauses.ceiling(idle + 1))

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

        Records that are not new event items of this namespace (the indexer's own writes,
        other applications' items) are skipped. The checkpoint is only written with events.
        Any failure drops what was read (it is read again from the checkpoint).
        """
        if not self._loaded:
            self.load()
        try:
            self.read_now = self._prefetched is None
            if self._prefetched is not None:
                pages, self._prefetched = self._prefetched.result(), None
            else:
                pages = self.reader.read_pages()
            self.records_read = sum(page.records for page in pages)
            for page in pages:
                self._marks[page.shard_id] = (page.read_until, page.finished)
            batches = [batch for page in pages for batch in page.batches]
            if self.records_read:
                # More may be waiting: read the next pages while these are written.
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(1, "indexer-reader")
                self._prefetched = self._executor.submit(self.reader.read_pages)
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
        except BaseException:
            self._loaded = False
            raise

    def _checkpoint_after(self, not_done: Iterable[StreamBatch]) -> dict[str, str]:
        """The checkpoint once every batch read but those in ``not_done`` is indexed, of the
        shards the stream still lists (trimmed ones are dropped, so it stays bounded)."""
        checkpoint = dict(self.reader.checkpoint)
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
        listed = self.reader.listed
        if listed is not None:
            checkpoint = {shard: value for shard, value in checkpoint.items() if shard in listed}
        return checkpoint

    # -- indexing ----------------------------------------------------------------------------

    def index(
        self,
        batches: Sequence[StreamBatch],
        *,
        checkpoint: Callable[[Iterable[StreamBatch]], dict[str, str]] | None = None,
    ) -> int:
        """Appends ``batches`` to the log (in as few writes as the limits allow, whole saves
        each); events appended. Batches already indexed are dropped; missing predecessors
        and the rest of partly read saves are read from the table first. ``checkpoint``
        gives the head's checkpoint after each write from the batches still to write
        (unchanged if None). Any failure but a lost race drops what this indexer cached."""
        if not self._loaded:
            self.load()
        todo = list(batches)
        appended = unlearned = 0
        try:
            while todo:
                shards = set(self.reader.checkpoint) | set(self._marks)
                chosen, todo, missing = self.log.choose(todo, shards)
                if missing:
                    todo = self.log.read_missing(missing) + todo
                    continue
                if not chosen:
                    break
                cp = checkpoint(todo) if checkpoint is not None else self.reader.checkpoint
                try:
                    self.log.write(chosen, cp)
                except Refused as refused:
                    unlearned = 0 if refused.learned else unlearned + 1
                    if unlearned >= MAX_UNLEARNED_REFUSALS:
                        msg = f"indexer write refused {unlearned} times in a row: {refused}"
                        raise OperationalError(msg) from None
                    if unlearned:
                        self.backoff.pause(unlearned)
                    todo = chosen + todo
                    continue
                self.reader.checkpoint = dict(cp)
                appended += sum(len(b.events) for b in chosen)
        except BaseException:
            self._loaded = False
            raise
        finally:
            self.events_indexed += appended
        return appended

    def status(self) -> IndexerStatus:
        """The log head, and a bounded sample of the stream records after the checkpoint
        (one ``GetRecords`` page per shard; read, not consumed)."""
        self.load()
        item = self.datastore.get_item(self.log.head_key) or {}
        last_write = float(item[WRITTEN_AT]["N"]) if WRITTEN_AT in item else None
        pending = 0
        more = False
        oldest: float | None = None
        for shard in self.reader.readable_shards():
            records = list(self.reader.peek(shard, pages=1))
            more = more or len(records) >= RECORDS_PER_READ
            for record in records:
                batch = self.reader.batch_of(record, None)
                if batch is None:
                    continue
                pending += len(batch.events)
                created = written_at(record)
                if created is not None and (oldest is None or created < oldest):
                    oldest = created
        age = time.time() - oldest if oldest is not None else None
        return IndexerStatus(self.log.position, last_write, self.checkpoint, pending, age, more)
