"""The renderings against the real Pacemaker tools: crm_verify, pcs -f, crmsh shadow CIBs, crm_simulate.

The agents need not be installed (crm_verify and crm_simulate do not run
them); pcs and crmsh are told so (COMPUTEHA_PCS_FORCE=1, crm -F) and the
parameter names are checked against the agents' tables by the unit tests.
"""
from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from computeha.crm_templates.canonical import canonical, differences
from computeha.crm_templates.objects import build
from computeha.crm_templates.render import parse_site, render
from computeha.crm_templates.render_cib import render_into
from tests.contract.conftest import need

pytestmark = pytest.mark.tools

CONTROLLERS = ("ctl1", "ctl2", "ctl3")
SERVICE = "haproxy-clone"  # stands in for the control plane NovaEvacuate is ordered after


def site_yaml(computes: int, inline: bool = True, kdump: bool = False) -> str:
    """A site with every password form; `inline` adds inline passwords (BMC and Keystone)."""
    def bmc(i: int, prefix: str) -> dict:
        forms = [{"password_script": f"/usr/local/sbin/bmc-pw {prefix}{i}"}, {"password_cib_secret": True}]
        if inline:
            forms.append({"password": f"s3cr'et \"{i}\" x"})
        return {"address": f"10.{2 if prefix == 'c' else 3}.{i // 250}.{i % 250 + 1}", "username": "admin",
                **forms[i % len(forms)]}
    cloud = ({"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "password": "cloud pw",
              "project_name": "admin", "region_name": "RegionOne"} if inline else {"cloud": "overcloud"})
    data = {
        "name": "rig",
        "controllers": [{"name": name, "nodeid": i + 1, "bmc": bmc(i + 1, "k")} for i, name in enumerate(CONTROLLERS)],
        "computes": [{"name": f"compute-{i}", "address": f"10.1.{i // 250}.{i % 250 + 1}",
                      "nova_host": f"compute-{i}.localdomain" if i % 2 else f"compute-{i}", "bmc": bmc(i, "c")}
                     for i in range(1, computes + 1)],
        "cloud": cloud,
        "evacuation": {"max_parallel": 8, "selection": "auto", "exclude_images": ["tag:amphora"]},
        "reserved_hosts": {"aggregate": "ha-reserved", "hosts": ["compute-1"]},
        "control_plane_services": [SERVICE],
    }
    if kdump:
        data["fence_kdump"] = {"timeout": 30}
    return yaml.safe_dump(data)


def seed(path: Path) -> None:
    """What a freshly set-up cluster has: its members and the control plane, nothing of ours."""
    env = dict(os.environ, CIB_file=str(path))
    with open(path, "w") as handle:
        subprocess.run(["cibadmin", "--empty"], stdout=handle, check=True, timeout=30)
    for i, name in enumerate(CONTROLLERS, 1):
        subprocess.run(["cibadmin", "--create", "-o", "nodes", "-X", f'<node id="{i}" uname="{name}"/>'],
                       env=env, check=True, timeout=30)
    subprocess.run(["cibadmin", "--create", "-o", "resources", "-X",
                    f'<clone id="{SERVICE}"><primitive id="haproxy" class="ocf" provider="pacemaker" type="Dummy">'
                    '<operations><op id="haproxy-monitor" name="monitor" interval="10s"/></operations>'
                    '</primitive></clone>'], env=env, check=True, timeout=30)
    # as in any Instance HA cluster, the control plane stays on the controllers
    subprocess.run(["cibadmin", "--create", "-o", "constraints", "-X",
                    f'<rsc_location id="l-{SERVICE}" rsc="{SERVICE}" resource-discovery="never">'
                    f'<rule id="l-{SERVICE}-rule" score="-INFINITY"><expression id="l-{SERVICE}-expr" '
                    'attribute="computeha-role" operation="ne" value="controller"/></rule></rsc_location>'],
                   env=env, check=True, timeout=30)


def verify(path: Path) -> str:
    """crm_verify must find no error; offline CIBs always warn (no quorum, unclean nodes): rc 78 allowed."""
    proc = subprocess.run(["crm_verify", "-V", "--xml-file", str(path)], capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if re.search(r"\berror\b", line, re.I)
              and "Errors found during check" not in line]
    assert proc.returncode in (0, 78) and not errors, proc.stderr
    return proc.stderr


def ours(root: ET.Element) -> dict:
    """The canonical form without the seed's control-plane stand-in."""
    form = canonical(root)
    form["resources"].pop("haproxy", None)
    form["constraints"] = {c for c in form["constraints"] if c[1] != SERVICE}
    return form


def configuration(path: Path, env: dict) -> ET.Element:
    out = subprocess.run(["cibadmin", "--query", "--scope", "configuration"], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return ET.fromstring(out)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("templates")
    site = parse_site(site_yaml(2, kdump=True))
    base = folder / "seed.xml"
    seed(base)
    return folder, site, base


def test_crm_verify_accepts_the_cib_rendering(small):
    folder, site, base = small
    merged = folder / "merged.xml"
    merged.write_text(render(site, "cib", base=base.read_text()))
    need("crm_verify")
    verify(merged)
    # our XML alone references the control plane it is ordered after: crm_verify must say so
    alone = folder / "alone.xml"
    alone.write_text(render(site, "cib"))
    proc = subprocess.run(["crm_verify", "--xml-file", str(alone)], capture_output=True, text=True, timeout=60)
    assert proc.returncode not in (0, 78) or SERVICE in proc.stderr
    # re-rendering into its own output changes nothing
    again = render_into(merged.read_text(), build(site))
    assert canonical(ET.fromstring(again)) == canonical(ET.fromstring(merged.read_text()))


def _apply_pcs(script: Path, cib: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CIB_file=str(cib), COMPUTEHA_PCS_FORCE="1")
    return subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=600)


def test_pcs_script_on_an_empty_cib_equals_the_xml_and_reapplying_changes_nothing(small):
    need("pcs", "cibadmin", "crm_verify")
    folder, site, base = small
    cib = folder / "pcs.xml"
    cib.write_bytes(base.read_bytes())
    script = folder / "site.pcs"
    script.write_text(render(site, "pcs"))
    first = _apply_pcs(script, cib)
    assert first.returncode == 0, first.stderr[-3000:]
    env = dict(os.environ, CIB_file=str(cib))
    after_first = configuration(cib, env)
    expected = ours(ET.fromstring(render(site, "cib")))
    assert differences(ours(after_first), expected) == []
    verify(cib)
    second = _apply_pcs(script, cib)
    assert second.returncode == 0, second.stderr[-3000:]
    assert ET.tostring(configuration(cib, env)) == ET.tostring(after_first)


def test_crmsh_file_in_a_shadow_cib_equals_the_xml_and_reloading_changes_nothing(small, tmp_path):
    need("crm", "crm_shadow", "cibadmin")
    folder, site, base = small
    crm_file = folder / "site.crm"
    crm_file.write_text(render(site, "crmsh"))
    shadow_dir = tmp_path / "shadow"
    shadow_dir.mkdir()
    # a shadow CIB seeded with the cluster's members and control plane, as `crm cib new` would copy them
    (shadow_dir / "shadow.rig").write_bytes(base.read_bytes())
    env = dict(os.environ, CIB_shadow_dir=str(shadow_dir), HOME=str(tmp_path))
    env.pop("CIB_file", None)

    def load() -> subprocess.CompletedProcess:
        return subprocess.run(["crm", "-F", "-c", "rig", "configure", "load", "update", str(crm_file)], env=env,
                              capture_output=True, text=True, timeout=300)

    first = load()
    assert first.returncode == 0, first.stderr[-3000:]
    query_env = dict(env, CIB_shadow="rig")
    after_first = configuration(shadow_dir / "shadow.rig", query_env)
    expected = ours(ET.fromstring(render(site, "cib")))
    assert differences(ours(after_first), expected) == []
    second = load()
    assert second.returncode == 0, second.stderr[-3000:]
    assert canonical(configuration(shadow_dir / "shadow.rig", query_env)) == canonical(after_first)


def _summary(output: str) -> list:
    lines = output.split("Transition Summary:", 1)[1].splitlines()
    found = []
    for line in lines[1:]:
        if not line.strip():
            if found:
                break
            continue
        if not line.startswith("  * "):
            break
        found.append(line.strip())
    return found


def _mark_unfenced(state: Path) -> None:
    """What pacemaker-attrd records after unfencing a node; crm_simulate runs no attrd, so without
    it every later transition would unfence (and restart) everything again."""
    tree = ET.parse(state)
    for node_state in tree.getroot().iterfind("status/node_state"):
        node_id = node_state.get("id")
        transient = node_state.find("transient_attributes")
        if transient is None:
            transient = ET.SubElement(node_state, "transient_attributes", id=node_id)
        attrs = transient.find("instance_attributes")
        if attrs is None:
            attrs = ET.SubElement(transient, "instance_attributes", id=f"status-{node_id}")
        ET.SubElement(attrs, "nvpair", id=f"status-{node_id}-node-unfenced", name="#node-unfenced",
                      value="1700000000")
    tree.write(state)


def test_crm_simulate_fences_a_failed_compute_and_moves_nothing_else(tmp_path):
    """3 controllers + 100 computes: bring-up, then the remote connection of compute-42 fails."""
    need("crm_simulate")
    site = parse_site(site_yaml(100, inline=False))
    base = tmp_path / "seed.xml"
    seed(base)
    cib = tmp_path / "big.xml"
    cib.write_text(render(site, "cib", base=base.read_text()))
    state = tmp_path / "state.xml"
    up = subprocess.run(["crm_simulate", "-x", str(cib), *[a for c in CONTROLLERS for a in ("-u", c)], "-q", "true",
                         "-S", "-O", str(state)], capture_output=True, text=True, timeout=900)
    assert up.returncode == 0, up.stderr[-2000:]
    revised = up.stdout.split("Revised Cluster Status", 1)[1]
    assert re.search(r"nova-evacuate\s+\(ocf:computeha:NovaEvacuate\):\s+Started ctl[123]\b", revised)
    started = re.search(r"Clone Set: nova-compute-clone \[nova-compute\]:\s*\n\s*\* Started: \[ ([^\]]*) \]", revised)
    assert started and sorted(started.group(1).split()) == sorted(c.name for c in site.computes)
    assert "RemoteOnline" in revised and "compute-100" in revised
    # the connection runs where its recurring monitor is
    root = ET.parse(state).getroot()
    hosts = [ns.get("uname") for ns in root.iterfind("status/node_state")
             if ns.find("lrm/lrm_resources/lrm_resource[@id='compute-42']/"
                        "lrm_rsc_op[@operation='monitor'][@interval='20000']") is not None]
    assert len(hosts) == 1 and hosts[0] in CONTROLLERS, hosts
    _mark_unfenced(state)
    fail = subprocess.run(["crm_simulate", "-x", str(state), "-i", f"compute-42_monitor_20000@{hosts[0]}=1", "-S"],
                          capture_output=True, text=True, timeout=300)
    assert fail.returncode == 0, fail.stderr[-2000:]
    summary = [" ".join(line.split()) for line in _summary(fail.stdout)]
    assert summary[0] == "* Fence (reboot) compute-42 'remote connection is unrecoverable'", summary
    strangers = [line for line in summary if not re.search(r"\bcompute-42\b", line)]
    assert strangers == [], f"resources not on compute-42 changed: {strangers}"
    assert len(summary) == 3, summary  # the fence, the connection's stop and its NovaCompute instance's stop


# --- with our agents installed: pcs and crmsh check every parameter against their metadata ------

TEST_PROVIDER = "computeha-tmpl-test"
TEST_IPMI = "fence_computeha_tmpl_ipmi"
TEST_COMPUTE = "fence_computeha_tmpl_compute"


@pytest.fixture(scope="module")
def agents_installed(tmp_path_factory):
    """The four agents where Pacemaker's tools look, under names of their own (root only; removed after)."""
    import shutil
    import sys

    from tests.contract.conftest import make_install
    from tests.tools import pkgtree

    if os.geteuid() != 0:
        pytest.skip("installing into /usr/lib/ocf and /usr/sbin needs root")
    root = tmp_path_factory.mktemp("templates-agents")
    os.chmod(root, 0o755)
    site = pkgtree.build(root / "site")
    variables = dict(PYTHON=sys.executable, OCF_ROOT="/usr/lib/ocf", SBINDIR="/usr/sbin", PROVIDER=TEST_PROVIDER,
                     OCF_AGENTS="NovaEvacuate=computeha.agents.nova_evacuate "
                                "NovaCompute=computeha.agents.nova_compute",
                     FENCE_AGENTS=f"{TEST_IPMI}=computeha.fence.fence_ipmi "
                                  f"{TEST_COMPUTE}=computeha.fence.fence_compute")
    proc = make_install("install", site, **variables)
    assert proc.returncode == 0, proc.stderr
    try:
        yield
    finally:
        make_install("uninstall", site, **variables)
        shutil.rmtree(root, ignore_errors=True)
        provider_dir = Path("/usr/lib/ocf/resource.d") / TEST_PROVIDER
        if provider_dir.is_dir() and not any(provider_dir.iterdir()):
            provider_dir.rmdir()  # `make uninstall` leaves the (empty) provider folder behind


def test_pcs_and_crmsh_accept_every_parameter_with_the_real_agents_installed(agents_installed, tmp_path):
    need("pcs", "crm", "cibadmin")
    data = yaml.safe_load(site_yaml(2))
    data["agents"] = {"provider": TEST_PROVIDER, "fence_ipmi": TEST_IPMI, "fence_compute": TEST_COMPUTE}
    site = parse_site(yaml.safe_dump(data))
    base = tmp_path / "seed.xml"
    seed(base)
    # pcs without --force: an unknown or missing required parameter is an error
    cib = tmp_path / "pcs.xml"
    cib.write_bytes(base.read_bytes())
    script = tmp_path / "site.pcs"
    script.write_text(render(site, "pcs"))
    env = dict(os.environ, CIB_file=str(cib))
    env.pop("COMPUTEHA_PCS_FORCE", None)
    proc = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "invalid" not in proc.stderr.lower(), proc.stderr[-3000:]
    assert differences(ours(configuration(cib, env)), ours(ET.fromstring(render(site, "cib")))) == []
    # crmsh without -F: unknown parameters are errors
    shadow_dir = tmp_path / "shadow"
    shadow_dir.mkdir()
    (shadow_dir / "shadow.agents").write_bytes(base.read_bytes())
    crm_file = tmp_path / "site.crm"
    crm_file.write_text(render(site, "crmsh"))
    crm_env = dict(os.environ, CIB_shadow_dir=str(shadow_dir), HOME=str(tmp_path))
    crm_env.pop("CIB_file", None)
    loaded = subprocess.run(["crm", "-c", "agents", "configure", "load", "update", str(crm_file)], env=crm_env,
                            capture_output=True, text=True, timeout=600)
    assert loaded.returncode == 0 and "ERROR" not in loaded.stderr, loaded.stderr[-3000:]


def _their_options(binary: str) -> dict:
    """Every option of a distribution fence agent with a value of its metadata type (not `action`, which pcs
    itself refuses for any agent)."""
    path = next((p for p in (Path("/usr/sbin") / binary, Path("/sbin") / binary) if p.exists()), None)
    if path is None:
        need(binary)
    meta = ET.fromstring(subprocess.run([str(path), "-o", "metadata"], capture_output=True, text=True,
                                        timeout=60, check=True).stdout)
    values = {"boolean": "1", "integer": "1", "second": "1", "select": None}
    out = {}
    for param in meta.iter("parameter"):
        name, content = param.get("name"), param.find("content")
        kind = content.get("type") if content is not None else "string"
        if name == "action":
            continue
        value = values.get(kind, "x")
        if value is None:  # a select: its first option
            option = content.find("option")
            value = option.get("value") if option is not None else "x"
        out[name] = value
    return out


@pytest.mark.parametrize("theirs,ours", [("fence_compute", TEST_COMPUTE), ("fence_ipmilan", TEST_IPMI)])
def test_pcs_takes_every_option_of_the_distributions_agent_for_ours(agents_installed, tmp_path, theirs, ours):
    """An existing device switches type only: `pcs stonith create` without --force accepts each option that
    Debian's agent of the same role accepts."""
    need("pcs", "cibadmin")
    cib = tmp_path / "cib.xml"
    seed(cib)
    env = dict(os.environ, CIB_file=str(cib))
    options = _their_options(theirs)

    def create(agent: str, device: str) -> subprocess.CompletedProcess:
        argv = ["pcs", "-f", str(cib), "stonith", "create", device, agent]
        return subprocess.run(argv + [f"{k}={v}" for k, v in sorted(options.items())], env=env,
                              capture_output=True, text=True, timeout=300)
    # what pcs refuses for the distribution's agent itself (e.g. help, version) is no option of a device
    baseline = create(theirs, "baseline")
    refused = re.search(r"invalid stonith options: (.*?), allowed options", baseline.stderr)
    for name in re.findall(r"'([^']+)'", refused.group(1)) if refused else []:
        options.pop(name, None)
    assert create(theirs, "baseline-again").returncode == 0
    proc = create(ours, f"dropin-{theirs}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "invalid" not in proc.stderr.lower(), proc.stderr[-3000:]
