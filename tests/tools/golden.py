"""Golden files: compare rendered output with the checked-in copy.

`COMPUTEHA_UPDATE_GOLDEN=1` (or `make update-golden`) rewrites the files instead
of comparing, for an intended change; the diff is then reviewed in git.
"""
from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("COMPUTEHA_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"missing golden file {path}: run make update-golden"
    expected = path.read_text()
    assert actual == expected, f"{name} differs from its golden file: review, then make update-golden"
