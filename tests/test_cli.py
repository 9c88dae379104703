"""The ``orders`` command on the embedded local backend."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from adapters.cli import app

runner = CliRunner()


def figure(output: str, name: str) -> int:
    match = re.search(rf"{name}\s*│\s*([\d,]+)", output)
    assert match, f"{name!r} not in the output:\n{output}"
    return int(match.group(1).replace(",", ""))


def test_demo_places_orders_audits_one_and_persists_between_runs(tmp_path: Path) -> None:
    first = runner.invoke(app, ["demo", "--orders", "30", "--data-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert figure(first.output, "orders placed") == 30
    assert "history of order" in first.output
    events_after_first_run = figure(first.output, "events in the notification log")
    assert events_after_first_run > 30

    second = runner.invoke(app, ["demo", "--orders", "10", "--data-dir", str(tmp_path)])
    assert second.exit_code == 0, second.output
    assert figure(second.output, "events in the notification log") > events_after_first_run


def test_show_of_an_unknown_order_names_it_and_fails(tmp_path: Path) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    result = runner.invoke(app, ["show", unknown, "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert unknown in result.output
