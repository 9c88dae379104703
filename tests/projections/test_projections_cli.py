"""``orders projections ...`` on the local backend: queries, status, re-projection, errors."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from adapters.bootstrap.projections import sqlite_view_store
from adapters.cli.demo import run_demo
from adapters.cli.main import app
from adapters.local.backend import local_env
from orders import OrderService
from projections.generations import live_generation
from projections.ports import Put, Row
from projections.views import PROJECTIONS, OrderViews

runner = CliRunner()


def orders(data_dir: Path, *arguments: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), "projections", *arguments])
    return result.exit_code, result.stdout, result.stderr


def test_run_status_queries_and_reprojecting_an_order(tmp_path: Path) -> None:
    service = OrderService(env=local_env(tmp_path))
    summary = run_demo(service, 20, seed=1)
    head = service.recorder.max_notification_id()
    code, out, _ = orders(tmp_path, "status")
    assert code == 0
    assert re.search(rf"order_summary\s*│\s*1\s*│\s*0\s*│\s*{head}\s*│", out), out

    code, out, _ = orders(tmp_path, "run", "--once")
    assert code == 0
    assert f"order_summary: {head} notifications processed" in out
    code, out, _ = orders(tmp_path, "status")
    assert re.search(r"order_summary\s*│\s*1\s*│\s*\d+\s*│\s*0\s*│", out), out

    order_id = summary.placed[0]
    order = service.get_order(order_id)
    code, out, _ = orders(tmp_path, "order", str(order_id))
    assert code == 0 and order.status in out and str(order.total) in out
    code, out, _ = orders(tmp_path, "totals")
    assert code == 0 and "EUR" in out
    code, out, _ = orders(tmp_path, "customer", order.customer_id, "--limit", "1")
    assert code == 0 and "orders of" in out

    code, out, _ = orders(tmp_path, "rebuild", "order_summary", "--order", str(order_id))
    assert code == 0 and f"order {order_id} re-projected" in out


def test_operational_errors_are_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    code, _, err = orders(tmp_path, "rebuild", "no_such_view")
    assert code == 2
    assert err.strip().count("\n") == 0 and "no projection named 'no_such_view'" in err
    unknown = "00000000-0000-4000-8000-000000000000"
    code, _, err = orders(tmp_path, "order", unknown)
    assert code == 1 and unknown in err
    code, _, err = orders(tmp_path, "rebuild", "order_summary", "--order", unknown)
    assert code == 1 and unknown in err
    code, _, err = orders(tmp_path, "customer", "c-1", "--after", "garbage")
    assert code == 2 and "not a page token" in err
    code, _, err = orders(tmp_path, "run", "nothing")
    assert code == 2 and "no projection named 'nothing'" in err


def test_the_demo_ends_by_rebuilding_a_view_that_equals_the_live_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "demo", "--orders", "15"])
    assert result.exit_code == 0, result.output
    assert "orders_by_status view (generation 1) beside the aggregates" in result.output
    assert "orders_by_status: generation 2 built from the start" in result.output
    assert "verify: the rebuilt view equals the live one" in result.output


def test_verify_checks_before_switching_and_a_difference_exits_3(tmp_path: Path) -> None:
    service = OrderService(env=local_env(tmp_path))
    order_id = run_demo(service, 10, seed=2).placed[0]
    assert orders(tmp_path, "run", "--once")[0] == 0
    real = service.get_order(order_id).total
    store = sqlite_view_store(tmp_path)
    partition, key = PROJECTIONS["order_summary"].order_row(order_id)
    row = store.get("order_summary@1", partition, key)
    assert row is not None
    damaged = {**row.data, "total": Decimal("12.50")}
    store.commit([Put(Row(row.view, partition, key, damaged, row.version), row.version)])

    code, out, _ = orders(tmp_path, "rebuild", "order_summary", "--verify")
    assert code == 3
    assert "verify: 1 rows differ" in out
    assert re.search(rf"total\s*│\s*12\.50\s*│\s*{re.escape(str(real))}\s*│", out), out
    assert "Decimal(" not in out
    assert "readers NOT switched" in out
    assert live_generation(store, "order_summary") == 1
    assert store.get("order_summary@1", partition, key) == Row(
        row.view, partition, key, damaged, row.version
    )

    code, out, _ = orders(tmp_path, "rebuild", "order_summary", "--verify", "--switch-anyway")
    assert code == 3
    assert "readers switched from generation 1" in out
    assert live_generation(store, "order_summary") == 2
    summary = OrderViews(store).order(order_id)
    assert summary is not None and summary["total"] == real

    code, out, _ = orders(tmp_path, "rebuild", "order_summary", "--verify")
    assert code == 0
    assert "verify: the rebuilt view equals the live one" in out
    assert live_generation(store, "order_summary") == 3
