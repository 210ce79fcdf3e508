"""The maintenance switch: `computeha pause|resume` set NovaEvacuate's `paused` parameter with the real
crm_resource (on a CIB file); a paused engine evacuates nothing and keeps the requests; resumed, it
processes them in the order they were made."""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from computeha.agents.evacuation_engine import PROGRESS_PAUSED
from computeha.crm_templates import maintenance
from computeha.crm_templates.cli import main
from computeha.ocf_lib import evacuation_record as rec
from tests.unit.evacuation_fakes import MiniNova
from tests.unit.test_evacuation_engine import flag, make, record


def cib_with_novaevacuate(path, ids=("nova-evacuate",), paused=None):
    root = ET.fromstring(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True, check=True,
                                        timeout=30).stdout)
    resources = root.find("configuration/resources")
    for rid in ids:
        prim = ET.SubElement(resources, "primitive", id=rid, **{"class": "ocf"}, provider="computeha",
                             type="NovaEvacuate")
        attrs = ET.SubElement(prim, "instance_attributes", id=f"{rid}-ia")
        ET.SubElement(attrs, "nvpair", id=f"{rid}-ia-auth_url", name="auth_url", value="http://127.0.0.1:9/v3")
        if paused is not None:
            ET.SubElement(attrs, "nvpair", id=f"{rid}-ia-paused", name="paused", value=paused)
    ET.SubElement(resources, "primitive", id="other", **{"class": "ocf"}, provider="heartbeat", type="Dummy")
    path.write_text(ET.tostring(root, encoding="unicode"))


@pytest.fixture
def cib(tmp_path):
    if subprocess.run(["sh", "-c", "command -v crm_resource"], capture_output=True).returncode != 0:
        pytest.skip("crm_resource not installed (make system)")
    path = tmp_path / "cib.xml"
    cib_with_novaevacuate(path)
    return path


def cli(path, *args):
    return CliRunner().invoke(main, list(args), env={"CIB_file": str(path)}, catch_exceptions=False)


def test_switches_find_every_novaevacuate_and_read_the_parameter(tmp_path, cib):
    cib_with_novaevacuate(cib, ids=("a", "b"), paused="yes")
    assert maintenance.switches(cib.read_text()) == [maintenance.Switch("a", True), maintenance.Switch("b", True)]
    cib_with_novaevacuate(cib, ids=("a",), paused="false")
    assert maintenance.switches(cib.read_text()) == [maintenance.Switch("a", False)]


def test_pause_then_resume_sets_and_deletes_the_parameter_in_the_cib(cib):
    result = cli(cib, "pause")
    assert result.exit_code == 0 and "nova-evacuate: paused" in result.output, result.output
    assert maintenance.switches(cib.read_text()) == [maintenance.Switch("nova-evacuate", True)]
    assert "already paused" in cli(cib, "pause").output
    result = cli(cib, "resume")
    assert result.exit_code == 0 and "resumed" in result.output, result.output
    assert maintenance.switches(cib.read_text()) == [maintenance.Switch("nova-evacuate", False)]
    assert 'name="paused"' not in cib.read_text()


def test_pause_names_an_unknown_resource_and_an_unreachable_cluster(cib, tmp_path):
    result = cli(cib, "pause", "--resource", "nope")
    assert result.exit_code == 1 and "no NovaEvacuate resource 'nope'" in result.output
    missing = tmp_path / "absent" / "cib.xml"
    result = cli(missing, "resume")
    assert result.exit_code == 3 and "Traceback" not in result.output


def test_a_paused_engine_keeps_the_requests_and_resume_processes_them_in_order(tmp_path):
    nova = MiniNova(hosts=tuple(f"compute-{i}" for i in range(6)))
    first = nova.add_server("compute-0").id
    second = nova.add_server("compute-1").id
    nova.fence("compute-0")
    nova.fence("compute-1")
    engine, attrs, progress = make(tmp_path, nova, paused=True, max_parallel=1)
    flag(attrs, "compute-1", since=1_700_000_010)
    flag(attrs, "compute-0", since=1_700_000_000)
    try:
        assert engine.run_until_idle(2)
    finally:
        engine.close()
    assert not nova.evacuations
    assert [record(attrs, h).state for h in ("compute-0", "compute-1")] == [rec.REQUESTED, rec.REQUESTED]
    assert progress.get("compute-0", rec.PROGRESS_ATTRIBUTE) == PROGRESS_PAUSED
    resumed, attrs, _ = make(tmp_path, nova, attrs=attrs, max_parallel=1)
    try:
        assert resumed.run_until_idle(5)
    finally:
        resumed.close()
    assert nova.evacuations == {first: 1, second: 1}
    assert nova.evac_times[first] < nova.evac_times[second]  # the older request first
