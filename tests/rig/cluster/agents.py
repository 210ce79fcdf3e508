"""Make the working tree's agents visible inside the rig's nodes.

Pacemaker 2.1.5 has no search-path override: OCF agents are looked up under
``/usr/lib/ocf/resource.d/<provider>/`` and fence agents as ``/usr/sbin/fence_*``. The rig
stages a small tree under ``.rig/cluster/agents/`` and each node overlays it (read-only
overlayfs, in the node's own mount namespace) on those two directories, so the host's
/usr stays untouched.

What is staged:
- If the repository has a Makefile with an ``install`` target, ``make install DESTDIR=...``
  and its ``usr/lib/ocf/resource.d`` and ``usr/sbin/fence_*``.
- Otherwise a wrapper per executable agent found in the working tree: ``agents/<Name>``
  (executable, not starting with "_") becomes ``ocf:computeha:<Name>`` and
  ``fence/fence_<x>`` becomes ``/usr/sbin/fence_<x>`` (a trailing ``.py`` is dropped).
  Wrappers exec the working-tree file (Python ones with the project venv's interpreter), so
  edits are live without restaging; adding a new agent needs a rig restart (the overlay is
  set up at node creation).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict

from tests.rig.cluster.config import REPO

PROVIDER = "computeha"


def _is_python(path: Path) -> bool:
    if path.suffix == ".py":
        return True
    try:
        with open(path, "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def _wrapper(target: Path, python: str) -> str:
    run = f'exec "{python}" "{target}" "$@"' if _is_python(target) else f'exec "{target}" "$@"'
    return f"#!/bin/sh\n# cluster rig wrapper: runs the working-tree agent\n{run}\n"


def _discover(repo: Path) -> "tuple[Dict[str, Path], Dict[str, Path]]":
    ocf: Dict[str, Path] = {}
    fence: Dict[str, Path] = {}
    for p in sorted((repo / "agents").glob("*")):
        if p.is_file() and os.access(p, os.X_OK) and not p.name.startswith(("_", ".")):
            ocf[p.name[:-3] if p.suffix == ".py" else p.name] = p
    for p in sorted((repo / "fence").glob("fence_*")):
        if p.is_file() and os.access(p, os.X_OK):
            fence[p.name[:-3] if p.suffix == ".py" else p.name] = p
    return ocf, fence


def _has_install_target(repo: Path) -> bool:
    mk = repo / "Makefile"
    return mk.exists() and any(line.startswith("install:") for line in mk.read_text().splitlines())


def stage(dest: Path, python: str, repo: Path = REPO) -> Dict[str, str]:
    """(Re)build ``dest/ocf`` and ``dest/sbin``; returns {agent name: staged path}."""
    ocf_dir, sbin_dir = dest / "ocf", dest / "sbin"
    shutil.rmtree(dest, ignore_errors=True)
    (ocf_dir / PROVIDER).mkdir(parents=True)
    sbin_dir.mkdir(parents=True)
    staged: Dict[str, str] = {}
    if _has_install_target(repo):
        root = dest / "destdir"
        subprocess.run(["make", "-C", str(repo), "install", f"DESTDIR={root}"], check=True,
                       stdout=subprocess.DEVNULL, timeout=300)
        src_ocf = root / "usr" / "lib" / "ocf" / "resource.d"
        if src_ocf.is_dir():
            shutil.copytree(src_ocf, ocf_dir, dirs_exist_ok=True)
        for p in (root / "usr" / "sbin").glob("fence_*"):
            shutil.copy2(p, sbin_dir / p.name)
        for p in list(ocf_dir.rglob("*")) + list(sbin_dir.glob("*")):
            if p.is_file():
                staged[p.name] = str(p)
        return staged
    ocf, fence = _discover(repo)
    for name, target in ocf.items():
        out = ocf_dir / PROVIDER / name
        out.write_text(_wrapper(target, python))
        out.chmod(0o755)
        staged[name] = str(out)
    for name, target in fence.items():
        out = sbin_dir / name
        out.write_text(_wrapper(target, python))
        out.chmod(0o755)
        staged[name] = str(out)
    return staged
