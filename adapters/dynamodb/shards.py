"""Reading the table's DynamoDB Stream for the indexer: shards, pages, stream batches.

:class:`ShardReader` lists the stream's shards (again every minute, and when all are read),
reads them children after parents, one ``GetRecords`` page per shard and call, from the
indexer's checkpoint, and turns the records of new stream items into :class:`StreamBatch`.
It never writes; the indexer (:mod:`adapters.dynamodb.indexer`) decides what is committed.
An expired iterator or trimmed data is read on anew from the last record read (records seen
twice are dropped by the indexer's indexed-version check).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from botocore.exceptions import BotoCoreError, ClientError
from eventsourcing.persistence import OperationalError

from adapters.deploy.resources import SETUP_COMMAND
from adapters.dynamodb.datastore import DynamoDBDatastore, Item, translate_errors
from adapters.dynamodb.items import (
    EVENTS,
    LAST,
    SAVE_LAST,
    decode_originator,
    encode_originator,
)
from adapters.dynamodb.table import value_size

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

logger = logging.getLogger(__name__)

FINISHED = "end"
"""A finished shard's checkpoint value: closed and read to its end."""
SHARDS_REFRESH_SECONDS = 60.0
RECORDS_PER_READ = 1000
"""Records per ``GetRecords`` (DynamoDB Streams' maximum)."""


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
    save_last: int = 0
    """The last version of this stream in the save that wrote the batch (``last`` if the
    item does not say: written before saves said how far they go)."""

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
            save_last=int(item[SAVE_LAST]["N"]) if SAVE_LAST in item else int(item[LAST]["N"]),
        )


@dataclass(frozen=True)
class Page:
    """One ``GetRecords`` page of a shard: its batches, and where the shard stood after it."""

    shard_id: str
    batches: list[StreamBatch]
    records: int
    read_until: str | None
    finished: bool
    newest: float | None = None
    """When the newest record of ``batches`` was written (epoch seconds), if known."""


@dataclass
class Shard:
    """What the indexer knows of one shard while reading it."""

    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    finished: bool = False
    read_until: str | None = None
    """Sequence number of the last record read (indexed, skipped, or still pending)."""
    ending: str | None = None
    """The shard's last sequence number once it is closed (from ``DescribeStream``)."""


class ShardReader:
    """Reads the shards of the stream of ``datastore``'s table through ``streams``.

    ``checkpoint`` (per shard, the sequence number read up to, or :data:`FINISHED`) is where a
    shard is read from when this reader has not read it yet; the indexer keeps it current.
    """

    def __init__(
        self, datastore: DynamoDBDatastore, streams: DynamoDBStreamsClient | None, prefix: str
    ) -> None:
        self.datastore = datastore
        self.streams = streams
        self.stream_prefix = prefix
        self.checkpoint: dict[str, str] = {}
        self.shards: dict[str, Shard] = {}
        self.listed: set[str] | None = None
        """The shards the stream listed last (None before the first listing)."""
        self.arn = ""
        self.described_at = 0.0

    def reset(self, checkpoint: dict[str, str]) -> None:
        """Forgets what was read; reads again from ``checkpoint``."""
        self.checkpoint = checkpoint
        self.shards.clear()
        self.described_at = 0.0

    def stream_arn(self) -> str:
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
        arn = self.stream_arn()
        kwargs: dict[str, Any] = {"StreamArn": arn}
        listed: set[str] = set()
        while True:
            with streams_errors():
                description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                listed.add(shard_id)
                if shard_id not in self.shards:
                    self.shards[shard_id] = Shard(
                        shard_id,
                        shard.get("ParentShardId"),
                        finished=self.checkpoint.get(shard_id) == FINISHED,
                    )
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                self.shards[shard_id].ending = ending
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        self.arn = arn
        self.listed = listed
        for shard_id in list(self.shards):
            if shard_id not in listed:  # Trimmed away after 24 hours.
                del self.shards[shard_id]

    def readable_shards(self) -> list[Shard]:
        """Shards not finished whose parent is finished or gone (children after parents);
        the stream's shards are listed again every minute and when all are finished."""
        stale = time.monotonic() - self.described_at > SHARDS_REFRESH_SECONDS
        if stale or all(s.finished for s in self.shards.values()):
            self._describe_shards()
            self.described_at = time.monotonic()
        return [
            shard
            for shard in self.shards.values()
            if not shard.finished
            and (shard.parent_id not in self.shards or self.shards[shard.parent_id].finished)
        ]

    def read_pages(self) -> list[Page]:
        return [self.read_page(shard) for shard in self.readable_shards()]

    def read_page(self, shard: Shard) -> Page:
        assert self.streams is not None
        if shard.iterator is None:
            shard.iterator = self.iterator(shard)
        try:
            with streams_errors():
                page = self.streams.get_records(
                    ShardIterator=shard.iterator, Limit=RECORDS_PER_READ
                )
        except (ExpiredIteratorError, TrimmedError) as error:
            # Read past a closed shard's end (as DynamoDB Local reports it), or an old
            # iterator: list the shards again, and go on from the last record read (records
            # read twice are dropped by the indexed-version check).
            self.described_at = 0.0
            read_all = shard.read_until is not None and shard.ending is not None
            if read_all and int(shard.read_until or 0) >= int(shard.ending or 0):
                shard.finished = True
            else:
                logger.warning("shard %s: %s; reading on anew", shard.shard_id, error)
                shard.iterator = self.iterator(shard)
            return Page(shard.shard_id, [], 0, shard.read_until, finished=shard.finished)
        batches = []
        newest: float | None = None
        previous = shard.read_until or self.checkpoint.get(shard.shard_id)
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
        return Page(shard.shard_id, batches, records, shard.read_until, shard.finished, newest)

    def iterator(self, shard: Shard) -> str:
        assert self.streams is not None
        after = shard.read_until or self.checkpoint.get(shard.shard_id)
        kwargs: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard.shard_id}
        if after and after != FINISHED:
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        try:
            with streams_errors():
                return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
        except TrimmedError:
            logger.error(
                "shard %s was trimmed past the checkpoint %s: records were lost to the stream's "
                "24 hours; run `orders indexer rebuild` to index them from the table",
                shard.shard_id,
                after,
            )
            kwargs = {k: v for k, v in kwargs.items() if k != "SequenceNumber"}
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            with streams_errors():
                return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]

    def batch_of(self, record: Mapping[str, Any], position: Position | None) -> StreamBatch | None:
        """The indexed-mode batch a stream record inserted, or None if it is anything else."""
        if record.get("eventName") != "INSERT":
            return None
        image: Item = record.get("dynamodb", {}).get("NewImage") or {}
        pk = image.get("pk", {}).get("S", "")
        if not pk.startswith(self.stream_prefix) or LAST not in image:
            return None
        return StreamBatch.from_item(image, position)

    def peek(self, shard: Shard, pages: int = 1) -> Iterator[Mapping[str, Any]]:
        """At most ``pages`` pages of records of ``shard`` after the checkpoint."""
        assert self.streams is not None
        iterator: str | None = self.iterator(shard)
        for _ in range(pages):
            if iterator is None:
                return
            with streams_errors():
                page = self.streams.get_records(ShardIterator=iterator, Limit=RECORDS_PER_READ)
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


class ExpiredIteratorError(Exception):
    pass


class TrimmedError(Exception):
    pass


@contextlib.contextmanager
def streams_errors() -> Iterator[None]:
    """DynamoDB Streams errors: an expired iterator or trimmed data for the caller to handle,
    anything else as the library's ``OperationalError``."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ExpiredIteratorException":
            raise ExpiredIteratorError(code) from error
        if code == "TrimmedDataAccessException":
            raise TrimmedError(code) from error
        raise OperationalError(f"DynamoDB Streams: {error}") from error
    except BotoCoreError as error:
        raise OperationalError(f"DynamoDB Streams: {error}") from error
