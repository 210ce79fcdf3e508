"""What Pacemaker does with NovaCompute's monitor results: the real scheduler, through crm_simulate.

A crashed nova-compute makes NovaCompute's recurring monitor return 7 (proved
on the real rig in test_nova_compute_rig.py). Here the Pacemaker scheduler
shows the consequence on a cluster of two controllers and one
pacemaker-remote compute: recovery in place (stop, start, on the same node),
no fencing, so fence_compute never runs and nothing requests an evacuation.
The contrast case shows why NovaCompute's stop must not fail: a failed stop
(with on-fail=fence, the usual compute setting) fences the host.
"""
from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, Tuple

import pytest

from tests.contract.conftest import need

pytestmark = pytest.mark.tools

ENV = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin", "LC_ALL": "C"}
COMPUTE = "compute-0"


def _sub(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})


def cluster_cib() -> str:
    """Two controllers, one remote compute with its fence device and a NovaCompute clone."""
    cib = ET.Element("cib", {"validate-with": "pacemaker-3.0", "epoch": "1", "num_updates": "0", "admin_epoch": "0",
                             "have-quorum": "1", "dc-uuid": "1"})
    conf = _sub(cib, "configuration")
    props = _sub(_sub(conf, "crm_config"), "cluster_property_set", id="opts")
    _sub(props, "nvpair", id="opts-stonith", name="stonith-enabled", value="true")
    nodes = _sub(conf, "nodes")
    for nodeid, name in (("1", "controller-0"), ("2", "controller-1")):
        _sub(nodes, "node", id=nodeid, uname=name)
    rscs = _sub(conf, "resources")
    _sub(rscs, "primitive", id=f"fence-{COMPUTE}", class_="stonith", type="fence_ipmi")
    remote = _sub(rscs, "primitive", id=COMPUTE, class_="ocf", provider="pacemaker", type="remote")
    _sub(_sub(remote, "operations"), "op", id=f"{COMPUTE}-monitor", name="monitor", interval="30s")
    clone = _sub(rscs, "clone", id="nova-compute-clone")
    nc = _sub(clone, "primitive", id="nova-compute", class_="ocf", provider="computeha", type="NovaCompute")
    ops = _sub(nc, "operations")
    _sub(ops, "op", id="nc-start", name="start", interval="0s", timeout="600s")
    _sub(ops, "op", id="nc-stop", name="stop", interval="0s", timeout="120s", **{"on-fail": "fence"})
    _sub(ops, "op", id="nc-monitor", name="monitor", interval="10s", timeout="30s")
    cons = _sub(conf, "constraints")
    for name in ("controller-0", "controller-1"):
        _sub(cons, "rsc_location", id=f"nc-not-{name}", rsc="nova-compute-clone", score="-INFINITY", node=name)
    _sub(cons, "rsc_location", id="fence-not-on-compute", rsc=f"fence-{COMPUTE}", score="-INFINITY", node=COMPUTE)
    status = _sub(cib, "status")
    for nodeid, name in (("1", "controller-0"), ("2", "controller-1")):
        _sub(status, "node_state", id=nodeid, uname=name, in_ccm="true", crmd="online", join="member",
             expected="member")
    return ET.tostring(cib, encoding="unicode")


def simulate(xml_file: Path, *args: str) -> ET.Element:
    proc = subprocess.run(["crm_simulate", "-x", str(xml_file), "-S", "--output-as=xml", *args],
                          capture_output=True, text=True, timeout=60, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return ET.fromstring(proc.stdout)


def transition(result: ET.Element) -> Tuple[List[Tuple[str, str, str]], List[str]]:
    """(resource actions as (resource, op, node), fenced nodes) of the simulated transition."""
    trans = result.find("transition")
    assert trans is not None
    actions = [(a.get("resource", ""), a.get("op", ""), a.get("node", "")) for a in trans.iter("rsc_action")]
    fenced = [f.get("target", "") for f in trans.iter("fencing_action")]
    return actions, fenced


@pytest.fixture(scope="module")
def running_cluster(tmp_path_factory) -> Path:
    """The cluster after a simulated start-up: NovaCompute runs on compute-0."""
    need("crm_simulate")
    folder = tmp_path_factory.mktemp("ncsim")
    (folder / "base.xml").write_text(cluster_cib())
    out = folder / "running.xml"
    proc = subprocess.run(["crm_simulate", "-x", str(folder / "base.xml"), "-S", "-O", str(out)],
                          capture_output=True, text=True, timeout=60, env=ENV)
    assert proc.returncode == 0 and out.exists(), proc.stderr
    actions, fenced = transition(simulate(out))  # nothing left to do: converged
    assert actions == [] and fenced == []
    return out


@pytest.mark.parametrize("rc", [7, 1])
def test_failed_monitor_is_recovered_in_place_without_fencing(running_cluster: Path, rc: int) -> None:
    result = simulate(running_cluster, "-i", f"nova-compute_monitor_10000@{COMPUTE}={rc}")
    actions, fenced = transition(result)
    assert fenced == [], "a nova-compute failure must never fence (and so never evacuate) the host"
    assert ("nova-compute", "stop", COMPUTE) in actions
    assert ("nova-compute", "start", COMPUTE) in actions
    assert {node for _rsc, _op, node in actions} == {COMPUTE}, actions


def test_a_failed_stop_would_fence_the_host(running_cluster: Path) -> None:
    """Why stop must succeed whenever nova-compute is gone: the check above can fail."""
    after = running_cluster.parent / "stop-failed.xml"
    first = simulate(running_cluster, "-i", f"nova-compute_monitor_10000@{COMPUTE}=7",
                     "-F", f"nova-compute_stop_0@{COMPUTE}=1", "-O", str(after))
    assert ("nova-compute", "stop", COMPUTE) in transition(first)[0]
    _actions, fenced = transition(simulate(after))  # the scheduler's answer to the failed stop
    assert fenced == [COMPUTE]
