"""The local backend keeps its dead letters: a poison envelope dead-lettered by the in-process
bus survives the process, ``orders dlq list`` shows it, ``orders dlq redrive`` applies it once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from adapters.bootstrap.consumers import local_handlers
from adapters.bootstrap.projections import sqlite_view_store
from adapters.bootstrap.relay import relay_for
from adapters.cli.demo import run_demo
from adapters.local.backend import EVENTS_FILE_NAME, local_env
from adapters.local.bus import InProcessBus, LocalDeadLetters
from orders import OrderService
from schemas import parse_envelope
from tests.consumers.builders import logged_envelopes, replayed, view_contents


def orders(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``orders --data-dir DATA_DIR ARGUMENTS...`` in a process of its own."""
    command = [str(Path(sys.executable).with_name("orders")), "--data-dir", str(data_dir)]
    return subprocess.run(
        [*command, *arguments], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_dead_letter_outlives_the_process_and_is_redriven_once(tmp_path: Path) -> None:
    service = OrderService(env=local_env(tmp_path))
    run_demo(service, 8, seed=3)
    envelopes = logged_envelopes(service)
    # The last event of some order: no later event of it can fill the gap it leaves.
    last_of_order = {envelope.detail.order_id: envelope for envelope in envelopes}
    poison = str(next(iter(last_of_order.values())).id)
    views = sqlite_view_store(tmp_path)
    (handler,) = local_handlers(service, views).values()

    def buggy(body: str) -> None:
        if str(parse_envelope(body).id) == poison:
            msg = "the consumer's bug"
            raise RuntimeError(msg)
        handler(body)

    dead_letters = LocalDeadLetters(tmp_path / EVENTS_FILE_NAME)
    bus = InProcessBus({"views": buggy}, dead_letters)
    assert relay_for(service, bus).run_until_caught_up(deadline=time.time() + 120) == len(envelopes)
    assert view_contents(views, envelopes) != view_contents(replayed(envelopes), envelopes)
    dead_letters.close()
    views.close()
    service.close()

    listed = orders(tmp_path, "dlq", "list", "views", "--transport", "in-process")
    assert listed.returncode == 0, listed.stderr
    assert "1 dead letter(s) of views" in listed.stdout
    assert poison in listed.stdout
    assert "RuntimeError: the consumer's bug" in listed.stdout

    redriven = orders(tmp_path, "dlq", "redrive", "views", "--transport", "in-process")
    assert redriven.returncode == 0, redriven.stderr
    assert "redrove 1 message(s) to views" in redriven.stdout
    again = orders(tmp_path, "dlq", "redrive", "views", "--transport", "in-process")
    assert "redrove 0 message(s) to views" in again.stdout

    views = sqlite_view_store(tmp_path)
    assert view_contents(views, envelopes) == view_contents(replayed(envelopes), envelopes)
    assert LocalDeadLetters(tmp_path / EVENTS_FILE_NAME).count() == 0


def test_an_unknown_route_is_one_clear_line(tmp_path: Path) -> None:
    result = orders(tmp_path, "dlq", "list", "nowhere", "--transport", "in-process")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "orders: error: the local bus has no route 'nowhere' (routes: views, notifications, saga)"
    )
