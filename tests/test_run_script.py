"""``tests/run.sh``: a failing step names itself, even when the tool that failed said nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_silent_npm_failure_names_the_step(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "run.sh", tmp_path / "tests" / "run.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Java 17 is "there"; npm fails without a word, as a failed `npm install --silent` did.
    (bin_dir / "java").write_text("#!/bin/sh\necho 'openjdk version \"17.0.1\"' >&2\n")
    (bin_dir / "npm").write_text("#!/bin/sh\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)

    completed = subprocess.run(
        ["bash", str(tmp_path / "tests" / "run.sh")],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        timeout=60,
    )
    assert completed.returncode == 1
    assert "tests/run.sh: exit status 1 from line" in completed.stderr
    assert "npm install" in completed.stderr
    assert not (tmp_path / ".venv").exists()
