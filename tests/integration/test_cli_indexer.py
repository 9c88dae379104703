"""``orders indexer ...`` and the demo in the indexed write mode, on DynamoDB Local."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.dynamodb import DynamoDBDatastore, DynamoDBIndexedApplicationRecorder
from tests.support.dynamodb_local import dynamodb_local
from tests.test_cli import dynamodb_table  # noqa: F401 - the fixture this one builds on.

pytestmark = pytest.mark.dynamodb

runner = CliRunner()


@pytest.fixture
def indexed_table(dynamodb_table: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """A fresh table on DynamoDB Local, the indexed mode chosen by the environment."""
    monkeypatch.setenv("DYNAMODB_WRITE_MODE", "indexed")
    return dynamodb_table


def orders(table: str, *arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--backend", "dynamodb", "--table", table, *arguments])
    return result.exit_code, result.output


def test_the_demo_indexes_in_process_and_the_indexer_commands_see_and_repair(
    indexed_table: str,
) -> None:
    code, output = orders(indexed_table, "demo", "--orders", "15")
    assert code == 0, output
    logged = int(re.search(r"events in the notification log\s*│\s*(\d+)", output)[1])  # type: ignore[index]
    assert logged > 15

    code, output = orders(indexed_table, "indexer", "verify")
    assert (code, f"log: {logged} events") == (0, output.split(",")[0]), output

    recorder = DynamoDBIndexedApplicationRecorder(
        DynamoDBDatastore(dynamodb_local().client(), indexed_table), "orderservice_events"
    )
    order_id = uuid4()
    recorder.insert_events([StoredEvent(order_id, v, "topic", b"{}") for v in (1, 2)])
    code, output = orders(indexed_table, "indexer", "status")
    assert code == 0, output
    assert f"last id: {logged}" in output
    assert "events in the stream not indexed yet: 2" in output
    code, output = orders(indexed_table, "indexer", "verify")
    assert code == 1
    assert "stored events not in the log (run `orders indexer rebuild`): 2" in output

    code, output = orders(indexed_table, "indexer", "rebuild")
    assert (code, f"rebuild: 2 events appended, last id {logged + 2}") == (0, output.strip())
    assert orders(indexed_table, "indexer", "verify")[0] == 0


def test_the_indexer_on_the_local_backend_is_one_clear_line(tmp_path: object) -> None:
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "indexer", "status"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "orders: error: the indexer works on the DynamoDB backend: use --backend dynamodb"
    ]


def test_the_indexer_worker_reports_its_lag_when_metrics_are_on(indexed_table: str) -> None:
    command = [str(Path(sys.executable).with_name("orders")), "--backend", "dynamodb"]
    worker = subprocess.Popen(
        [*command, "--table", indexed_table, "indexer", "run", "--poll-interval", "0.05"],
        env={**os.environ, "ORDERS_METRICS": "emf", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for customer in ("c-1", "c-2", "c-3"):
            code, output = orders(
                indexed_table, "place", "--customer", customer, "--line", "BOOK-001:1:12.50"
            )
            assert code == 0, output
        deadline = time.monotonic() + 30
        while orders(indexed_table, "indexer", "verify")[0] != 0:
            assert time.monotonic() < deadline, "the worker did not index the orders"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    emitted = [
        json.loads(line)["IndexerLag"] for line in stdout.splitlines() if "IndexerLag" in line
    ]
    lags = [lag for value in emitted for lag in (value if isinstance(value, list) else [value])]
    assert lags, stdout  # Flushed at the latest when the command ends.
    # From the records' ApproximateCreationDateTime: AWS rounds it down to the second,
    # DynamoDB Local to the minute.
    assert all(0 <= lag < 120_000 for lag in lags), lags
    assert "indexer: stopped; 3 events indexed" in stderr  # progress: on stderr
