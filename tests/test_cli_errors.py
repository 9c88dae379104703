"""The CLI as users meet it: every error is one line on stderr, a non-zero exit, nothing written."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner, Result

from adapters.cli.main import app
from tests.support.dynamodb_local import dynamodb_local

runner = CliRunner()
ORDER = "00000000-0000-4000-8000-0000000000aa"
AWS_VARIABLES = (
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "DYNAMODB_CREATE_TABLE",
)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory that does not exist yet, and an environment with no AWS settings."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("DYNAMODB_MAX_ATTEMPTS", "1")
    return tmp_path / "data"


def orders(data_dir: Path, *arguments: str) -> Result:
    return runner.invoke(app, ["--data-dir", str(data_dir), *arguments])


def assert_one_line_error(result: Result, *expected: str) -> str:
    """The run failed with exactly one line on stderr, naming each of ``expected``; no output."""
    assert result.exit_code != 0, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def dynamodb_endpoint(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DynamoDB Local's endpoint, region and credentials set; no table created."""
    server = dynamodb_local()
    for name, value in server.env("unused").items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    yield server.endpoint_url


def test_no_region_configured(data_dir: Path) -> None:
    result = orders(data_dir, "--backend", "dynamodb", "show", ORDER)
    assert_one_line_error(result, "no AWS region configured", "AWS_DEFAULT_REGION")
    assert result.exit_code == 1
    assert not data_dir.exists()


def test_no_credentials_configured(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{free_port()}")
    result = orders(data_dir, "--backend", "dynamodb", "history", ORDER)
    assert_one_line_error(result, "no AWS credentials found", "AWS_ACCESS_KEY_ID")
    assert not data_dir.exists()


def test_unreachable_endpoint(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    result = orders(data_dir, "--backend", "dynamodb", "show", ORDER)
    assert_one_line_error(result, "Could not connect", endpoint, "is the server running?")
    assert not data_dir.exists()


def test_malformed_endpoint_is_named_with_where_it_comes_from(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "127.0.0.1 port 8000")
    result = orders(data_dir, "--backend", "dynamodb", "show", ORDER)
    line = assert_one_line_error(result, "Invalid endpoint", "AWS_ENDPOINT_URL_<SERVICE>")
    assert "unexpected" not in line and result.exit_code == 1
    assert not data_dir.exists()


def test_missing_table_is_named_and_not_created(
    data_dir: Path, dynamodb_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = dynamodb_local().client()
    tables_before = client.list_tables()["TableNames"]
    result = orders(data_dir, "--backend", "dynamodb", "--table", "no-such-table", "show", ORDER)
    assert_one_line_error(result, "'no-such-table'", "ResourceNotFoundException", "create it")
    assert client.list_tables()["TableNames"] == tables_before
    assert not data_dir.exists()


@pytest.mark.parametrize(
    "arguments",
    [
        ("show", ORDER, "--as-of", "2026-11-27T09:00:00"),
        ("show", "not-a-uuid"),
        ("history", "12345"),
        ("pay", "order-1", "--payment-id", "p", "--amount", "1"),
        ("place", "--customer", "c", "--line", "A:1:x"),
        ("place", "--customer", "c", "--line", "A:0:1.00"),
        ("place", "--customer", "c", "--line", "A:1:1", "--order-id", "1-2-3"),
    ],
    ids=" ".join,
)
def test_malformed_input_is_a_usage_error(data_dir: Path, arguments: tuple[str, ...]) -> None:
    result = orders(data_dir, *arguments)
    line = assert_one_line_error(result, "orders: error: Invalid value")
    assert result.exit_code == 2
    assert f"(see orders {arguments[0]} --help)" in line
    assert not data_dir.exists()


def test_naive_as_of_says_to_add_the_offset(data_dir: Path) -> None:
    result = orders(data_dir, "show", ORDER, "--as-of", "2026-11-27T09:00:00")
    assert_one_line_error(result, "no UTC offset", "2026-11-27T09:00:00+00:00")


@pytest.mark.parametrize("command", ["show", "history", "ship", "complete"])
def test_an_unknown_order_creates_no_files(data_dir: Path, command: str) -> None:
    result = orders(data_dir, command, ORDER)
    assert_one_line_error(result, f"order {ORDER} not found")
    assert result.exit_code == 1
    assert not data_dir.exists()


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [("--currency", "XYZ", "known-currency"), ("--customer", " ", "customer-required")],
)
def test_a_refused_placement_writes_nothing(
    data_dir: Path, option: str, value: str, rule: str
) -> None:
    arguments = {"--customer": "c", "--currency": "EUR", option: value}
    result = orders(
        data_dir, "place", "--line", "A:1:1", *(x for kv in arguments.items() for x in kv)
    )
    assert_one_line_error(result, "orders: error: Invalid value", rule)
    assert result.exit_code == 2
    assert not data_dir.exists()


def test_a_refused_command_records_nothing(data_dir: Path) -> None:
    placed = orders(data_dir, "place", "--order-id", ORDER, "--customer", "c", "--line", "A:2:5")
    assert placed.stdout == f"order {ORDER} version 1\n", placed.output
    result = orders(data_dir, "pay", ORDER, "--payment-id", "p", "--amount", "9.99")
    assert_one_line_error(result, "payment-equals-total")
    assert result.exit_code == 1
    assert orders(data_dir, "history", ORDER, "--jsonl").stdout.count("\n") == 1


def test_an_unexpected_error_is_one_line_naming_its_type(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr("orders.service.OrderService.get_order", broken)
    orders(data_dir, "place", "--order-id", ORDER, "--customer", "c", "--line", "A:2:5")
    assert_one_line_error(orders(data_dir, "show", ORDER), "unexpected KeyError", "surprise")


def test_the_console_script_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    """The installed entry point, in its own process, behaves as the runner shows."""
    completed = subprocess.run(
        [sys.executable, "-c", "from adapters.cli.main import main; main()", "show", "x"],
        capture_output=True,
        text=True,
        check=False,
        env={"ORDERS_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert len(completed.stderr.splitlines()) == 1, completed.stderr
    assert not (tmp_path / "data").exists()


def all_commands(
    command: typer.core.TyperGroup | typer.core.TyperCommand, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], typer.core.TyperGroup | typer.core.TyperCommand]]:
    """Every command and group under ``command`` (itself included), with its path."""
    yield path, command
    if isinstance(command, typer.core.TyperGroup):
        context = typer.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            yield from all_commands(sub, (*path, name))  # type: ignore[arg-type]


def test_every_help_text_shows_its_defaults() -> None:
    """Each option with a default (including sub-apps added later) shows it in ``--help``."""
    checked = 0
    for path, command in all_commands(get_command(app)):  # type: ignore[arg-type]
        help_text = runner.invoke(app, [*path, "--help"]).stdout
        for parameter in command.params:
            if parameter.name == "help" or parameter.default in (None, False, ()):
                continue
            option = parameter.opts[-1]
            options = help_text.split("\nOptions:\n", 1)[1]
            entry = re.search(
                rf"^ +(-\w, )?{re.escape(option)}\b.*?(?=^ +-|\Z)", options, re.M | re.S
            )
            assert entry, f"{' '.join(path)} {option} not in its help"
            assert "default: " in " ".join(entry[0].split()), f"{' '.join(path)} {option}"
            checked += 1
    assert checked >= 5
    root_help = "".join(runner.invoke(app, ["--help"]).stdout.split())  # wrapped anywhere
    assert "[default:$ORDERS_DATA_DIRor~/.local/share/eventsourced-orders]" in root_help


ORDERS_SCRIPT = str(Path(sys.executable).with_name("orders"))


def orders_on_read_only(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``orders`` with ``data_dir`` read-only: its mode 0555 (files 0444), and, when run as root
    (whom modes do not stop), in a mount namespace of its own where ``data_dir`` is bind-mounted
    read-only (nothing outside that process sees the mount)."""
    for path in data_dir.iterdir():
        path.chmod(0o444)
    data_dir.chmod(0o555)
    command = [ORDERS_SCRIPT, "--data-dir", str(data_dir), *arguments]
    if os.geteuid() == 0:
        where = shlex.quote(str(data_dir))
        command = [
            "unshare",
            "--mount",
            "sh",
            "-c",
            f"mount --bind {where} {where} && mount -o remount,bind,ro {where} {where} && "
            f"exec {shlex.join(command)}",
        ]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


READ_AND_WRITE = (
    ("show", ORDER),
    ("history", ORDER),
    ("place", "--customer", "c", "--line", "A:1:1"),
    ("projections", "status"),
)


@pytest.mark.parametrize("kind", ["missing", "a file", "corrupt"])
def test_a_bad_data_dir_is_one_line_naming_it_and_nothing_is_created(
    tmp_path: Path, kind: str
) -> None:
    if kind == "missing":
        data_dir = named = tmp_path / "missing" / "data"
    elif kind == "a file":
        data_dir = named = tmp_path / "a-file"
        data_dir.write_text("not a directory")
    else:
        data_dir = tmp_path / "corrupt"
        data_dir.mkdir()
        named = data_dir / "events.sqlite3"
        named.write_bytes(b"this is not an SQLite database, not at all")
    before = sorted(tmp_path.rglob("*"))
    for arguments in READ_AND_WRITE:
        result = orders(data_dir, *arguments)
        line = assert_one_line_error(result, "orders: error: ", str(named))
        assert result.exit_code == 1, (arguments, line)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_read_only_data_dir_is_one_line_naming_it_and_nothing_is_created(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "read-only"
    placed = orders(data_dir, "place", "--order-id", ORDER, "--customer", "c", "--line", "A:1:1")
    assert placed.exit_code == 0, placed.output
    before = sorted(tmp_path.rglob("*"))
    try:
        for arguments in (*READ_AND_WRITE, ("ship", ORDER)):
            completed = orders_on_read_only(data_dir, *arguments)
            assert completed.returncode == 1, (arguments, completed.stderr)
            assert completed.stdout == ""
            assert re.fullmatch(r"orders: error: [^\n]+\n", completed.stderr), completed.stderr
            assert f"{data_dir / 'events.sqlite3'} is read-only" in completed.stderr
    finally:
        data_dir.chmod(0o755)
    assert sorted(tmp_path.rglob("*")) == before
