"""The site model, the object builder and the three renderings (no cluster tools needed)."""
from __future__ import annotations

import os
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from computeha.crm_templates import agent_params as ap
from computeha.crm_templates import render_cib
from computeha.crm_templates.canonical import canonical
from computeha.crm_templates.model import SiteError, inline_secrets, load_site
from computeha.crm_templates.objects import (
    FENCE_NOVA,
    NOVA_COMPUTE,
    NOVA_EVACUATE,
    Clone,
    RuleLocation,
    build,
    primitives,
)
from computeha.crm_templates.render import parse_site, read_site, render

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "crm_templates"
GOLDEN = REPO / "tests" / "golden"
UPDATE = os.environ.get("COMPUTEHA_UPDATE_GOLDEN") == "1"


def minimal(**changes):
    site = {
        "controllers": [{"name": "ctl1", "bmc": {"address": "10.0.0.1", "username": "admin",
                                                 "password_script": "/usr/local/bin/pw ctl1"}}],
        "computes": [{"name": "compute-1", "bmc": {"address": "10.0.1.1", "username": "admin",
                                                   "password_cib_secret": True}}],
        "cloud": {"cloud": "overcloud"},
    }
    site.update(changes)
    return site


def problems_of(data) -> list:
    with pytest.raises(SiteError) as caught:
        load_site(data)
    return caught.value.problems


# --- validation ----------------------------------------------------------------------------

def test_minimal_site_is_valid_and_defaults_are_applied():
    site = load_site(minimal())
    assert site.controllers[0].nodeid == 1
    assert site.computes[0].address == "compute-1" and site.computes[0].nova_host == "compute-1"
    assert site.computes[0].bmc.cipher == 3 and site.computes[0].bmc.lanplus is True
    assert site.role_attribute == "computeha-role"


@pytest.mark.parametrize("change, expected", [
    (dict(computes=[{"name": "compute-1", "bmc": {"username": "u", "password": "p"}}]),
     "computes[0].bmc.address: is required"),
    (dict(computes=[{"name": "compute-1"}]), "computes[0].bmc: is required"),
    (dict(computes=[{"name": "c1", "bmc": {"address": "a", "username": "u", "password": "p", "port": 70000}}]),
     "computes[0].bmc.port: must be between 1 and 65535, got 70000"),
    (dict(computes=[{"name": "c1", "bmc": {"address": "a", "username": "u", "password": "p",
                                           "password_script": "x"}}]),
     "computes[0].bmc.password_script: set only one of password, password_script"),
    (dict(controllers=[{"name": "bad name"}]), "controllers[0].name: 'bad name' is not a valid node name"),
    (dict(cloud={"cloud": "x", "auth_url": "http://k"}), "cloud.auth_url: set either cloud"),
    (dict(cloud={"auth_url": "http://k", "username": "u", "password": "p"}), "cloud.project_name: is required"),
    (dict(evacuation={"selection": "some"}), "evacuation.selection: 'some' is not one of auto, marked, all"),
    (dict(evacuation={"max_parallel": "4"}), "evacuation.max_parallel: must be a whole number, got text"),
    (dict(reserved_hosts={"aggregate": "r", "hosts": ["nope"]}), "reserved_hosts.hosts[0]: 'nope' is not one"),
    (dict(colour="blue"), "colour: unknown field"),
    (dict(recheck_interval="soon"), "recheck_interval: 'soon' is not a duration"),
    (dict(remote_monitor_interval="often"), "remote_monitor_interval: 'often' is not a duration"),
    (dict(remote_monitor_timeout="0s"), "remote_monitor_timeout: must be longer than 0"),
])
def test_each_problem_names_its_field(change, expected):
    assert any(p.startswith(expected) for p in problems_of(minimal(**change))), problems_of(minimal(**change))


@pytest.mark.parametrize("text, ok", [
    ("60s", True), ("1min", True), ("500ms", True), ("2h", True), ("5m", True), ("30", True),
    ("1.5s", False), ("60 s", False), ("60S", False), ("60sec", False), ("1hr", False), ("-1s", False),
])
def test_site_durations_are_pacemaker_text_with_a_whole_number(text, ok):
    if ok:
        assert load_site(minimal(recheck_interval=text)).recheck_interval == text  # written into the CIB as is
    else:
        found = [p for p in problems_of(minimal(recheck_interval=text)) if p.startswith("recheck_interval:")]
        assert found == [f"recheck_interval: {text!r} is not a duration such as 60s or 1min"]


@pytest.mark.parametrize("text", ["0", "0s", "00min", "0ms"])
def test_a_zero_remote_monitor_interval_is_rejected(text):
    assert ("remote_monitor_interval: must be longer than 0 (how long a silent compute goes unnoticed)"
            in problems_of(minimal(remote_monitor_interval=text)))


def test_every_problem_is_reported_at_once():
    found = problems_of({"controllers": [{"name": "a"}, {"name": "a"}], "computes": "x"})
    assert "controllers[1].name: 'a' is already used by controllers[0].name" in found
    assert any(p.startswith("computes:") for p in found)
    assert any(p.startswith("cloud:") for p in found)


def test_duplicate_nova_hosts_and_node_ids_are_rejected():
    data = minimal(controllers=[{"name": "a", "nodeid": 2}, {"name": "b", "nodeid": 2}],
                   computes=[{"name": n, "nova_host": "same", "bmc": {"address": "x", "username": "u",
                                                                      "password": "p"}} for n in ("c1", "c2")])
    found = problems_of(data)
    assert "controllers[1].nodeid: 2 is already used by controllers[0]" in found
    assert "computes[1].nova_host: 'same' is already used by computes[0]" in found


def test_yaml_syntax_errors_name_the_line():
    with pytest.raises(SiteError) as caught:
        parse_site("controllers: [\n", "s.yaml")
    assert caught.value.problems[0].startswith("s.yaml: line ")


def test_inline_passwords_are_listed_for_a_warning():
    data = minimal(cloud={"auth_url": "http://k:5000/v3", "username": "u", "password": "p", "project_name": "a"})
    assert inline_secrets(load_site(data)) == ["cloud.password"]
    assert inline_secrets(load_site(minimal())) == []


# --- what the cluster gets -----------------------------------------------------------------

def example():
    return read_site(TEMPLATES / "site.example.yaml")


def test_objects_cover_the_instance_ha_pattern():
    site = example()
    config = build(site)
    by_id = {p.id: p for p in primitives(config)}
    nova = by_id[FENCE_NOVA]
    assert dict((nv.name, nv.value) for nv in nova.meta) == {"provides": "unfencing"}
    assert dict((nv.name, nv.value) for nv in nova.params)["pcmk_host_list"] == "compute-0 compute-1"
    for comp in site.computes:
        assert by_id[comp.name].agent == "ocf:pacemaker:remote"
        ipmi = dict((nv.name, nv.value) for nv in by_id[f"fence-ipmi-{comp.name}"].params)
        assert ipmi["pcmk_host_list"] == comp.name
        levels = [lv for lv in config.levels if lv.target == comp.name]
        assert [(lv.index, lv.devices) for lv in levels] == [(1, (f"fence-ipmi-{comp.name}", FENCE_NOVA))]
    rules = {c.rsc: c.value for c in config.constraints if isinstance(c, RuleLocation)}
    assert rules == {NOVA_EVACUATE: "controller", "nova-compute-clone": "compute"}
    clone = next(r for r in config.resources if isinstance(r, Clone))
    assert clone.child.id == NOVA_COMPUTE and ("requires", "unfencing") in [(m.name, m.value) for m in clone.child.meta]
    assert ("stonith-enabled", "true") in [(p.name, p.value) for p in config.properties]


def test_kdump_comes_first_and_every_compute_level_ends_with_fence_compute():
    config = build(load_site(minimal(fence_kdump={"timeout": 30})))
    levels = sorted((lv.index, lv.devices) for lv in config.levels if lv.target == "compute-1")
    assert levels == [(1, ("fence-kdump", FENCE_NOVA)), (2, ("fence-ipmi-compute-1", FENCE_NOVA))]


def test_host_map_is_rendered_only_when_names_differ():
    same = {p.id: p for p in primitives(build(load_site(minimal())))}
    assert "host_map" not in [nv.name for nv in same[FENCE_NOVA].params]
    data = minimal(computes=[{"name": "compute-1", "nova_host": "compute-1.example.com",
                              "bmc": {"address": "a", "username": "u", "password": "p"}}])
    differ = {p.id: p for p in primitives(build(load_site(data)))}
    for rsc in (FENCE_NOVA, NOVA_EVACUATE):
        assert ("host_map", "compute-1:compute-1.example.com") in [(nv.name, nv.value) for nv in differ[rsc].params]


@pytest.mark.parametrize("agent, fence", [("fence_ipmi", True), ("fence_compute", True),
                                          ("NovaEvacuate", False), ("NovaCompute", False)])
def test_rendered_parameters_are_declared_by_the_agents(agent, fence):
    """Fails when a template names a parameter the agent does not declare (or the agent renames one)."""
    data = minimal(cloud={"auth_url": "http://k:5000/v3", "username": "u", "password": "p", "project_name": "a",
                          "region_name": "r", "endpoint_type": "internal", "insecure": True},
                   fence_kdump=True)
    full = yaml.safe_load((TEMPLATES / "site.example.yaml").read_text())
    names = set()
    for site in (load_site(data), load_site(full)):
        for p in primitives(build(site)):
            if p.type == {"fence_ipmi": site.agents.fence_ipmi, "fence_compute": site.agents.fence_compute}.get(
                    agent, agent):
                names.update(nv.name for nv in p.params)
    assert names, f"no resource of {agent} rendered"
    missing = ap.undeclared(agent, sorted(names), fence)
    if missing is None:
        pytest.skip(f"{agent} is not available in this checkout")
    assert missing == []


# --- renderings ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, suffix", [("pcs", "pcs"), ("crmsh", "crm"), ("cib", "xml")])
def test_golden_renderings(fmt, suffix):
    """COMPUTEHA_UPDATE_GOLDEN=1 rewrites the files after an intended change."""
    text = render(example(), fmt, script=f"site-example.{suffix}")
    path = GOLDEN / f"site-example.{suffix}"
    if UPDATE:
        path.write_text(text)
    assert path.read_text() == text, f"{path} is out of date: COMPUTEHA_UPDATE_GOLDEN=1 pytest {__file__}"


def test_cib_rendering_is_built_with_unique_ids():
    root = ET.fromstring(render(example(), "cib"))
    # <node id> is not an XML ID in the schema: a remote node's id is its connection resource's id
    ids = [e.get("id") for e in root.iter() if e.get("id") is not None and e.tag != "node"]
    assert len(ids) == len(set(ids))
    assert {n.get("id") for n in root.iter("node") if n.get("type") == "remote"} <= set(ids)
    assert root.get("validate-with").startswith("pacemaker-3.")


def test_merge_into_a_base_cib_keeps_foreign_objects_and_replaces_ours():
    base = ET.fromstring(render(example(), "cib"))
    resources = base.find("configuration/resources")
    ET.SubElement(resources, "primitive", {"id": "other", "class": "ocf", "provider": "pacemaker", "type": "Dummy"})
    before = canonical(ET.fromstring(render(example(), "cib")))
    merged = canonical(render_cib.merge(base, build(example())))
    assert "other" in merged["resources"]
    merged["resources"].pop("other")
    assert merged == before  # merging twice did not duplicate anything


def _pcs_words(script: str):
    """Words on command lines of the pcs script (here-document bodies are stdin, not argv)."""
    words, heredoc = [], None
    for line in script.splitlines():
        if heredoc is not None:
            if line == heredoc:
                heredoc = None
            continue
        if "<<'" in line:
            heredoc = line.split("<<'", 1)[1].rstrip("'")
        if line.lstrip().startswith("#") or not line.strip():
            continue
        words += shlex.split(line)
    return words


def test_inline_passwords_never_reach_a_command_line():
    secret = "Zx9-inline-secret"
    data = minimal(cloud={"auth_url": "http://k:5000/v3", "username": "u", "password": secret + "c",
                          "project_name": "a"},
                   computes=[{"name": "compute-1", "bmc": {"address": "a", "username": "u", "password": secret}}])
    site = load_site(data)
    script = render(site, "pcs")
    assert secret in script  # it is applied: through stdin
    assert not [w for w in _pcs_words(script) if secret in w]
    crm = render(site, "crmsh")
    assert f"password={secret}" in crm  # crmsh reads it from the file


def test_crmsh_values_with_spaces_and_quotes_are_quoted():
    data = minimal(computes=[{"name": "compute-1", "bmc": {"address": "a", "username": "u",
                                                           "password": 'we"ird pass\\'}}])
    crm = render(load_site(data), "crmsh")
    assert 'password="we\\"ird pass\\\\"' in crm


def test_readme_section_matches_the_renderer():
    """The README's example blocks are the renderer's output for the example site."""
    readme = (TEMPLATES / "README.md").read_text()
    site = example()
    for fmt, marker in (("crmsh", "crmsh-example"), ("pcs", "pcs-example")):
        start = readme.index(f"<!-- {marker} begin -->")
        end = readme.index(f"<!-- {marker} end -->")
        block = readme[start:end].split("```", 2)[1].split("\n", 1)[1]
        rendered = render(site, fmt, script=f"site-example.{'crm' if fmt == 'crmsh' else 'pcs'}")
        assert block.strip() in rendered, f"README {marker} drifted: run tests/unit/test_templates.py with " \
                                          f"COMPUTEHA_UPDATE_GOLDEN=1"
    fields = yaml.safe_load((TEMPLATES / "site.example.yaml").read_text())
    for key in fields:
        assert f"`{key}`" in readme, f"README does not document the site field {key}"


def test_the_remote_connection_monitor_follows_the_site():
    """How soon a partitioned compute is noticed is the operator's choice (default 20 s + 40 s)."""
    def monitor(site) -> tuple:
        root = ET.fromstring(render(load_site(site), "cib"))
        op = root.find(".//primitive[@id='compute-1']/operations/op[@name='monitor']")
        assert op is not None
        return op.get("interval"), op.get("timeout")
    assert monitor(minimal()) == ("20s", "40s")
    assert monitor(minimal(remote_monitor_interval="5s", remote_monitor_timeout="15s")) == ("5s", "15s")
