"""fence_compute's metadata: deterministic, golden (tests/golden/fence_compute.xml), valid for
fence-agents' schema, fabric-fencing actions, legacy names kept.

An intended change: COMPUTEHA_UPDATE_GOLDEN=1 pytest tests/unit/test_fence_compute_metadata.py, review the diff.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from computeha.fence.fence_compute import FenceCompute
from computeha.ocf_lib import fence
from tests.tools import golden

FENCE_RNG = "/usr/share/cluster/relaxng/metadata.rng"


def render() -> str:
    out, err = io.StringIO(), io.StringIO()
    assert fence.run(FenceCompute(), ["fence_compute"], {}, stdin=io.StringIO("action=metadata\n"),
                     stdout=out, stderr=err) == 0
    assert err.getvalue() == ""
    return out.getvalue()


def test_metadata_matches_golden() -> None:
    xml = render()
    assert xml == render()
    golden.check("fence_compute.xml", xml)


def test_fabric_actions_and_legacy_names() -> None:
    root = ET.fromstring(render())
    actions = {a.get("name"): a.attrib for a in root.find("actions")}
    assert "reboot" not in actions and actions["on"].get("automatic") == "1"
    assert {"on", "off", "status", "monitor", "list", "list-status", "metadata", "validate-all"} <= set(actions)
    params = {p.get("name"): p for p in root.find("parameters")}
    for legacy in ("auth_url", "login", "username", "passwd", "password", "password_script", "tenant_name",
                   "project_name", "user_domain", "project_domain", "region_name", "endpoint_type", "insecure",
                   "domain", "compute_domain", "record_only", "no_shared_storage", "plug", "port"):
        assert legacy in params, legacy
    assert params["action"].find("content").get("default") == "off"
    assert params["insecure"].find("content").get("type") == "boolean"


def test_metadata_valid_against_fence_agents_rng() -> None:
    if not (shutil.which("xmllint") and os.path.exists(FENCE_RNG)):
        pytest.skip("xmllint or fence-agents metadata.rng missing (make system)")
    proc = subprocess.run(["xmllint", "--noout", "--relaxng", FENCE_RNG, "-"], input=render(), text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_metadata_does_not_import_keystoneauth() -> None:
    code = ("import sys, io; from computeha.fence.fence_compute import FenceCompute; "
            "from computeha.ocf_lib import fence;"
            "fence.run(FenceCompute(), ['x'], {}, stdin=io.StringIO('action=metadata\\n'), stdout=io.StringIO());"
            "fence.run(FenceCompute(), ['x'], {}, stdin=io.StringIO('action=validate-all\\nauth_url=http://k/v3\\n"
            "login=a\\npasswd=bcdef\\ntenant_name=p\\n'), stdout=io.StringIO(), stderr=io.StringIO());"
            "print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('keystoneauth1', 'novaclient', 'yaml', 'requests')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
