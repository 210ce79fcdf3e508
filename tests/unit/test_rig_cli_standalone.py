"""The OpenStack rig's CLI (tests/rig/openstack/up.sh, down.sh) runs in the rig's own venv, from the
checkout, where the project package `computeha` is not installed: its modules must import without it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BLOCK_PACKAGE = """
import sys

class NoProjectPackage:
    def find_spec(self, name, path=None, target=None):
        if name == "computeha" or name.startswith("computeha."):
            raise ModuleNotFoundError("No module named " + name + " (blocked: the rig venv has no project package)")
        return None

sys.meta_path.insert(0, NoProjectPackage())
sys.path.insert(0, REPO)
import tests.rig.openstack.cli  # noqa: F401
print("imported")
"""


def test_rig_cli_imports_without_the_project_package():
    out = subprocess.run([sys.executable, "-c", BLOCK_PACKAGE.replace("REPO", repr(str(REPO)))], cwd=str(REPO),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "imported" in out.stdout, out.stderr[-2000:]
