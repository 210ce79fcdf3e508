"""Fixtures for contract tests: the sample agents installed the way an operator would."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools import pkgtree

REPO = pkgtree.REPO
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def need(*programs: str) -> None:
    """Contract tests run the real tools: missing ones fail in CI, skip elsewhere."""
    missing = [p for p in programs if shutil.which(p, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
    if missing:
        message = f"missing tools {missing}: run 'make system' (tests/tools/setup-system.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Installed:
    root: Path  # world-readable folder holding everything
    site: Path  # the package tree (sys.path entry)
    ocf_root: Path  # OCF_ROOT with resource.d/computeha/ComputehaSample
    sbin: Path  # fence agents
    python: str

    provider: str = "computeha"

    @property
    def ocf_agent(self) -> Path:
        return self.ocf_root / "resource.d" / self.provider / "ComputehaSample"

    @property
    def fence_agent(self) -> Path:
        return self.sbin / "fence_computeha_sample"


SAMPLE_OCF = "ComputehaSample=computeha_sample_agents:ocf_main"
SAMPLE_FENCE = "fence_computeha_sample=computeha_sample_agents:fence_main"


def make_install(target: str, site: Path, **variables: str) -> subprocess.CompletedProcess:
    """`make install`/`uninstall` of the sample agents, exactly as an operator runs it."""
    args = ["make", "-s", "-C", str(REPO), target, f"PYTHON={SYSTEM_PYTHON}", f"SYS_PATH={site}",
            f"OCF_AGENTS={SAMPLE_OCF}", f"FENCE_AGENTS={SAMPLE_FENCE}"]
    args += [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def site_tree() -> Path:
    """A world-readable installed copy of the package plus the sample agents' module."""
    root = Path(tempfile.mkdtemp(prefix="computeha-contract-"))
    os.chmod(root, 0o755)
    site = pkgtree.build(root / "site")
    shutil.copy2(REPO / "tests" / "contract" / "sample_agents.py", site / "computeha_sample_agents.py")
    os.chmod(site / "computeha_sample_agents.py", 0o644)
    yield site
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def installed(site_tree: Path) -> Installed:
    """The sample agents installed with `make install DESTDIR=...` into a private tree."""
    root = site_tree.parent / "destdir"
    proc = make_install("install", site_tree, DESTDIR=str(root), OCF_ROOT="/ocf", SBINDIR="/sbin",
                        PROVIDER="computeha")
    assert proc.returncode == 0, proc.stderr
    for folder, _dirs, _files in os.walk(root):
        os.chmod(folder, 0o755)
    return Installed(root, site_tree, root / "ocf", root / "sbin", SYSTEM_PYTHON)


@pytest.fixture(scope="session")
def system_installed(site_tree: Path) -> Installed:
    """The sample agents installed where Pacemaker's tools look (root only), removed afterwards.

    Pacemaker 2.1 has no search-path override: crm_resource reads
    /usr/lib/ocf/resource.d and stonith_admin /usr/sbin. A provider name of
    our own keeps the test clear of every packaged agent.
    """
    if os.geteuid() != 0:
        pytest.skip("installing into /usr/lib/ocf and /usr/sbin needs root")
    variables = dict(OCF_ROOT="/usr/lib/ocf", SBINDIR="/usr/sbin", PROVIDER="computeha-test")
    proc = make_install("install", site_tree, **variables)
    assert proc.returncode == 0, proc.stderr
    yield Installed(Path("/"), site_tree, Path("/usr/lib/ocf"), Path("/usr/sbin"), SYSTEM_PYTHON, "computeha-test")
    make_install("uninstall", site_tree, **variables)
