"""``orders projections ...`` on the local backend: queries, status, re-projection, errors."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from adapters.cli.demo import run_demo
from adapters.cli.main import app
from adapters.local.backend import local_env
from orders import OrderService

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
