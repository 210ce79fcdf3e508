"""The computeha CLI: exit codes and output that scripts rely on."""
from __future__ import annotations

import json
import stat
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from computeha.crm_templates import clusterview, planning
from computeha.crm_templates.cli import main
from computeha.crm_templates.render import read_site
from computeha.ocf_lib import evacuation_record as rec

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "crm_templates" / "site.example.yaml")


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_help_explains_commands_and_exit_codes():
    result = run("--help")
    assert result.exit_code == 0
    for word in ("render", "validate", "status", "plan", "events", "Exit codes"):
        assert word in result.output


def test_validate_ok_and_json():
    result = run("validate", EXAMPLE)
    assert result.exit_code == 0 and "valid (3 controllers, 2 computes)" in result.output
    data = json.loads(run("validate", "--json", EXAMPLE).output)
    assert data == {"valid": True, "warnings": [], "controllers": 3, "computes": 2}


def test_validate_reports_every_problem_with_exit_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("controllers: [{name: c1}]\ncomputes: [{name: n1, bmc: {address: a}}]\n")
    result = run("validate", str(bad))
    assert result.exit_code == 1
    text = result.output  # click 8.2+ mixes stderr into output in the test runner
    assert "computes[0].bmc.username: is required" in text
    assert "cloud: is required" in text
    data = json.loads(run("validate", "--json", str(bad)).output)
    assert data["valid"] is False and "computes[0].bmc.username: is required" in data["problems"]


def test_validate_of_a_missing_file_is_exit_1(tmp_path):
    assert run("validate", str(tmp_path / "nope.yaml")).exit_code == 1


def test_usage_errors_are_exit_2():
    assert run("render", EXAMPLE).exit_code == 2  # --format missing
    assert run("render", "--format", "xml", EXAMPLE).exit_code == 2
    assert run("render", "--format", "pcs", "--base", EXAMPLE, EXAMPLE).exit_code == 2


@pytest.mark.parametrize("fmt, suffix", [("pcs", "pcs"), ("crmsh", "crm"), ("cib", "xml")])
def test_render_matches_the_golden_files(fmt, suffix, tmp_path):
    out = tmp_path / f"site-example.{suffix}"
    result = run("render", "--format", fmt, "-o", str(out), EXAMPLE)
    assert result.exit_code == 0
    assert out.read_text() == (REPO / "tests" / "golden" / f"site-example.{suffix}").read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # no inline password in the example


def test_render_with_inline_passwords_writes_a_private_file(tmp_path):
    data = yaml.safe_load(Path(EXAMPLE).read_text())
    data["computes"][0]["bmc"] = {"address": "a", "username": "u", "password": "inline"}
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(data))
    out = tmp_path / "site.crm"
    assert run("render", "--format", "crmsh", "-o", str(out), str(site)).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


# --- status and events from a CIB (cibadmin reads CIB_file) ------------------------------------

def cib_with_records(path: Path, records: dict, progress: dict) -> None:
    root = ET.fromstring(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True,
                                        check=True, timeout=30).stdout)
    nodes = root.find("configuration/nodes")
    status = root.find("status")
    for node, value in records.items():
        element = ET.SubElement(nodes, "node", id=node, uname=node, type="remote")
        attrs = ET.SubElement(element, "instance_attributes", id=f"nodes-{node}")
        ET.SubElement(attrs, "nvpair", id=f"nodes-{node}-r", name=rec.ATTRIBUTE, value=value)
        if node in progress:
            state = ET.SubElement(status, "node_state", id=node, uname=node)
            transient = ET.SubElement(ET.SubElement(state, "transient_attributes", id=node),
                                      "instance_attributes", id=f"status-{node}")
            ET.SubElement(transient, "nvpair", id=f"status-{node}-p", name=rec.PROGRESS_ATTRIBUTE,
                          value=progress[node])
    path.write_text(ET.tostring(root, encoding="unicode"))


@pytest.fixture
def records_cib(tmp_path):
    if subprocess.run(["sh", "-c", "command -v cibadmin"], capture_output=True).returncode != 0:
        pytest.skip("cibadmin not installed (make system)")
    path = tmp_path / "cib.xml"
    cib_with_records(path, {"compute-1": "running;1700000000;ctl1", "compute-2": "done;1700000100;5/5",
                            "compute-3": "requested;1700000200;fence_compute"},
                     {"compute-1": "3/7"})
    return path


def test_status_json_reads_the_cluster_record(records_cib):
    result = run("status", "--json", env={"CIB_file": str(records_cib)})
    assert result.exit_code == 0
    hosts = {h["node"]: h for h in json.loads(result.output)}
    assert hosts["compute-1"]["state"] == "running"
    assert (hosts["compute-1"]["done"], hosts["compute-1"]["total"]) == (3, 7)
    assert hosts["compute-2"]["state"] == "done" and hosts["compute-2"]["total"] == 5
    assert hosts["compute-3"]["state"] == "requested" and hosts["compute-3"]["since"] == 1700000200


def test_status_text_shows_progress_and_exit_1_on_a_failed_host(tmp_path, records_cib):
    text = run("status", "--no-watch", env={"CIB_file": str(records_cib)}).output
    assert "compute-1" in text and "[########............] 3/7" in text
    failed = tmp_path / "failed.xml"
    cib_with_records(failed, {"compute-9": "failed;1700000300;1/2 no valid host"}, {})
    result = run("status", "--no-watch", env={"CIB_file": str(failed)})
    assert result.exit_code == 1 and "failed" in result.output


def test_status_when_the_cluster_cannot_be_read_is_exit_3(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("not xml")
    assert run("status", "--json", env={"CIB_file": str(broken)}).exit_code == 3


def test_events_lists_records_oldest_first(records_cib):
    result = run("events", "--json", env={"CIB_file": str(records_cib)})
    assert result.exit_code == 0
    found = json.loads(result.output)["events"]
    evac = [(e["target"], e["result"]) for e in found if e["kind"] == "evacuation"]
    assert evac == [("compute-1", "pending"), ("compute-2", "success"), ("compute-3", "pending")]


def test_fence_history_parsing():
    xml = ('<pacemaker-result api-version="2.3" request="stonith_admin --history * --output-as=xml">'
           '<fence_history><fence_event status="success" action="reboot" target="compute-1" client="pacemaker-controld"'
           ' origin="ctl1" delegate="ctl2" completed="2026-11-21 01:00:00 +00:00"/>'
           '<fence_event status="failed" action="off" target="compute-2" delegate="ctl3" exit-reason="timed out"/>'
           '</fence_history><status code="0" message="OK"/></pacemaker-result>')
    events = clusterview.fence_events(xml)
    assert [(e.target, e.what, e.result) for e in events] == [("compute-1", "reboot", "success"),
                                                              ("compute-2", "off", "failed")]
    assert "by ctl3" in events[1].detail and "timed out" in events[1].detail


# --- plan: NovaEvacuate's own selection on the in-memory Nova ---------------------------------

def test_plan_lists_evacuated_and_excluded_instances_with_reasons_and_capacity():
    fake_nova = pytest.importorskip("tests.fakes.fake_nova")
    nova = fake_nova.FakeNova(hosts=("compute-0.localdomain", "compute-1.localdomain", "compute-2"))
    host = "compute-0.localdomain"
    nova.add_server(host, name="web", metadata={"evacuation_priority": "5"})
    nova.add_server(host, name="db", status="SHUTOFF")
    nova.add_server(host, name="building", status="BUILD")
    nova.add_server(host, name="scratch", project_id="3f1c0e8a9b7d4c2e8f6a5b4c3d2e1f00")
    nova.add_server(host, name="optout", metadata={"evacuable": "false"})
    site = read_site(EXAMPLE)
    calls = []

    def placement(path):
        calls.append(path)
        if path.startswith("/allocations/"):
            return {"allocations": {"rp": {"resources": {"VCPU": 2, "MEMORY_MB": 2048}}}}
        if path == "/resource_providers":
            return {"resource_providers": [{"uuid": "a", "name": "compute-1.localdomain"},
                                           {"uuid": "b", "name": "compute-0.localdomain"}]}
        if path.endswith("/inventories"):
            return {"inventories": {"VCPU": {"total": 4, "reserved": 0, "allocation_ratio": 1.0},
                                    "MEMORY_MB": {"total": 4096, "reserved": 512, "allocation_ratio": 1.0}}}
        return {"usages": {"VCPU": 1, "MEMORY_MB": 0}}

    result = planning.plan("compute-0", site, nova=nova, placement=placement)
    assert result.nova_host == host
    actions = {i.name: (i.action, i.reason) for i in result.items}
    assert actions["web"][0] == "evacuate" and actions["db"][0] == "evacuate"
    assert actions["building"] == ("report", "status BUILD must not be touched")
    assert actions["scratch"][0] == "skip" and "excluded" in actions["scratch"][1]
    assert actions["optout"][0] == "skip" and "opts out" in actions["optout"][1]
    # two instances of 2 VCPU / 2048 MB; only compute-1 counts (compute-0 failed, compute-2 has no provider)
    assert result.needed == {"VCPU": 4, "MEMORY_MB": 4096}
    assert result.free == {"VCPU": 3, "MEMORY_MB": 3584}
    assert result.fits is False
    assert "/resource_providers/b/inventories" not in calls
    text = result.lines()
    assert text[1].split()[:2] == ["evacuate", "web"]  # highest priority first
    assert "DOES NOT FIT" in text[-1]


def test_plan_judges_flavor_markers_as_the_agent_does():
    """A flavor that says evacuable=false marks nothing: the legacy rule (evacuate everything) still holds."""
    fake_nova = pytest.importorskip("tests.fakes.fake_nova")

    class NovaWithFlavors(fake_nova.FakeNova):
        specs = {"m1.tiny": "false"}

        def flavors_with_extra_spec(self, key):
            return dict(self.specs)

    nova = NovaWithFlavors(hosts=("compute-0", "compute-1"))
    nova.add_server("compute-0", name="plain")
    site = read_site(EXAMPLE)
    from computeha.agents.evacuation_params import Settings

    settings = Settings.from_values(planning._agent_values(site))
    assert settings.selection != "all"
    assert planning.markers(nova, settings, nova.servers_on_host("compute-0")).anything_marked is False
    NovaWithFlavors.specs = {"m1.tiny": "false", "m1.gold": "true"}
    assert planning.markers(nova, settings, nova.servers_on_host("compute-0")).anything_marked is True


def test_plan_without_credentials_is_not_available():
    result = run("plan", "compute-0")
    assert result.exit_code == 3


def test_status_watch_redraws_until_its_timeout_while_a_host_is_in_progress(records_cib):
    result = run("status", "--watch", "--interval", "0.05", "--timeout", "0.5", env={"CIB_file": str(records_cib)})
    assert result.exit_code == 0
    assert result.output.count("HOST ") >= 2  # redrawn: compute-1 and compute-3 are still in progress


def test_per_instance_progress_comes_from_nova_evacuation_migrations():
    fake_nova = pytest.importorskip("tests.fakes.fake_nova")
    nova = fake_nova.FakeNova(hosts=("compute-0.localdomain", "compute-1.localdomain"))
    a = nova.add_server("compute-0.localdomain", name="a")
    nova.kill_compute("compute-0.localdomain", noticed=True)
    nova.force_down(next(s for s in nova.compute_services() if s.host == "compute-0.localdomain"), True)
    nova.evacuate(a)
    record = clusterview.HostStatus("compute-0", "running", 0, "ctl1")
    found = planning.instance_progress(nova, [record], read_site(EXAMPLE))
    assert [(i["instance"], i["dest"]) for i in found["compute-0"]] == [(a, "compute-1.localdomain")]
    assert found["compute-0"][0]["status"] in ("accepted", "pre-migrating", "running", "done", "completed")


def test_render_into_a_base_that_is_not_a_cib_is_exit_1(tmp_path):
    base = tmp_path / "base.xml"
    base.write_text("<cib><status/></cib>")
    result = run("render", "--format", "cib", "--base", str(base), EXAMPLE)
    assert result.exit_code == 1 and "no <configuration> element" in result.output
    base.write_text("not xml")
    assert run("render", "--format", "cib", "--base", str(base), EXAMPLE).exit_code == 1


def test_status_shows_a_progress_note_such_as_the_mass_failure_guard(tmp_path):
    if subprocess.run(["sh", "-c", "command -v cibadmin"], capture_output=True).returncode != 0:
        pytest.skip("cibadmin not installed (make system)")
    path = tmp_path / "cib.xml"
    cib_with_records(path, {"compute-1": "requested;1700000000;fenced by ctl1",
                            "compute-2": "requested;1700000001;fenced by ctl1"},
                     {"compute-1": "blocked: mass failure", "compute-2": "blocked: mass failure"})
    text = run("status", "--no-watch", env={"CIB_file": str(path)}).output
    assert text.count("blocked: mass failure") == 2, text
    hosts = json.loads(run("status", "--json", env={"CIB_file": str(path)}).output)
    assert {h["note"] for h in hosts} == {"blocked: mass failure"}
