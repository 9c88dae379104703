"""What every backend of ``EventStreams`` must do: checks run on SQLite and DynamoDB Local."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from orders.streams import EventStreams, ExpectedVersionError, StreamEvent

SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True, kw_only=True)
class PaymentAuthorised(StreamEvent):
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class PaymentCaptured(StreamEvent):
    capture_id: str


def appends_and_reads_typed_events_with_their_metadata(streams: EventStreams) -> None:
    """Two appends, the second at the expected version: every event back, typed, in order,
    with its version, the append's correlation id and a UTC timestamp."""
    stream_id = uuid4()
    first = [PaymentAuthorised(amount=Decimal("9.99"))]
    assert streams.append(stream_id, first, expected_version=0, correlation_id="c-1") == 1
    then = [PaymentCaptured(capture_id="cap-1"), PaymentCaptured(capture_id="cap-2")]
    assert streams.append(stream_id, then, expected_version=1, causation_id="pay-1") == 3

    events = list(streams.get_events(stream_id))
    assert [type(e) for e in events] == [PaymentAuthorised, PaymentCaptured, PaymentCaptured]
    assert [e.version for e in events] == [1, 2, 3]
    assert {e.stream_id for e in events} == {stream_id}
    assert isinstance(events[0], PaymentAuthorised) and events[0].amount == Decimal("9.99")
    assert events[0].correlation_id == "c-1"
    assert events[1].correlation_id == events[2].correlation_id != "c-1"
    assert (events[0].causation_id, events[2].causation_id) == (None, "pay-1")
    assert all(e.timestamp.utcoffset() is not None for e in events)
    assert [e.version for e in streams.get_events(stream_id, from_version=2)] == [3]
    assert list(streams.get_events(uuid4())) == []


def a_stale_expected_version_is_refused_and_writes_nothing(streams: EventStreams) -> None:
    """Expecting version 1 of a stream at 2, or 0 of an existing one: the error names both
    versions, and the stream is as it was."""
    stream_id = uuid4()
    streams.append(
        stream_id, [PaymentAuthorised(amount=Decimal(5)), PaymentCaptured(capture_id="a")]
    )
    for stale in (1, 0, 3):
        with pytest.raises(ExpectedVersionError) as refused:
            streams.append(stream_id, [PaymentCaptured(capture_id="b")], expected_version=stale)
        assert (refused.value.expected_version, refused.value.actual_version) == (stale, 2)
        assert f"expected version {stale}, found version 2" in str(refused.value)
    assert [e.version for e in streams.get_events(stream_id)] == [1, 2]
    assert streams.append(stream_id, [PaymentCaptured(capture_id="c")]) == 3  # No check.


def _racer(env: dict[str, str], stream_id: UUID, name: str, start_at: float) -> str:
    streams = EventStreams(env)
    time.sleep(max(0.0, start_at - time.time()))
    try:
        streams.append(stream_id, [PaymentCaptured(capture_id=name)], expected_version=1)
    except ExpectedVersionError as error:
        return f"refused at {error.actual_version}"
    finally:
        streams.close()
    return "won"


def two_writer_processes_race_on_one_stream(env: dict[str, str]) -> None:
    """Two processes append at expected version 1 at the same moment: one wins, the other is
    refused (found version 2), and the stream holds the winner's event alone after version 1."""
    streams = EventStreams(env)
    stream_id = uuid4()
    streams.append(stream_id, [PaymentAuthorised(amount=Decimal(1))])
    start_at = time.time() + 3.0  # Both processes imported and connected by then.
    with SPAWN.Pool(2) as pool:
        answers = pool.starmap(
            _racer, [(env, stream_id, name, start_at) for name in ("first", "second")]
        )
    assert sorted(answers) == ["refused at 2", "won"]
    events = list(streams.get_events(stream_id))
    winner = ("first", "second")[answers.index("won")]
    assert [e.version for e in events] == [1, 2]
    assert isinstance(events[1], PaymentCaptured) and events[1].capture_id == winner
    streams.close()
