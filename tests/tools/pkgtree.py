"""Lay out the computeha package as an installed tree (what `pip install .` puts in site-packages).

Used where the editable install of the development venv is not visible: a
different interpreter (the system python3, as the agents run in production),
another user (ocf-tester runs meta-data as nobody), or a cluster node's mount
namespace. The mapping comes from pyproject.toml, so it cannot drift.
"""
from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def package_dirs() -> dict[str, str]:
    with open(REPO / "pyproject.toml", "rb") as handle:
        config = tomllib.load(handle)
    return dict(config["tool"]["setuptools"]["package-dir"])


def build(dest: Path) -> Path:
    """Copy the package into dest (made world-readable); returns dest for sys.path."""
    dest.mkdir(parents=True, exist_ok=True)
    for package, folder in sorted(package_dirs().items()):
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in (REPO / folder).iterdir():
            if entry.is_file() and entry.suffix == ".py":
                shutil.copy2(entry, target / entry.name)
            elif entry.is_dir() and entry.name in ("schemas", "templates"):
                shutil.copytree(entry, target / entry.name, dirs_exist_ok=True)
    for root, _dirs, files in os.walk(dest):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return dest
