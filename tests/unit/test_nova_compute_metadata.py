"""NovaCompute metadata: pinned by a golden file, valid for the OCF tools.

Refresh after an intended change with: COMPUTEHA_UPDATE_GOLDEN=1 pytest tests/unit/test_nova_compute_metadata.py
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from computeha.agents.nova_compute import NovaCompute
from computeha.ocf_lib import ocf

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "NovaCompute.xml"


def metadata() -> str:
    out = io.StringIO()
    assert ocf.run(NovaCompute(), ["NovaCompute", "meta-data"], {}, stdout=out) == 0
    return out.getvalue()


def test_metadata_matches_the_golden_file() -> None:
    text = metadata()
    if os.environ.get("COMPUTEHA_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert GOLDEN.read_text() == text, "metadata changed: review, then COMPUTEHA_UPDATE_GOLDEN=1 to accept"


def test_metadata_is_valid_against_the_resource_agents_dtd() -> None:
    if not shutil.which("xmllint") or not os.path.exists("/usr/share/resource-agents/ra-api-1.dtd"):
        pytest.skip("xmllint or resource-agents' ra-api-1.dtd missing")
    proc = subprocess.run(["xmllint", "--noout", "--valid", "-"], input=metadata(), capture_output=True, text=True,
                          cwd="/usr/share/resource-agents", timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_legacy_parameter_names_are_accepted() -> None:
    table = NovaCompute.table
    for legacy, canonical in (("evacuation_delay", "evacuation_delay"), ("tenant_name", "project_name"),
                              ("login", "username"), ("passwd", "password")):
        assert table[legacy].name == canonical
    assert table["password"].secret
