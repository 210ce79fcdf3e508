"""Running the OpenStack rig's nova-compute of a host inside the cluster rig's node.

The OpenStack rig (``tests.rig.openstack.cloud.OpenStackRig``) runs its control plane in the
root namespace on 127.0.0.1; these helpers forward those ports into the nodes, turn each
host's nova-compute into a boot service of the node of the same name, and tie the fake
hypervisor's power records to the node's BMC.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from tests.rig.cluster.config import REPO, Layout, Service
from tests.rig.cluster.util import RigError, run

if TYPE_CHECKING:
    from tests.rig.cluster.cluster import Cluster


def nat_table(layout: Layout) -> str:
    return f"{layout.prefix}_rig"


def forward_host_ports(rig: "Cluster", ports: Sequence[int]) -> None:
    """Make root-namespace services bound to 127.0.0.1 reachable from every node at the
    same 127.0.0.1 URLs (a loopback-only control plane and its catalog keep working).

    In each node, connections to 127.0.0.1:<port> are DNATed to the bridge address and
    masqueraded; on the host, connections arriving from the bridge at
    <host_ip>:<port> are DNATed to 127.0.0.1 (``route_localnet`` on the bridge only).
    nftables tables named ``<prefix>_rig``; down() removes the host one.
    """
    lay, table = rig.layout, nat_table(rig.layout)
    plist = ", ".join(str(int(p)) for p in sorted(set(ports)))
    host_rules = (
        f"table ip {table} {{\n"
        f"  chain pre {{ type nat hook prerouting priority dstnat; iifname \"{lay.bridge}\" "
        f"ip daddr {lay.host_ip} tcp dport {{ {plist} }} dnat to 127.0.0.1; }}\n}}\n")
    node_rules = (
        f"table ip {table} {{\n"
        f"  chain out {{ type nat hook output priority -100; ip daddr 127.0.0.1 "
        f"tcp dport {{ {plist} }} dnat to {lay.host_ip}; }}\n"
        f"  chain post {{ type nat hook postrouting priority srcnat; oifname \"eth0\" "
        f"ip saddr 127.0.0.1 masquerade; }}\n}}\n")
    Path(f"/proc/sys/net/ipv4/conf/{lay.bridge}/route_localnet").write_text("1\n")
    run(["nft", "delete", "table", "ip", table], check=False)
    run(["nft", "-f", "-"], input=host_rules)
    for n in lay.nodes:
        ns = lay.netns(n)
        run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
             "net.ipv4.conf.eth0.route_localnet=1"])
        run(["ip", "netns", "exec", ns, "nft", "delete", "table", "ip", table], check=False)
        run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=node_rules)


def attach_openstack(rig: "Cluster", os_rig: Any,
                     hosts: Optional[Sequence[str]] = None) -> List[str]:
    """Move the nova-compute of each compute host into the node of the same name.

    ``os_rig`` is a ``tests.rig.openstack.cloud.OpenStackRig``, listening on 127.0.0.1
    (its ports are then forwarded into the nodes, see forward_host_ports) or on the
    bridge address. Afterwards BMC power-off kills that nova-compute and tells the fake
    hypervisor its guests are gone; power-on marks the host powered again and boots
    nova-compute inside the node. Returns the hosts moved.
    """
    bind = os_rig.settings.bind
    if bind == "127.0.0.1":
        forward_host_ports(rig, list(os_rig.settings.ports.values()))
    elif bind != rig.layout.host_ip:
        raise RigError(f"the OpenStack rig listens on {bind}: nodes reach 127.0.0.1 "
                       f"(forwarded) or the bridge address {rig.layout.host_ip} only")
    mine = {n.name for n in rig.layout.computes}
    env = {"PYTHONPATH": str(REPO), "COMPUTEHA_RIG_DIR": str(os_rig.paths.root)}
    py = rig.layout.python
    moved = []
    for host in os_rig.compute_hosts:
        if host not in mine or (hosts is not None and host not in hosts):
            continue
        os_rig.kill_compute(host)  # its root-namespace instance, if any
        cmd = os_rig.compute_command(host)
        rig.add_power_hook(host, "off", Service(
            "openstack-power-off", [py, "-m", "tests.rig.openstack.cli", "power-off", host],
            env=env, cwd=str(REPO)))
        rig.add_power_hook(host, "on", Service(
            "openstack-power-on",
            [py, "-c", "import sys; from tests.rig.openstack.cloud import OpenStackRig; "
             "OpenStackRig().power_on(sys.argv[1], start_compute=False)", host],
            env=env, cwd=str(REPO)))
        rig.add_service(host, Service("nova-compute", list(cmd.argv), dict(cmd.env)))
        moved.append(host)
    return moved


def detach_openstack(rig: "Cluster", os_rig: Any, hosts: Sequence[str]) -> None:
    """Undo attach_openstack for ``hosts``: their nova-compute runs in the root
    namespace again (started by the OpenStack rig), no longer inside the node."""
    for host in hosts:
        rig.remove_service(host, "nova-compute")
        n = rig.node(host)
        n.power_off_hooks = [h for h in n.power_off_hooks if h.name != "openstack-power-off"]
        n.power_on_hooks = [h for h in n.power_on_hooks if h.name != "openstack-power-on"]
        rig.layout.save()
        rig.stop_service(host, "nova-compute")
        if os_rig.power_state(host) != "on":
            os_rig.power_on(host, start_compute=False)
        os_rig.start_compute(host)
