"""``orders`` from scripts: every command that prints data prints JSON with ``--output json``,
and every command keeps the README's exit-code table (0 ok, 1 operational, 2 usage)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner, Result

from adapters.cli.main import app
from tests.relay.support import fresh_moto
from tests.test_cli import dynamodb_table  # noqa: F401 - the fixture the indexer case uses
from tests.test_readme import README, section

runner = CliRunner()
UNKNOWN = "00000000-0000-4000-8000-000000000001"

NO_DATA = {
    ("consumers", "run"): "a worker: progress on stderr only",
    ("indexer", "run"): "a worker: progress on stderr only",
    ("indexer", "verify"): "verify's output belongs to the verify work (issue 20 item 5)",
    ("package",): "runs pip: its JSON is asserted in tests/test_cli_package.py",
    ("parked", "retry"): "needs a parked order: tests/relay/test_parking_acceptance.py",
    ("parked", "skip"): "needs a parked order: tests/relay/test_parking_acceptance.py",
    ("aws", "setup"): "needs AWS endpoints: tests/test_aws_setup.py runs it on moto",
}
"""Commands this test does not run with ``--output json``, and why."""


def command_paths() -> list[tuple[str, ...]]:
    """Every runnable command of ``orders`` (lazily loaded sub-apps included)."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if isinstance(command, typer.core.TyperGroup):
            context = typer.Context(command)
            for name in command.list_commands(context):
                yield from walk(command.get_command(context, name), (*path, name))
        else:
            yield path

    return list(walk(get_command(app), ()))


def invoke(*arguments: str) -> Result:
    return runner.invoke(app, list(arguments))


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A data dir after a small demo (orders, views, downstream views), and the ids in it."""
    data_dir = tmp_path_factory.mktemp("json")
    result = invoke("--data-dir", str(data_dir), "demo", "--orders", "12", "--output", "json")
    assert result.exit_code == 0, result.output
    demo = json.loads(result.stdout)
    audited = demo["audited_order_id"]
    shown = json.loads(invoke("--data-dir", str(data_dir), "show", audited, "--json").stdout)
    placed = json.loads(
        invoke(
            *("--data-dir", str(data_dir), "place", "--customer", "c-json"),
            *("--line", "BOOK-001:1:12.50", "--output", "json"),
        ).stdout
    )
    return {
        "dir": str(data_dir),
        "audited": audited,
        "customer": shown["customer_id"],
        "pending": placed["order_id"],
        "day": demo["orders_by_status"] and shown_day(data_dir, shown["customer_id"]),
    }


def shown_day(data_dir: Path, customer: str) -> str:
    document = json.loads(
        invoke("--data-dir", str(data_dir), "downstream", "customer", customer, "--json").stdout
    )
    placed_at: str = document["orders"][0]["placedAt"]
    return placed_at[:10]


def local_cases(ids: dict[str, str]) -> dict[tuple[str, ...], list[str]]:
    """The arguments of each local command, after its path."""
    pending, audited = ids["pending"], ids["audited"]
    return {
        ("place",): ["--customer", "c-2", "--line", "MUG-002:1:8.99"],
        ("change-lines",): [pending, "--line", "BOOK-001:2:12.50"],
        ("pay",): [pending, "--payment-id", "p-json", "--amount", "25.00"],
        ("ship",): [pending],
        ("complete",): [pending],
        ("cancel",): [json.loads(invoke(*place_args(ids)).stdout)["order_id"], "--reason", "r"],
        ("show",): [audited],
        ("history",): [audited],
        ("list",): ["--customer", ids["customer"]],
        ("log", "tail"): ["--once", "--from", "1"],
        ("demo",): ["--orders", "3"],
        ("projections", "run"): ["--once"],
        ("projections", "status"): [],
        ("projections", "rebuild"): ["order_summary", "--verify", "--grace", "0"],
        ("projections", "order"): [audited],
        ("projections", "totals"): [],
        ("projections", "customer"): [ids["customer"]],
        ("downstream", "customer"): [ids["customer"]],
        ("downstream", "sales"): ["EUR"],
        ("downstream", "by-status"): ["completed", ids["day"]],
        ("relay", "run"): ["--to", "in-process", "--once"],
        ("relay", "status"): [],
        ("config",): [],
        ("parked", "list"): [],
    }


def place_args(ids: dict[str, str]) -> list[str]:
    return ["--data-dir", ids["dir"], "place", "--customer", "c", "--line", "A:1:1", "--json"]


def test_every_command_is_run_with_json_here_or_has_a_reason_not_to() -> None:
    covered = {*local_cases(dict.fromkeys(("pending", "audited", "customer", "day", "dir"), ""))}
    covered |= {("bus", "setup"), ("dlq", "list"), ("dlq", "redrive")}
    covered |= {("indexer", "status"), ("indexer", "rebuild")}
    assert set(command_paths()) == covered | set(NO_DATA)


def test_local_commands_print_one_json_document(local: dict[str, str]) -> None:
    for path, arguments in local_cases(local).items():
        result = invoke("--data-dir", local["dir"], *path, *arguments, "--output", "json")
        assert result.exit_code == 0, (path, result.output)
        document = json.loads(result.stdout)
        assert isinstance(document, dict | list), path


def test_jsonl_prints_one_object_per_line(local: dict[str, str]) -> None:
    result = invoke("--data-dir", local["dir"], "--output", "jsonl", "history", local["audited"])
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events and [event["version"] for event in events] == list(range(1, len(events) + 1))
    assert {"order_id", "version", "type", "timestamp", "payload", "changes", "state"} == set(
        events[0]
    )


def test_aws_commands_print_one_json_document(
    dynamodb_table: str,  # noqa: F811 - the fixture, imported
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto = fresh_moto()
    dynamodb_endpoint = __import__("os").environ["AWS_ENDPOINT_URL_DYNAMODB"]
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
    setup = json.loads(invoke("--json", "bus", "setup", "--bus", "json-bus").stdout)
    assert set(setup["routes"]) and setup["bus"].endswith("json-bus")
    queue = next(iter(setup["routes"]))
    listed = json.loads(invoke("dlq", "list", f"orders-{queue}", "--json").stdout)
    assert listed["dead_letters"] == []
    assert json.loads(invoke("dlq", "redrive", f"orders-{queue}", "--json").stdout) == {
        "queue": f"orders-{queue}",
        "redriven": 0,
    }
    monkeypatch.setenv("DYNAMODB_WRITE_MODE", "indexed")
    dynamodb = ("--backend", "dynamodb", "--table", dynamodb_table, "--json")
    assert invoke(*dynamodb, "place", "--customer", "c", "--line", "A:1:1").exit_code == 0
    status = invoke(*dynamodb, "indexer", "status")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["pending_events"] == 1
    rebuilt = invoke(*dynamodb, "indexer", "rebuild")
    assert json.loads(rebuilt.stdout) == {"appended": 1, "last_id": 1}


def readme_exit_codes() -> dict[int, list[str]]:
    """The README's exit-code table: each status and the example command of its row."""
    rows = re.findall(r"^\| (\d) \| [^|]+ \| `(orders [^`]+)`", section("Scripting"), re.M)
    table: dict[int, list[str]] = {}
    for status, command in rows:
        table.setdefault(int(status), []).append(command)
    return table


def test_the_readme_examples_exit_as_the_table_says(tmp_path: Path) -> None:
    table = readme_exit_codes()
    assert set(table) == {0, 1, 2, 3}
    for status in (0, 1, 2):  # 3 (a verify mismatch) is asserted by the verify tests
        for command in table[status]:
            result = invoke("--data-dir", str(tmp_path / "data"), *shlex.split(command)[1:])
            assert result.exit_code == status, (command, result.output)
            if status:
                assert result.stderr.startswith("orders: error: "), result.stderr
    assert "| 3 | verify mismatch" in README


Cases = tuple[list[str], list[str] | None, list[str] | None]


def usage_and_operational(ids: dict[str, str]) -> dict[tuple[str, ...], Cases]:
    """For each command: arguments that are a usage error; ones that cannot run on the data dir
    of ``ids``; ones that cannot run on a missing data dir (``None``: not applicable, as
    ``place``, which creates it)."""
    pending = ids["pending"]
    pay = ["--payment-id", "p", "--amount", "1"]
    return {
        ("place",): (["--customer", "c", "--line", "A:1:1.5x"], None, None),
        ("change-lines",): ([pending, "--line", "A:x:1"], [UNKNOWN, "--line", "A:1:1"], None),
        ("pay",): ([pending, "--payment-id", "p", "--amount", "1,5"], [UNKNOWN, *pay], None),
        ("ship",): (["not-a-uuid"], [UNKNOWN], [UNKNOWN]),
        ("complete",): (["12345"], [UNKNOWN], [UNKNOWN]),
        ("cancel",): ([pending], [UNKNOWN, "--reason", "r"], [UNKNOWN, "--reason", "r"]),
        ("show",): ([pending, "--as-of", "2026-11-27"], [UNKNOWN], [UNKNOWN]),
        ("history",): (["x"], [UNKNOWN], [UNKNOWN]),
        ("list",): (["--customer", "c", "--limit", "0"], None, ["--customer", "c"]),
        ("log", "tail"): (["--from", "0"], None, ["--once"]),
        ("projections", "rebuild"): (["no-such-view"], None, None),
        ("projections", "order"): (["x"], [UNKNOWN], [UNKNOWN]),
        ("projections", "customer"): (["c", "--limit", "0"], None, ["c"]),
        ("projections", "status"): (["--no-such-option"], None, []),
        ("projections", "totals"): (["--no-such-option"], None, []),
        ("downstream", "sales"): (["EUR", "--from", "yesterday"], None, ["EUR"]),
        ("relay", "status"): (["--no-such-option"], None, []),
    }


@pytest.mark.parametrize("missing", [False, True], ids=["data dir with orders", "no data dir"])
def test_each_command_exits_2_on_a_malformed_value_and_1_when_it_cannot_run(
    local: dict[str, str], tmp_path: Path, missing: bool
) -> None:
    data_dir = str(tmp_path / "missing") if missing else local["dir"]
    for path, (usage, here, on_missing) in usage_and_operational(local).items():
        result = invoke("--data-dir", data_dir, *path, *usage)
        assert result.exit_code == 2, (path, usage, result.output)
        assert re.fullmatch(r"orders: error: .+ \(see orders .+--help\)\n", result.stderr)
        operational = on_missing if missing else here
        if operational is not None:
            result = invoke("--data-dir", data_dir, *path, *operational)
            assert result.exit_code == 1, (path, operational, result.output)
            assert re.fullmatch(r"orders: error: [^\n]+\n", result.stderr), result.stderr
            assert result.stdout == ""
    assert not Path(tmp_path / "missing").exists()


def test_the_readme_audit_walkthrough_runs_and_as_of_shows_the_state_before_payment(
    tmp_path: Path,
) -> None:
    block = section("Audit").split("```sh\n", 1)[1].split("```", 1)[0]
    orders_script = str(Path(sys.executable).with_name("orders"))
    script = block.replace(".venv/bin/orders", orders_script).replace(
        "python3 -c", f"{sys.executable} -c"
    )
    completed = subprocess.run(
        [
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
        ],
        env={**os.environ, "ORDERS_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    shown = [line for line in completed.stdout.splitlines() if line.startswith("status ")]
    assert [line.split()[-1] for line in shown] == ["processing", "pending"]
