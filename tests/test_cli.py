"""The ``orders`` command, on the embedded local backend and on DynamoDB Local."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.dynamodb import DynamoDBDatastore
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.local.backend import local_env
from orders import OrderLine, OrderService
from tests.support.dynamodb_local import dynamodb_local

runner = CliRunner()


def figure(output: str, name: str) -> int:
    match = re.search(rf"{name}\s*│\s*([\d,]+)", output)
    assert match, f"{name!r} not in the output:\n{output}"
    return int(match.group(1).replace(",", ""))


def run_orders(*arguments: str) -> str:
    result = runner.invoke(app, list(arguments))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def dynamodb_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh event store table (and its view table) on DynamoDB Local, reached through the
    standard variables."""
    server = dynamodb_local()
    table = server.new_table()
    views = DynamoDBViewStore(DynamoDBDatastore(server.client(), f"{table}-views"))
    views.create_table_if_missing()
    for name, value in server.env(table).items():
        monkeypatch.setenv(name, value)
    yield table
    server.delete_table(table)
    server.delete_table(views.datastore.table_name)


def test_demo_places_orders_audits_one_and_persists_between_runs(tmp_path: Path) -> None:
    first = run_orders("--data-dir", str(tmp_path), "demo", "--orders", "30")
    assert figure(first, "orders placed") == 30
    assert "history of order" in first
    events_after_first_run = figure(first, "events in the notification log")
    assert events_after_first_run > 30

    second = run_orders("--data-dir", str(tmp_path), "demo", "--orders", "10")
    assert figure(second, "events in the notification log") > events_after_first_run


def test_demo_and_audit_run_on_dynamodb_by_configuration(dynamodb_table: str) -> None:
    output = run_orders(
        "--backend", "dynamodb", "--table", dynamodb_table, "demo", "--orders", "20"
    )
    assert figure(output, "orders placed") == 20
    audited = re.search(r"history of order ([0-9a-f-]{36})", output)
    assert audited, output

    at_version_1 = run_orders(
        "--backend", "dynamodb", "--table", dynamodb_table, "show", audited[1], "--version", "1"
    )
    assert "pending" in at_version_1
    history = run_orders("--backend", "dynamodb", "--table", dynamodb_table, "history", audited[1])
    assert "OrderPlaced" in history


def test_show_of_an_unknown_order_names_it_and_fails(tmp_path: Path) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "show", unknown])
    assert result.exit_code == 1
    assert unknown in result.output


def test_every_command_records_the_trace_it_is_given(tmp_path: Path) -> None:
    order = "6f1c5f4e-2a43-4f0e-9d51-0c2f8a7b9e10"
    base = ("--data-dir", str(tmp_path))
    trace = ("--correlation-id", "journey-1")
    run_orders(*base, "place", "--order-id", order, "--customer", "c", "--line", "A:2:5", *trace)
    run_orders(*base, "pay", order, "--payment-id", "p", "--amount", "10", *trace)
    run_orders(*base, "ship", order, *trace, "--causation-id", "msg-shipped")
    run_orders(*base, "complete", order, *trace, "--causation-id", "msg-delivered")
    other = "0b6f5b7a-8a1d-4c9e-b1f4-3c1e2d4f5a6b"
    run_orders(*base, "place", "--order-id", other, "--customer", "c", "--line", "A:1:5")
    run_orders(*base, "cancel", other, "--reason", "changed mind", "--causation-id", "msg-cancel")

    service = OrderService(env=local_env(tmp_path))
    history = {order_id: service.history(UUID(order_id)) for order_id in (order, other)}
    assert [e.causation_id for e in history[order][2:]] == ["msg-shipped", "msg-delivered"]
    assert {e.correlation_id for e in history[order]} == {"journey-1"}
    assert history[other][-1].causation_id == "msg-cancel"


HEAVY_MODULES = ("boto3", "botocore", "eventsourcing", "pydantic", "rich", "orders", "projections")
"""What ``orders --help`` must not import: each command imports them when it runs."""


def test_help_imports_none_of_what_the_commands_need() -> None:
    probe = (
        "import sys\n"
        "from adapters.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY_MODULES!r})))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "show          Show an order" in completed.stdout
    assert completed.stdout.splitlines()[-1] == "[]", completed.stdout


def test_list_filters_and_pages_the_read_model(tmp_path: Path) -> None:
    base = ("--data-dir", str(tmp_path))
    service = OrderService(env=local_env(tmp_path))
    lines = [OrderLine("A", 1, Decimal("2.00"))]
    pending = [service.place_order("c-list", lines, "EUR").order_id for _ in range(3)]
    paid = service.place_order("c-list", lines, "EUR").order_id
    service.confirm_payment(paid, "p", Decimal("2.00"))
    service.place_order("someone-else", lines, "EUR")
    run_orders(*base, "projections", "run", "--once")

    first = json.loads(run_orders(*base, "list", "--customer", "c-list", "--json"))
    assert len(first["orders"]) == 4 and first["next"] is None
    page = json.loads(
        run_orders(
            *base,
            "list",
            "--customer",
            "c-list",
            "--status",
            "pending",
            "--limit",
            "2",
            "-o",
            "json",
        )
    )
    rest = json.loads(
        run_orders(
            *base,
            "list",
            "--customer",
            "c-list",
            "--status",
            "pending",
            "--after",
            page["next"],
            "--json",
        )
    )
    listed = [row["order_id"] for row in page["orders"] + rest["orders"]]
    assert sorted(listed) == sorted(map(str, pending)) and len(page["orders"]) == 2
    processing = json.loads(
        run_orders(*base, "list", "--customer", "c-list", "--status", "processing", "--json")
    )
    assert [row["order_id"] for row in processing["orders"]] == [str(paid)]


def test_log_tail_prints_the_log_and_follows_it(tmp_path: Path) -> None:
    base = ["--data-dir", str(tmp_path)]
    service = OrderService(env=local_env(tmp_path))
    order_id = service.place_order("c", [OrderLine("A", 1, Decimal(1))], "EUR").order_id
    service.cancel(order_id, "r")
    logged = json.loads(run_orders(*base, "log", "tail", "--once", "--json"))
    assert [(n["id"], n["originator_version"]) for n in logged] == [(1, 1), (2, 2)]
    assert logged[0]["originator_id"] == str(order_id) and logged[1]["topic"].endswith("Cancelled")

    tail = ["log", "tail", "--from", "3", "--limit", "1", "--output", "jsonl"]
    follower = subprocess.Popen(
        [str(Path(sys.executable).with_name("orders")), *base, *tail, "--poll-interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        placed = service.place_order("c", [OrderLine("B", 1, Decimal(1))], "EUR").order_id
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    (line,) = out.splitlines()
    assert json.loads(line)["id"] == 3 and json.loads(line)["originator_id"] == str(placed)


def test_version_short_help_and_global_options_after_the_subcommand(tmp_path: Path) -> None:
    from importlib.metadata import version  # noqa: PLC0415

    assert run_orders("--version") == f"orders {version('eventsourced-orders')}\n"
    for path in (["show"], ["projections", "status"], ["log", "tail"], ["demo"]):
        assert run_orders(*path, "-h") == run_orders(*path, "--help")
        assert "Usage: " in run_orders(*path, "-h")
    order = "6f1c5f4e-2a43-4f0e-9d51-0c2f8a7b9e11"
    place = ["place", "--order-id", order, "--customer", "c", "--line", "A:1:1"]
    assert run_orders(*place, "--data-dir", str(tmp_path), "-o", "json") == run_orders(
        "--output=json", *place, f"--data-dir={tmp_path}"
    )
    shown = json.loads(run_orders("show", order, f"--data-dir={tmp_path}", "--json"))
    assert (shown["order_id"], shown["version"]) == (order, 1)
    assert (tmp_path / "events.sqlite3").is_file()
