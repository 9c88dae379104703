"""``EventStreams`` on DynamoDB Local in both write modes."""

from __future__ import annotations

import pytest

from orders.streams import EventStreams
from tests.support import streams_contract
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = pytest.mark.dynamodb


class StreamsOnDynamoDB(DynamoDBLocalTestCase):
    write_mode = "transactional"

    def env(self) -> dict[str, str]:
        return {**self.dynamodb_env(), "DYNAMODB_WRITE_MODE": self.write_mode}

    def streams(self) -> EventStreams:
        streams = EventStreams(self.env())
        self.addCleanup(streams.close)
        return streams

    def test_appends_and_reads_typed_events_with_their_metadata(self) -> None:
        streams_contract.appends_and_reads_typed_events_with_their_metadata(self.streams())

    def test_a_stale_expected_version_is_refused_and_writes_nothing(self) -> None:
        streams_contract.a_stale_expected_version_is_refused_and_writes_nothing(self.streams())

    def test_two_writer_processes_race_on_one_stream(self) -> None:
        streams_contract.two_writer_processes_race_on_one_stream(self.env())


class TestStreamsTransactional(StreamsOnDynamoDB):
    write_mode = "transactional"


class TestStreamsIndexed(StreamsOnDynamoDB):
    write_mode = "indexed"


del StreamsOnDynamoDB  # Only its two modes run.
