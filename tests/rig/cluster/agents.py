"""Make the working tree's agents visible inside the rig's nodes.

Pacemaker 2.1.5 has no search-path override: OCF agents are looked up under
``/usr/lib/ocf/resource.d/<provider>/`` and fence agents as ``/usr/sbin/fence_*``. The rig
stages a small tree under ``.rig/cluster/agents/`` and each node overlays it (read-only
overlayfs, in the node's own mount namespace) on those two directories, so the host's
/usr stays untouched.

What is staged: the project's own ``make install DESTDIR=.agents/destdir PYTHON=<venv python>``
(wrappers that import the agent modules from the editable install, so edits in the working tree
are live without restaging). An agent whose module is not importable yet is skipped with a
note in ``agents/stage.log``; the overlay is set up when a node is created, so an agent added
later needs a rig restart (``down.sh`` + ``up.sh``).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

from tests.rig.cluster.config import REPO

PROVIDER = "computeha"


PRINT_MK = """
print-agents:
\t@echo $(OCF_AGENTS)
\t@echo $(FENCE_AGENTS)
"""


def _make(repo: Path, args: List[str], log: Path) -> bool:
    with open(log, "a") as out:
        out.write(f"$ make {' '.join(args)}\n")
        out.flush()
        return subprocess.run(["make", "--no-print-directory", "-C", str(repo), *args],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              timeout=300, check=False).returncode == 0


def _agent_lists(repo: Path, dest: Path) -> "tuple[List[str], List[str]]":
    """The Makefile's OCF_AGENTS / FENCE_AGENTS, expanded by make itself."""
    mk = dest / "print.mk"
    mk.write_text(PRINT_MK)
    proc = subprocess.run(["make", "--no-print-directory", "-s", "-C", str(repo), "-f", "Makefile",
                           "-f", str(mk), "print-agents"], capture_output=True, text=True,
                          timeout=60, check=False)
    lines = proc.stdout.splitlines() + ["", ""]
    return lines[0].split(), lines[1].split()


def _has_install_target(repo: Path) -> bool:
    mk = repo / "Makefile"
    return mk.exists() and any(line.startswith("install:") for line in mk.read_text().splitlines())


def stage(dest: Path, python: str, repo: Path = REPO) -> Dict[str, str]:
    """(Re)build ``dest/ocf`` and ``dest/sbin``; returns {agent name: staged path}."""
    ocf_dir, sbin_dir = dest / "ocf", dest / "sbin"
    shutil.rmtree(dest, ignore_errors=True)
    (ocf_dir / PROVIDER).mkdir(parents=True)
    sbin_dir.mkdir(parents=True)
    log = dest / "stage.log"
    if not _has_install_target(repo):
        log.write_text("no 'make install' target: no agents staged\n")
        return {}
    root = dest / "destdir"
    common = [f"DESTDIR={root}", f"PYTHON={python}", f"PROVIDER={PROVIDER}"]
    if not _make(repo, ["install", *common], log):
        # some agent is not importable yet: stage the others one by one
        ocf, fence = _agent_lists(repo, dest)
        for entry in ocf:
            _make(repo, ["install", *common, f"OCF_AGENTS={entry}", "FENCE_AGENTS="], log)
        for entry in fence:
            _make(repo, ["install", *common, "OCF_AGENTS=", f"FENCE_AGENTS={entry}"], log)
    staged: Dict[str, str] = {}
    src_ocf = root / "usr" / "lib" / "ocf" / "resource.d" / PROVIDER
    for p in sorted(src_ocf.glob("*")) if src_ocf.is_dir() else []:
        shutil.copy2(p, ocf_dir / PROVIDER / p.name)
        staged[p.name] = str(ocf_dir / PROVIDER / p.name)
    for p in sorted((root / "usr" / "sbin").glob("fence_*")):
        shutil.copy2(p, sbin_dir / p.name)
        staged[p.name] = str(sbin_dir / p.name)
    return staged
