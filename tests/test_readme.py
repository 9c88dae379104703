"""The README tells the truth: every shell command and Python block in it runs, as written.

The test reads the README's fenced ``sh`` and ``python`` blocks and runs them top to bottom, as
one reader in one terminal would: an ``export`` holds for every later command, Python blocks of
a section share their names. It runs against this session's DynamoDB Local and moto, so the
README's endpoints (:data:`MOTO_URL`, :data:`DYNAMODB_LOCAL_URL`) are replaced by theirs, and
its placeholders by the values :data:`PLACEHOLDERS` names. ``orders`` commands that stop by
themselves run in process and must exit 0; those that run until SIGTERM
(:func:`runs_until_stopped`) are started as processes, stopped by SIGTERM once they have
reported, and must then exit 0. Shell expansions are the reader's shell's: ``$NAME`` is what an
earlier ``NAME=...`` set, and each ``$(...)`` runs in bash and is replaced by what it printed
(it must exit 0). A block opts out only with the marker
``<!-- not run by tests/test_readme.py: REASON -->`` on the line before it, with a reason; a
command of any other program fails the test.
"""

from __future__ import annotations

import importlib
import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from tests.support.dynamodb_local import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    _free_port,
    dynamodb_local,
)
from tests.support.moto_server import moto_server

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
MARKER = re.compile(r"^<!-- not run by tests/test_readme\.py:(.*)-->$")
RUNNABLE = ("sh", "python")
MOTO_URL = "http://127.0.0.1:5000"
DYNAMODB_LOCAL_URL = "http://127.0.0.1:8000"
"""The README's endpoints, replaced by the session's moto and DynamoDB Local."""
PLACEHOLDERS = {"ORDER_ID": "5f0c8a52-0d55-4d1c-9a55-1b9e4f7a1e01", "CUSTOMER_ID": "c-1"}
"""What the README's placeholders stand for here: the order its Audit section places."""
STOP_SECONDS = 60.0
"""How long a stopped command may take to finish its batch (a long poll is 20 s)."""
START_SECONDS = 120.0
"""How long a long-running command may take to report that it started."""
OURS = ("AWS_", "ORDERS_", "DYNAMODB_", "PERSISTENCE_MODULE")
"""Variables a reader's commands see only as the README sets them."""
WORKED = {"consumers run": r"^received [1-9]", "": r"\S"}
"""What a long-running command prints once it has done some work, before the test stops it:
a consumer, a batch of messages (the README's queues are never empty when it runs); any
other, its first line."""
ORDERS = ".venv/bin/orders"
PYTHON = ".venv/bin/python"


@dataclass(frozen=True)
class Block:
    """A fenced block of the README: its language, text, first line and opt-out reason."""

    section: str
    language: str
    text: str
    line: int
    skip_reason: str | None

    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def readme_blocks(text: str = README) -> list[Block]:
    """Every fenced block, in order, with the ``##`` section it is in."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section, number = "", 0
    while number < len(lines):
        line = lines[number]
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("```"):
            language = line[3:].strip()
            end = lines.index("```", number + 1)
            previous = lines[number - 1] if number else ""
            marker = MARKER.match(previous)
            reason = marker.group(1).strip() if marker else None
            body = "\n".join(lines[number + 1 : end]) + "\n"
            blocks.append(Block(section, language, body, number + 2, reason))
            number = end
        number += 1
    return blocks


def code_blocks(language: str, text: str = README) -> list[str]:
    return [block.text for block in readme_blocks(text) if block.language == language]


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def commands(block: Block) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = block.text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        command = re.sub(r"(^|\s)#.*$", "", line).strip()
        if command:
            found.append(command)
    return found


def runs_until_stopped(args: list[str]) -> bool:
    """Whether an ``orders`` command runs until SIGTERM (a worker without ``--once``)."""
    words = [arg for arg in args if not arg.startswith("-")]
    workers = {("relay", "run"), ("consumers", "run"), ("projections", "run"), ("indexer", "run")}
    return "--once" not in args and any((a, b) in workers for a, b in itertools.pairwise(words))


class Reader:
    """One reader following the README in one terminal: its environment and Python names."""

    def __init__(self, data_dir: Path, endpoints: dict[str, str]) -> None:
        self.endpoints = endpoints
        self.env: dict[str, str] = {
            "ORDERS_DATA_DIR": str(data_dir),
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }
        self.names: dict[str, dict[str, Any]] = {}
        self.runner = CliRunner()

    def substituted(self, text: str) -> str:
        for readme_url, url in self.endpoints.items():
            text = text.replace(readme_url, url)
        for placeholder, value in PLACEHOLDERS.items():
            text = re.sub(rf"\b{placeholder}\b", value, text)
        return text

    def process_env(self) -> dict[str, str]:
        """This process's environment less every setting of ours and AWS's, plus the reader's."""
        kept = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
        return {**kept, **self.env}

    def run(self, block: Block) -> None:
        if block.language == "python":
            self.run_python(block)
            return
        for command in commands(block):
            self.run_shell(block, self.substituted(command))

    def run_python(self, block: Block) -> None:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.process_env())
        try:
            names = self.names.setdefault(block.section, {})
            exec(compile(block.text, block.where(), "exec"), names)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def expanded(self, command: str, where: str) -> str:
        """``command`` with ``$NAME`` and ``$(...)`` expanded as the reader's shell would."""
        command = re.sub(r"\$([A-Z_][A-Z0-9_]*)\b", lambda m: self.env.get(m[1], m[0]), command)
        while (start := command.find("$(")) >= 0:
            depth, end = 0, start + 1
            for end in range(start + 1, len(command)):
                depth += {"(": 1, ")": -1}.get(command[end], 0)
                if depth == 0:
                    break
            inner = command[start + 2 : end]
            completed = subprocess.run(
                ["bash", "-c", inner],
                cwd=ROOT,
                env=self.process_env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert completed.returncode == 0, f"{where}: $({inner}): {completed.stderr}"
            command = command[:start] + completed.stdout.strip() + command[end + 1 :]
        return command

    def run_shell(self, block: Block, command: str) -> None:
        command = self.expanded(command, f"{block.where()}: {command}")
        words = shlex.split(command)
        if all("=" in word and not word.startswith(("-", ".")) for word in words):
            for assignment in words:  # NAME=value: a variable later commands expand
                name, _, value = assignment.partition("=")
                self.env[name] = value
            return
        if words[0] == "export":
            for assignment in words[1:]:
                name, _, value = assignment.partition("=")
                self.env[name] = value
            return
        inline: dict[str, str] = {}
        while "=" in words[0] and not words[0].startswith(("-", ".")):
            name, _, value = words.pop(0).partition("=")
            inline[name] = value
        program, args = words[0], words[1:]
        where = f"{block.where()}: {command}"
        if program == ORDERS and runs_until_stopped(args):
            self.run_until_stopped(
                [str(Path(sys.executable).with_name("orders")), *args], inline, where
            )
        elif program == ORDERS:
            self.run_orders(args, inline, where)
        elif program == PYTHON and args[:2] == ["-m", "tests.support.moto_fixed"]:
            self.run_moto(args, where)
        else:
            pytest.fail(f"{where}: no way to run {program!r}; mark the block with a reason")

    def run_orders(self, args: list[str], inline: dict[str, str], where: str) -> None:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(OURS)}
        env.update({**self.env, **inline})
        result = self.runner.invoke(app, args, env=env)
        assert result.exit_code == 0, f"{where}: exit {result.exit_code}\n{result.output}"

    def run_until_stopped(self, argv: list[str], inline: dict[str, str], where: str) -> None:
        """Starts ``argv``, waits until it reports its work (:data:`WORKED`), stops it by
        SIGTERM and expects exit 0."""
        worked = next((w for key, w in WORKED.items() if key in " ".join(argv)), WORKED[""])
        with self.started(argv, inline, where) as (process, log):
            deadline = time.monotonic() + START_SECONDS
            while not re.search(worked, log.read_text(), flags=re.MULTILINE):
                assert process.poll() is None, f"{where}: exited early\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{where}: no {worked!r} in {START_SECONDS} s"
                time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=STOP_SECONDS)
            assert code == 0, f"{where}: exit {code} after SIGTERM\n{log.read_text()}"

    def run_moto(self, args: list[str], where: str) -> None:
        """Starts the README's moto on a free port instead of its own, waits until it answers,
        then stops it: the documented command starts a working server."""
        port = str(_free_port())
        before = ["", *args]
        args = [port if before[n] == "-p" else arg for n, arg in enumerate(args)]
        with self.started([sys.executable, *args], {}, where) as (process, log):
            deadline = time.monotonic() + START_SECONDS
            while True:
                assert process.poll() is None, f"{where}: exited\n{log.read_text()}"
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=5).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{where}: no answer\n{log.read_text()}"
                    time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=STOP_SECONDS)

    def started(self, argv: list[str], inline: dict[str, str], where: str) -> _Started:
        handle, name = tempfile.mkstemp(prefix="readme-", suffix=".log")
        os.close(handle)
        return _Started(argv, {**self.process_env(), **inline}, Path(name))


class _Started:
    """A process of the test's, killed and reaped if still running when the block ends."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log = argv, env, log

    def __enter__(self) -> tuple[subprocess.Popen[bytes], Path]:
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT
            )
        return self.process, self.log

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.unlink(missing_ok=True)


def runnable_blocks() -> Iterator[Block]:
    for block in readme_blocks():
        if block.language in RUNNABLE and block.skip_reason is None:
            yield block


def test_every_opt_out_marker_gives_a_reason_and_marks_a_block() -> None:
    lines = README.splitlines()
    markers = [n for n, line in enumerate(lines) if line.startswith("<!-- not run by")]
    assert markers
    for number in markers:
        marker = MARKER.match(lines[number])
        assert marker and marker.group(1).strip(), f"README.md:{number + 1}: give a reason"
        assert lines[number + 1].startswith("```"), f"README.md:{number + 1}: marks no block"


def test_the_readme_runs_top_to_bottom_on_dynamodb_local_and_moto(tmp_path: Path) -> None:
    """Given a fresh moto and DynamoDB Local (no table of the README's) When every runnable
    block runs in the README's order, with its names Then every command and block succeeds:
    a wrong queue or table name, a missing resource, a stale option fails here."""
    moto, dynamodb = moto_server(), dynamodb_local()
    moto.reset()
    client = dynamodb.client()
    for table in client.list_tables()["TableNames"]:
        if table.startswith("orders-"):
            client.delete_table(TableName=table)
    endpoints = {MOTO_URL: moto.endpoint_url, DYNAMODB_LOCAL_URL: dynamodb.endpoint_url}
    reader = Reader(tmp_path / "data", endpoints)
    ran = []
    for block in runnable_blocks():
        reader.run(block)
        ran.append(block.language)
    assert set(ran) == set(RUNNABLE)


def test_there_are_exactly_two_setup_commands_and_ci_runs_the_second() -> None:
    demo_command, test_command = (
        block.strip() for block in code_blocks("sh", section("Two commands"))
    )
    assert demo_command.endswith("orders demo")
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_file_and_module_the_readme_names_exists() -> None:
    """Given the README's backquoted paths (``adapters/x.py``) and dotted names of our packages
    (``adapters.lambdas.relay.handler``) Then each is a file, a module or a module's attribute."""
    names = re.findall(r"`((?:orders|projections|adapters|schemas|tests)[./][\w./]*)`", README)
    assert names
    for name in names:
        if "/" in name:
            assert (ROOT / name).exists(), f"README names {name}, which does not exist"
            continue
        module, attribute = name, ""
        while True:
            try:
                found = importlib.import_module(module)
                break
            except ModuleNotFoundError:
                assert "." in module, f"README names {name}, which does not exist"
                module, _, last = module.rpartition(".")
                attribute = f"{last}.{attribute}".rstrip(".")
        for part in filter(None, attribute.split(".")):
            assert hasattr(found, part), f"README names {name}, which does not exist"
            found = getattr(found, part)
