"""Runners in processes of their own on the local backend: SIGKILLed and restarted, and two at once.

The full acceptance run (30 kills over at least 2,000 events) is behind the ``acceptance``
marker: ``.venv/bin/python -m pytest tests/projections -m acceptance``. The default run does the
same with 5 kills over about 600 events.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from adapters.cli.demo import run_demo
from adapters.local.backend import local_env
from adapters.local.views import SQLiteViewStore
from orders import OrderService
from projections.generations import live_generation, view_name
from projections.views import PROJECTIONS
from tests.projections.support import all_contents, replayed

ORDERS = str(Path(sys.executable).with_name("orders"))


def orders_command(data_dir: Path, *arguments: str) -> list[str]:
    return [ORDERS, "--data-dir", str(data_dir), "projections", *arguments]


def positions(store: SQLiteViewStore) -> list[int]:
    return [
        store.position(view_name(name, live_generation(store, name))) or 0 for name in PROJECTIONS
    ]


def kill_and_restart(data_dir: Path, kills: int, orders: int, seed: int) -> None:
    """Write ``orders`` orders' events (half before, half while the runner works), SIGKILL
    the runner ``kills`` times at random moments while it projects, restart it each time,
    then check the views equal a from-scratch replay."""
    service = OrderService(env=local_env(data_dir))
    run_demo(service, orders // 2, seed)
    writer = threading.Thread(
        target=run_demo,
        args=(OrderService(env=local_env(data_dir)), orders - orders // 2, seed + 1),
    )
    writer.start()
    store = SQLiteViewStore(data_dir / "views.sqlite3")
    rng = random.Random(seed)
    mid_projection = 0
    run = orders_command(
        data_dir, "run", "--batch-size", "10", "--poll-interval", "0.05", "--max-rate", "150"
    )
    for _ in range(kills):
        process = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = positions(store)
        deadline = time.monotonic() + 30
        while positions(store) == before and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        head = service.recorder.max_notification_id() or 0
        mid_projection += min(positions(store)) < head
    writer.join()
    finish = subprocess.run(
        orders_command(data_dir, "run", "--once"), capture_output=True, text=True, check=False
    )
    assert finish.returncode == 0, finish.stderr
    head = service.recorder.max_notification_id() or 0
    assert positions(store) == [head] * len(PROJECTIONS)
    assert mid_projection >= kills * 2 // 3, f"only {mid_projection} of {kills} kills mid-work"
    decode = service.mapper.to_domain_event
    assert all_contents(store, service.recorder, decode) == replayed(service.recorder, decode)
    print(f"{kills} SIGKILLs ({mid_projection} while projecting) over {head} events: views exact")


def test_a_runner_killed_at_random_moments_ends_with_exact_views(tmp_path: Path) -> None:
    kill_and_restart(tmp_path, kills=5, orders=180, seed=21)


@pytest.mark.acceptance
def test_a_runner_killed_30_times_over_2000_events_ends_with_exact_views(tmp_path: Path) -> None:
    kill_and_restart(tmp_path, kills=30, orders=640, seed=42)
    service = OrderService(env=local_env(tmp_path))
    assert (service.recorder.max_notification_id() or 0) >= 2000


def test_two_runners_started_together_keep_the_views_exact(tmp_path: Path) -> None:
    service = OrderService(env=local_env(tmp_path))
    run_demo(service, 60, seed=8)
    run = orders_command(tmp_path, "run", "--batch-size", "5", "--poll-interval", "0.02")
    processes = [
        subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    run_demo(service, 60, seed=9)
    store = SQLiteViewStore(tmp_path / "views.sqlite3")
    head = service.recorder.max_notification_id() or 0
    deadline = time.monotonic() + 60
    while positions(store) != [head] * len(PROJECTIONS) and time.monotonic() < deadline:
        time.sleep(0.05)
    outputs = []
    for process in processes:
        process.send_signal(signal.SIGTERM)  # a clean stop: exit status 0, counts printed
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
        outputs.append(stdout)
    assert all("notifications processed" in output for output in outputs)
    assert positions(store) == [head] * len(PROJECTIONS)
    decode = service.mapper.to_domain_event
    assert all_contents(store, service.recorder, decode) == replayed(service.recorder, decode)
