"""Run mypy over the computeha package as it is installed, with paths printed as in the checkout.

The checkout's folders become packages under one import name (pyproject.toml's package-dir), which
mypy cannot follow through the editable install: the package is laid out with symlinks in a temporary
directory, checked there with the checkout's [tool.mypy] configuration, and every reported path is
mapped back to its folder. Exit status: mypy's.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.tools.pkgtree import REPO, package_dirs


def _layout(root: Path) -> dict[str, str]:
    """Symlink every package folder at its import path under root; returns import path -> folder."""
    back = {}
    for package, folder in sorted(package_dirs().items(), key=lambda kv: kv[0].count(".")):
        target = root.joinpath(*package.split("."))
        if package == "computeha":
            target.mkdir(parents=True)
            (target / "__init__.py").symlink_to(REPO / folder / "__init__.py")
        else:
            target.symlink_to(REPO / folder, target_is_directory=True)
        back[package.replace(".", "/") + "/"] = folder.rstrip("/") + "/"
    return back


def run() -> tuple[int, str]:
    """(mypy's exit status, its report with checkout paths)."""
    with tempfile.TemporaryDirectory(prefix="computeha-mypy-") as tmp:
        back = _layout(Path(tmp))
        env = {**os.environ, "MYPYPATH": tmp}
        proc = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
             "--cache-dir", str(REPO / ".mypy_cache"), "-p", "computeha"],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=900, check=False)
    lines = []
    for line in (proc.stdout + proc.stderr).splitlines():
        for installed, folder in sorted(back.items(), key=lambda kv: -len(kv[0])):
            if line.startswith(installed):
                line = folder + line[len(installed):]
                break
        lines.append(line)
    return proc.returncode, "\n".join(lines)


def main() -> int:
    status, report = run()
    print(report)
    return status


if __name__ == "__main__":
    sys.exit(main())
