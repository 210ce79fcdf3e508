"""Layout of the cluster rig: nodes, addresses, paths, and the config files they need.

Everything here is pure (no processes): the layout is computed from a few knobs, saved as
``rig.json`` under the rig directory, and read back by the BMC power hook (``node.py``),
which runs as a separate process started by ipmi_sim.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[3]
DEFAULT_RIG_DIR = REPO / ".rig" / "cluster"

CONTROLLER = "controller"
COMPUTE = "compute"

BMC_USER = "admin"
IPMI_PORT = 623


@dataclass
class Service:
    """A process a node starts when it boots (e.g. the nova-compute of that host).

    It runs inside the node's network and mount namespaces, so a BMC power-off kills it.
    """

    name: str
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    cwd: Optional[str] = None


@dataclass
class Node:
    name: str
    role: str  # CONTROLLER or COMPUTE
    index: int  # position in the rig: selects addresses and interface names
    ip: str
    bmc_ip: str
    services: List[Service] = field(default_factory=list)
    nodeid: int = 0  # corosync node id, controllers only
    # commands run (outside the node, to completion) when its BMC cuts or restores power,
    # e.g. telling the OpenStack rig's fake hypervisor that the host's guests are gone
    power_off_hooks: List[Service] = field(default_factory=list)
    power_on_hooks: List[Service] = field(default_factory=list)

    @property
    def is_controller(self) -> bool:
        return self.role == CONTROLLER


@dataclass
class Layout:
    rig_dir: str
    prefix: str  # netns and interface name prefix: keep it short (interface names <= 15 chars)
    subnet: str  # first three octets of a /24
    python: str  # interpreter for the BMC power hook and the agent wrappers
    nodes: List[Node]
    cluster_name: str = "computeha"
    token_ms: int = 3000  # generous: a loaded 2-core CI box must not lose membership spuriously

    # --- names and addresses -------------------------------------------------------------
    @property
    def bridge(self) -> str:
        return f"{self.prefix}br0"

    @property
    def host_ip(self) -> str:
        """Bridge address in the root namespace: where nodes reach the control plane."""
        return f"{self.subnet}.1"

    @property
    def bmc_netns(self) -> str:
        return f"{self.prefix}-bmc"

    @property
    def bmc_veth(self) -> str:
        return f"{self.prefix}vbmc"

    def netns(self, node: Node) -> str:
        return f"{self.prefix}-{node.name}"

    def veth(self, node: Node) -> str:
        """Host (bridge) side of the node's cable: its switch port."""
        return f"{self.prefix}v{node.index}"

    # --- paths ---------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(self.rig_dir)

    def node_dir(self, node: Node) -> Path:
        return self.root / "nodes" / node.name

    @property
    def remoted(self) -> Path:
        return self.root / "remote-root" / "usr" / "sbin" / "pacemaker-remoted"

    @property
    def agent_python(self) -> str:
        """Interpreter of the staged agents: it must be usable by user hacluster (Pacemaker
        runs metadata actions as hacluster), so install.sh builds a venv on the system
        python3; a development venv under /root would not do."""
        venv = self.root / "agents-venv" / "bin" / "python"
        return str(venv) if venv.exists() else self.python

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def bmc_password_file(self) -> Path:
        return self.secrets_dir / "bmc-password"

    @property
    def bmc_password_script(self) -> Path:
        """fence_ipmilan's password_script: keeps the password out of the CIB and argv."""
        return self.secrets_dir / "bmc-password.sh"

    @property
    def agents_dir(self) -> Path:
        return self.root / "agents"

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in the cluster rig")

    @property
    def controllers(self) -> List[Node]:
        return [n for n in self.nodes if n.is_controller]

    @property
    def computes(self) -> List[Node]:
        return [n for n in self.nodes if not n.is_controller]

    # --- persistence ---------------------------------------------------------------------
    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "rig.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, self.root / "rig.json")

    @classmethod
    def load(cls, rig_dir: "os.PathLike[str] | str") -> "Layout":
        data = json.loads((Path(rig_dir) / "rig.json").read_text())
        nodes = []
        for nd in data.pop("nodes"):
            lists = {k: [Service(**s) for s in nd.pop(k, [])]
                     for k in ("services", "power_off_hooks", "power_on_hooks")}
            nodes.append(Node(**lists, **nd))
        return cls(nodes=nodes, **data)


def default_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def make_layout(
    controllers: int = 3,
    computes: int = 2,
    rig_dir: "os.PathLike[str] | str | None" = None,
    prefix: Optional[str] = None,
    subnet: Optional[str] = None,
) -> Layout:
    """Addresses: .1 host bridge, .11+ controllers, .21+ computes, .100+index their BMCs."""
    if not 1 <= controllers <= 9 or not 0 <= computes <= 9:
        raise ValueError("the rig supports 1-9 controllers and 0-9 computes")
    prefix = prefix or os.environ.get("CHA_CLUSTER_PREFIX", "chac")
    subnet = subnet or os.environ.get("CHA_CLUSTER_SUBNET", "10.213.7")
    if len(prefix) > 7:
        raise ValueError("prefix must be at most 7 characters (interface names)")
    nodes: List[Node] = []
    for i in range(controllers):
        idx = len(nodes)
        nodes.append(Node(f"controller-{i}", CONTROLLER, idx, f"{subnet}.{11 + i}",
                          f"{subnet}.{100 + idx}", nodeid=i + 1))
    for i in range(computes):
        idx = len(nodes)
        nodes.append(Node(f"compute-{i}", COMPUTE, idx, f"{subnet}.{21 + i}",
                          f"{subnet}.{100 + idx}"))
    rig = Path(rig_dir or os.environ.get("CHA_CLUSTER_RIG_DIR", DEFAULT_RIG_DIR)).resolve()
    return Layout(rig_dir=str(rig), prefix=prefix, subnet=subnet, python=default_python(),
                  nodes=nodes)


# --- config file renderers ----------------------------------------------------------------
def corosync_conf(layout: Layout) -> str:
    nodes = "".join(
        f"    node {{\n        ring0_addr: {n.ip}\n        name: {n.name}\n"
        f"        nodeid: {n.nodeid}\n    }}\n"
        for n in layout.controllers
    )
    two_node = "    two_node: 1\n" if len(layout.controllers) == 2 else ""
    return (
        "totem {\n    version: 2\n"
        f"    cluster_name: {layout.cluster_name}\n"
        "    transport: knet\n    crypto_cipher: aes256\n    crypto_hash: sha256\n"
        f"    token: {layout.token_ms}\n}}\n"
        f"nodelist {{\n{nodes}}}\n"
        f"quorum {{\n    provider: corosync_votequorum\n{two_node}}}\n"
        "logging {\n    to_stderr: no\n    to_syslog: no\n    to_logfile: yes\n"
        "    logfile: /var/log/pacemaker/corosync.log\n    timestamp: on\n}\n"
    )


def ipmi_lan_conf(layout: Layout, node: Node, chassis_program: Path, password: str) -> str:
    """ipmi_sim LAN config: a lanplus-capable BMC whose chassis power runs our hook.

    ``chassis_control`` is what makes power on/off real; ``startcmd`` alone rejects them.
    """
    guid = f"{node.index + 1:032x}"
    auths = "none md2 md5 straight"
    return (
        f'name "bmc-{node.name}"\n'
        "set_working_mc 0x20\n"
        "  startlan 1\n"
        f"    addr {node.bmc_ip} {IPMI_PORT}\n"
        "    priv_limit admin\n"
        f"    allowed_auths_callback {auths}\n"
        f"    allowed_auths_user {auths}\n"
        f"    allowed_auths_operator {auths}\n"
        f"    allowed_auths_admin {auths}\n"
        f"    guid {guid}\n"
        "  endlan\n"
        f'  chassis_control "{chassis_program}"\n'
        f'  user 2 true "{BMC_USER}" "{password}" admin 10 {auths}\n'
    )


IPMI_EMU = (
    "mc_setbmc 0x20\n"
    "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n"
    "sel_enable 0x20 1000 0x0a\n"
    "mc_enable 0x20\n"
)

# Cluster options seeded into every controller's cib.xml before the first start:
# dc-deadtime 2s avoids the default 20 s wait for a DC on every cold start.
SEED_OPTIONS = {
    "dc-deadtime": "2s",
    "stonith-enabled": "false",
    "stonith-timeout": "60s",
    "cluster-recheck-interval": "1min",
}
