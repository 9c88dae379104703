"""The README tells the truth: its Python runs, and CI runs its test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("block", code_blocks("python"))
def test_python_block_runs(block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERSISTENCE_MODULE", raising=False)
    exec(compile(block, "README.md", "exec"), {})


def test_there_are_exactly_two_setup_commands_and_ci_runs_the_second() -> None:
    demo_command, test_command = (
        block.strip() for block in code_blocks("sh", section("Two commands"))
    )
    assert demo_command.endswith("orders demo")
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
