"""The tree stays clean under ruff and mypy, with the configuration in pyproject.toml."""
from __future__ import annotations

import subprocess
import sys

from tests.tools import typecheck
from tests.tools.pkgtree import REPO


def test_ruff_finds_nothing() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=str(REPO), capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"ruff check (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"


def test_mypy_finds_nothing() -> None:
    status, report = typecheck.run()
    assert status == 0, f"mypy (exit {status}):\n{report}"
