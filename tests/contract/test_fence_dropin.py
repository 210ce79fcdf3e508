"""Drop-in: our fence agents' metadata names every option that the distribution's fence-agents accept, read
from the agents installed on this machine (Debian's fence-agents: fence_compute, fence_ipmilan), so that pcs,
which checks a device's options against the metadata, takes an existing device when only its type changes."""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from computeha.fence.fence_compute import FenceCompute
from computeha.fence.fence_ipmi import IpmiFence
from computeha.ocf_lib import fence
from tests.contract.conftest import need

PAIRS = [("fence_compute", FenceCompute), ("fence_ipmilan", IpmiFence)]


def names(xml_text: str) -> set:
    return {p.get("name") for p in ET.fromstring(xml_text).iter("parameter")}


@pytest.mark.parametrize("theirs,ours", PAIRS, ids=[p[0] for p in PAIRS])
def test_every_option_of_the_distributions_agent_is_in_our_metadata(theirs, ours) -> None:
    need(theirs)
    path = next(p for p in (Path("/usr/sbin") / theirs, Path("/sbin") / theirs) if p.exists())
    proc = subprocess.run([str(path), "-o", "metadata"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-500:]
    expected = names(proc.stdout)
    assert len(expected) > 20, expected  # a real metadata document, not an error text
    missing = expected - names(ours().metadata())
    assert not missing, f"{theirs} accepts options that our metadata does not list: {sorted(missing)}"


@pytest.mark.parametrize("line", ["project-domain=Default", "user-domain=Default", "compute-domain=example.com",
                                  "verbose_level=2", "plug_separator=,", "separator=,", "shell_timeout=3",
                                  "stonith_status_sleep=1", "retry_on=1"])
def test_the_compatibility_options_are_accepted_on_stdin(line) -> None:
    agent = FenceCompute()
    inp = fence.parse_stdin(f"action=metadata\n{line}", agent.full_table())
    assert inp.unknown == [] and inp.errors == []
