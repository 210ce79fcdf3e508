"""The real cluster rig: Pacemaker fences a lost compute through its ipmi_sim BMC.

Waits are generous (a loaded 2-core CI box); they bound the test, they do not measure it.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.rig.cluster.cluster import Cluster, wait_for
from tests.rig.cluster.config import Service

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

FENCE_TIMEOUT = 180.0
REJOIN_TIMEOUT = 240.0


def _restore(rig: Cluster, node: str) -> None:
    """Best effort: put the node back on the network and powered, whatever the test did."""
    rig.heal(node)
    if "off" in rig.power_status(node):
        rig.power_on(node)


def _assert_fenced_via_ipmi(rig: Cluster, node: str, already: int) -> None:
    event = rig.wait_fenced(node, timeout=FENCE_TIMEOUT, already=already)
    assert event.action == "off"
    assert event.delegate in {n.name for n in rig.layout.controllers}
    device = f"fence-{node}"
    assert rig.resource_agent(device) == f"stonith:{rig.fence_agent}"
    assert any(f"using {device} returned 0" in line for line in rig.fence_log(event)), \
        rig.fence_log(event)


def test_power_loss_kills_node_and_its_services_then_is_fenced_and_rejoins(
        converged_cluster: Cluster) -> None:
    rig = converged_cluster
    node = rig.layout.computes[0].name
    node_run = rig.layout.node_dir(rig.node(node)) / "run"
    mark = secrets.token_hex(4)
    svc = Service("boot-probe", ["/bin/sh", "-c", 'echo "$MARK" > /run/boot-probe; exec sleep 3600'],
                  env={"MARK": mark})
    rig.add_service(node, svc)
    try:
        wait_for("boot service running", lambda: (node_run / "boot-probe").exists(), 30)
        assert "compute-dummy" in rig.resources_on(node)
        old_pids = set(rig.node_pids(node))
        already = len(rig.successful_fences(node))

        rig.power_off(node)
        assert rig.node_pids(node) == [], "power loss must kill every process of the node"
        assert not (node_run / "boot-probe").exists(), "volatile /run survives power loss"

        _assert_fenced_via_ipmi(rig, node, already)
        status = rig.wait_node(node, online=False, timeout=60)
        assert status.type == "remote"
        assert "off" in rig.power_status(node)  # fence action "off": the node stays down
        assert "compute-dummy" not in rig.resources_on(node)

        rig.power_on(node)
        rig.wait_node(node, online=True, timeout=REJOIN_TIMEOUT)
        wait_for("Dummy back on the node", lambda: "compute-dummy" in rig.resources_on(node),
                 REJOIN_TIMEOUT)
        assert (node_run / "boot-probe").read_text().strip() == mark  # boot hook ran again
        assert old_pids.isdisjoint(rig.node_pids(node))
    finally:
        rig.remove_service(node, svc.name)
        _restore(rig, node)


def test_network_partition_is_fenced_and_node_rejoins_when_healed(
        converged_cluster: Cluster) -> None:
    rig = converged_cluster
    node = rig.layout.computes[-1].name
    already = len(rig.successful_fences(node))
    try:
        rig.partition(node)
        assert rig.node_pids(node), "a partitioned node keeps running"

        _assert_fenced_via_ipmi(rig, node, already)
        assert rig.node_pids(node) == [], "fencing through the BMC must kill the node"
        assert "off" in rig.power_status(node)
        rig.wait_node(node, online=False, timeout=60)

        rig.heal(node)
        rig.power_on(node)
        rig.wait_node(node, online=True, timeout=REJOIN_TIMEOUT)
        wait_for("Dummy back on the node", lambda: "compute-dummy" in rig.resources_on(node),
                 REJOIN_TIMEOUT)
    finally:
        _restore(rig, node)


def test_working_tree_agents_are_visible_inside_nodes_only(converged_cluster: Cluster) -> None:
    rig = converged_cluster
    compute, controller = rig.layout.computes[0].name, rig.controller()
    ocf = rig.layout.agents_dir / "ocf" / "computeha"
    staged_ocf = sorted(p.name for p in ocf.iterdir())
    staged_fence = sorted(p.name for p in (rig.layout.agents_dir / "sbin").glob("fence_*"))
    probe = ocf / "RigVisibilityProbe"
    probe.write_text("#!/bin/sh\nexit 0\n")
    probe.chmod(0o755)
    try:
        inside = rig.x(compute, ["ls", "/usr/lib/ocf/resource.d/computeha"]).stdout.split()
        assert set(staged_ocf) | {"RigVisibilityProbe"} <= set(inside)
        listed = rig.x(controller, ["crm_resource", "--list-agents", "ocf:computeha"]).stdout
        assert "RigVisibilityProbe" in listed.split()
        assert not Path("/usr/lib/ocf/resource.d/computeha/RigVisibilityProbe").exists(), \
            "the host's /usr must stay untouched"
    finally:
        probe.unlink()
    # the project's fence agents, as pacemaker-fenced sees them from the working tree
    installed = rig.x(controller, ["stonith_admin", "--list-installed"]).stdout.split()
    for agent in staged_fence:
        assert agent in installed
        meta = rig.x(controller, ["stonith_admin", "--metadata", "--agent", agent]).stdout
        assert f'name="{agent}"' in meta


def test_bmc_password_stays_out_of_the_cib_and_the_logs(converged_cluster: Cluster) -> None:
    rig = converged_cluster
    password = rig.layout.bmc_password_file.read_text().strip()
    assert len(password) >= 8
    cib = rig.x(rig.controller(), ["cibadmin", "--query"]).stdout
    assert "password_script" in cib and rig.fence_agent in cib
    assert password not in cib
    leaks = []
    for n in rig.layout.nodes:
        d = rig.layout.node_dir(n)
        for p in [*(d / "log").rglob("*"), *(d / "var-log-pacemaker").rglob("*")]:
            if p.is_file() and password in p.read_text(errors="replace"):
                leaks.append(str(p))
    assert leaks == []


def test_project_fence_ipmi_fences_a_compute_as_first_topology_level(
        converged_cluster: Cluster) -> None:
    """The working tree's fence_ipmi, staged into the nodes, fences through the real BMC."""
    rig = converged_cluster
    if not (rig.layout.agents_dir / "sbin" / "fence_ipmi").exists():
        pytest.skip("the project's fence_ipmi is not staged (see .rig/cluster/agents/stage.log)")
    node = rig.layout.computes[-1].name
    n = rig.node(node)
    ours, ipmilan = f"ours-{node}", f"fence-{node}"
    ctl = rig.controller()
    # pcs validates the parameters against the agent's metadata, as an operator's pcs would
    rig.x(ctl, ["pcs", "stonith", "create", ours, "fence_ipmi", f"ip={n.bmc_ip}", "ipport=623",
                "username=admin", f"password_script={rig.layout.bmc_password_script}",
                "lanplus=1", "cipher=3", f"pcmk_host_list={node}", "op", "monitor",
                "interval=60s"], timeout=120)
    try:
        rig.x(ctl, ["pcs", "stonith", "level", "add", "1", node, ours], timeout=120)
        rig.x(ctl, ["pcs", "stonith", "level", "add", "2", node, ipmilan], timeout=120)
        wait_for(f"{ours} started", lambda: any(
            ours in rig.resources_on(c.name) for c in rig.layout.controllers), 120)
        already = len(rig.successful_fences(node))

        rig.power_off(node)
        event = rig.wait_fenced(node, timeout=FENCE_TIMEOUT, already=already)
        assert any(f"using {ours} returned 0" in line for line in rig.fence_log(event)), \
            rig.fence_log(event)
        assert rig.node_pids(node) == []

        rig.power_on(node)
        rig.wait_node(node, online=True, timeout=REJOIN_TIMEOUT)
    finally:
        # cibadmin, not pcs: "pcs stonith delete" waits for the device to stop
        rig.x(ctl, ["cibadmin", "--delete-all", "--xpath",
                    f"//fencing-level[@target='{node}']"], check=False)
        rig.x(ctl, ["cibadmin", "--delete-all", "--xpath", f"//primitive[@id='{ours}']"],
              check=False)
        _restore(rig, node)


def _nova_compute_state(os_rig, host: str, since: "datetime | None" = None):
    """The service state; "up" only counts with a heartbeat newer than ``since``: a fresh
    nova-compute errors out builds scheduled to it before its init_host has finished."""
    for svc in os_rig.nova().services.list(binary="nova-compute"):
        if svc.host == host:
            if since is not None and svc.state == "up":
                if not svc.updated_at:  # registered, no heartbeat written yet
                    return "stale"
                beat = datetime.fromisoformat(svc.updated_at.split(".")[0])
                return "up" if beat > since else "stale"
            return svc.state
    return None


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def test_nova_compute_inside_its_node_dies_with_power_loss_and_returns_on_boot(
        converged_cluster: Cluster, openstack_rig) -> None:
    rig, os_rig = converged_cluster, openstack_rig
    host = rig.layout.computes[0].name
    assert host in os_rig.compute_hosts
    attached = _utcnow()
    assert rig.attach_openstack(os_rig, hosts=[host]) == [host]
    servers = []
    try:
        wait_for(f"nova-compute of {host} up",
                 lambda: _nova_compute_state(os_rig, host, since=attached) == "up", 180, interval=2)
        assert rig.service_pid(host, "nova-compute") in rig.node_pids(host)
        servers = os_rig.boot_servers(1, hosts=[host], name_prefix="cluster-rig")
        assert any(host in hosts for hosts in os_rig.running_guests().values())
        already = len(rig.successful_fences(host))

        rig.power_off(host)
        assert rig.node_pids(host) == [] and rig.service_pid(host, "nova-compute") is None
        assert os_rig.power_state(host) == "off"
        assert not any(host in hosts for hosts in os_rig.running_guests().values())
        _assert_fenced_via_ipmi(rig, host, already)
        wait_for("Nova sees the host down", lambda: _nova_compute_state(os_rig, host) == "down",
                 180, interval=2)

        booted = _utcnow()
        rig.power_on(host)
        rig.wait_node(host, online=True, timeout=REJOIN_TIMEOUT)
        assert os_rig.power_state(host) == "on"
        wait_for(f"nova-compute of {host} back up",
                 lambda: _nova_compute_state(os_rig, host, since=booted) == "up", 240, interval=2)
        assert rig.service_pid(host, "nova-compute") in rig.node_pids(host)
    finally:
        for server in servers:
            server.delete()
        _restore(rig, host)
        rig.wait_node(host, online=True, timeout=REJOIN_TIMEOUT)
        rig.detach_openstack(os_rig, [host])
