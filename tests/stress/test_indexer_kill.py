"""The indexer (``orders indexer run``) SIGKILLed at random moments while events are saved.

Acceptance run, behind the ``acceptance`` marker (about a minute)::

    .venv/bin/python -m pytest -m acceptance tests/stress/test_indexer_kill.py -rP

A writer thread saves events (some saves of several events) to 30 streams in the indexed
mode while ``orders indexer run`` runs as a separate process; it is SIGKILLed at 20 random
moments (each after it has loaded its checkpoint) and started again each time. Then the
writes stop, a last indexer process catches up and is stopped with SIGTERM (it must exit 0).
The log must hold every stored event exactly once, ids 1..M without a gap, each stream in
version order: nothing lost, nothing twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from adapters.dynamodb import DynamoDBIndexedApplicationRecorder
from adapters.dynamodb.repair import verify
from tests.stress.processes import wait_until
from tests.support.dynamodb_local import DynamoDBLocalTestCase

pytestmark = [pytest.mark.dynamodb, pytest.mark.acceptance]

KILLS = 20
STREAMS = 30
NAMESPACE = "orderservice_events"  # The CLI's application is OrderService.
ORDERS = Path(sys.executable).with_name("orders")


class TestIndexerKilled(DynamoDBLocalTestCase):
    def start_indexer(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **self.dynamodb_env(),
            "DYNAMODB_WRITE_MODE": "indexed",
            "PYTHONUNBUFFERED": "1",
        }
        command = [str(ORDERS), "--backend", "dynamodb", "--table", self.table_name]
        return subprocess.Popen(
            [*command, "indexer", "run", "--poll-interval", "0.05"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    @pytest.mark.timeout(300)
    def test_sigkilled_indexer_loses_nothing_and_repeats_nothing(self) -> None:
        recorder = DynamoDBIndexedApplicationRecorder(self.datastore, events_namespace=NAMESPACE)
        streams = [uuid4() for _ in range(STREAMS)]
        versions = dict.fromkeys(streams, 0)
        stopping = threading.Event()
        rng = random.Random(9)
        saved = 0

        def write() -> None:
            nonlocal saved
            while not stopping.is_set():
                stream = rng.choice(streams)
                size = 1 if rng.random() < 0.8 else rng.randint(2, 5)
                first = versions[stream] + 1
                recorder.insert_events(
                    [StoredEvent(stream, v, "topic", b"{}") for v in range(first, first + size)]
                )
                versions[stream] += size
                saved += size
                time.sleep(0.002)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        kills = []
        try:
            for _ in range(KILLS):
                process = self.start_indexer()
                assert process.stdout is not None
                started = process.stdout.readline()  # Once it has loaded its checkpoint.
                self.assertIn(b"following the stream", started)
                time.sleep(rng.uniform(0.05, 1.0))
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills.append(process.returncode)
        finally:
            stopping.set()
            writer.join()
        self.assertEqual(kills, [-signal.SIGKILL] * KILLS)
        partial = verify(self.datastore, NAMESPACE)
        self.assertEqual((partial.gaps, partial.duplicates, partial.out_of_order), ([], [], []))
        self.assertGreater(partial.log_events, 0, "the killed indexers indexed nothing")

        last = self.start_indexer()
        wait_until(lambda: (recorder.max_notification_id() or 0) >= saved, 120, "no catch-up")
        last.send_signal(signal.SIGTERM)
        out, err = last.communicate(timeout=30)
        self.assertEqual(last.returncode, 0, err.decode())
        self.assertIn(b"indexer: stopped", out)

        report = verify(self.datastore, NAMESPACE)
        self.assertTrue(report.ok, report)
        self.assertEqual((report.log_events, report.stored_events, report.last_id), (saved,) * 3)
        print(
            f"{saved} events saved in {STREAMS} streams while the "
            f"indexer was SIGKILLed {KILLS} times (indexed before the last restart: "
            f"{partial.log_events}); after catch-up: ids 1..{report.last_id}, each event once, "
            "each stream in version order"
        )
