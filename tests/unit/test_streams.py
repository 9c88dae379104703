"""``EventStreams`` on SQLite: appends, reads, stale expected versions, racing processes."""

from __future__ import annotations

from pathlib import Path

from orders.streams import EventStreams
from tests.support import streams_contract


def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "s.db")}


def test_appends_and_reads_typed_events_with_their_metadata(tmp_path: Path) -> None:
    with EventStreams(sqlite_env(tmp_path)) as streams:
        streams_contract.appends_and_reads_typed_events_with_their_metadata(streams)


def test_a_stale_expected_version_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    with EventStreams(sqlite_env(tmp_path)) as streams:
        streams_contract.a_stale_expected_version_is_refused_and_writes_nothing(streams)


def test_two_writer_processes_race_on_one_stream(tmp_path: Path) -> None:
    streams_contract.two_writer_processes_race_on_one_stream(sqlite_env(tmp_path))
