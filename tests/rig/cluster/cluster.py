"""The cluster rig: real corosync + Pacemaker controllers and pacemaker-remote computes in
network + mount namespaces, one ipmi_sim BMC per node, all under ``.rig/cluster/``.

Topology (default subnet 10.213.7.0/24, prefix "chac")::

    root ns: bridge chacbr0 10.213.7.1  <- control plane (Keystone, Nova...) reachable here
      |-- chacv<i> == eth0 in netns chac-<node>   controllers .11+, computes .21+
      `-- chacvbmc == eth0 in netns chac-bmc      one ipmi_sim per node on .100+<i>:623

Usage::

    rig = Cluster()            # layout from make_layout(); knobs via env CHA_CLUSTER_*
    rig.up()                   # idempotent; prints where the logs are
    rig.power_off("compute-0") # IPMI chassis power off: every process of the node dies
    rig.wait_fenced("compute-0", timeout=120)
    rig.down()

Command line: ``python -m tests.rig.cluster.cluster up|down|status``.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from tests.rig.cluster import agents as agents_mod
from tests.rig.cluster import cib, openstack_link
from tests.rig.cluster import node as nodeops
from tests.rig.cluster.config import (
    BMC_USER,
    IPMI_EMU,
    IPMI_PORT,
    REPO,
    SEED_OPTIONS,
    Layout,
    Node,
    Service,
    corosync_conf,
    ipmi_lan_conf,
    make_layout,
)
from tests.rig.cluster.util import RigError, wait_for
from tests.rig.cluster.util import run as _run

__all__ = ["Cluster", "FenceEvent", "NodeStatus", "RigError", "wait_for"]

@dataclass(frozen=True)
class FenceEvent:
    target: str
    action: str
    status: str
    delegate: str
    completed: str


@dataclass(frozen=True)
class NodeStatus:
    name: str
    type: str  # "member" or "remote"
    # crm_mon's "online" AND the CIB node_state's in_ccm: while a remote connection with
    # reconnect_interval retries a dead node, crm_mon alone reports it online
    online: bool
    unclean: bool
    expected_up: bool
    crm_mon_online: bool


class Cluster:
    def __init__(self, layout: Optional[Layout] = None, fence_action: str = "off",
                 fence_agent: Optional[str] = None) -> None:
        self.layout = layout or make_layout(
            controllers=int(os.environ.get("CHA_CLUSTER_CONTROLLERS", "3")),
            computes=int(os.environ.get("CHA_CLUSTER_COMPUTES", "2")),
        )
        # "off": a fenced node stays down until powered on, so tests can see it OFFLINE
        self.fence_action = fence_action
        # the project's own fence_ipmi by default; "fence_ipmilan" (fence-agents) hands the password to its
        # ipmitool child on the command line (-P), which the suite's secret scan rightly flags
        # (staged into the nodes), which takes the same parameters
        self.fence_agent = fence_agent or os.environ.get("CHA_CLUSTER_FENCE_AGENT", "fence_ipmi")
        self.timings: Dict[str, float] = {}

    # ------------------------------------------------------------------ small helpers
    @property
    def root(self) -> Path:
        return self.layout.root

    def node(self, name: str) -> Node:
        return self.layout.node(name)

    def x(self, node: str, argv: Sequence[str], *, timeout: float = 60.0, check: bool = True,
          input: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
        """Run a command inside a node's namespaces (e.g. crm_mon on a controller)."""
        n = self.node(node)
        env = dict(nodeops.BASE_ENV, PYTHONWARNINGS="ignore")
        return _run(nodeops.nsenter(self.layout, n) + list(argv), timeout=timeout, check=check,
                    env=env, input=input)

    def controller(self) -> str:
        """A powered-on controller to run cluster tools on."""
        for n in self.layout.controllers:
            if nodeops.power_state(self.layout, n):
                return n.name
        raise RigError("no controller is powered on")

    def _bmc_password(self) -> str:
        return self.layout.bmc_password_file.read_text().strip()

    def ipmitool(self, node: str, *args: str, timeout: float = 30.0
                 ) -> "subprocess.CompletedProcess[str]":
        """ipmitool against a node's BMC; the password is read from its file (-f), never argv or environment."""
        n = self.node(node)
        return _run(["ipmitool", "-I", "lanplus", "-C", "3", "-H", n.bmc_ip, "-p", str(IPMI_PORT),
                     "-U", BMC_USER, "-f", str(self.layout.bmc_password_file), *args],
                    env=dict(nodeops.BASE_ENV), timeout=timeout)

    def log_paths(self) -> Dict[str, str]:
        out = {}
        for n in self.layout.nodes:
            d = self.layout.node_dir(n)
            out[n.name] = str(d / "log")
            if n.is_controller:
                out[f"{n.name} corosync"] = str(d / "var-log-pacemaker" / "corosync.log")
            out[f"{n.name} bmc"] = str(d / "bmc" / "chassis.log")
        return out

    # ------------------------------------------------------------------ bring-up
    def is_up(self) -> bool:
        rig_json = self.root / "rig.json"
        if not rig_json.exists():
            return False
        try:
            saved = Layout.load(self.root)
        except (ValueError, KeyError, TypeError):
            return False
        if [n.name for n in saved.nodes] != [n.name for n in self.layout.nodes]:
            return False
        for n in saved.nodes:
            try:
                pid = nodeops.anchor_pid(saved, n)
            except (FileNotFoundError, ValueError):
                return False
            if not Path(f"/proc/{pid}").exists():
                return False
        self.layout = saved  # keep services registered by an earlier session
        return (self.root / "configured").exists()

    def up(self) -> "Cluster":
        if self.is_up():
            print(f"cluster rig already up under {self.root}")
            return self
        if not self.layout.remoted.exists():
            raise RigError(f"{self.layout.remoted} missing: run tests/rig/cluster/install.sh")
        t0 = time.monotonic()
        self.down(quiet=True)
        try:
            self._bring_up(t0)
        except BaseException:
            print(f"cluster rig bring-up failed; logs under {self.root / 'nodes'}", file=sys.stderr)
            self.down(quiet=True)
            raise
        print(f"cluster rig up in {self.timings['up_total_s']:.1f}s under {self.root}")
        for what, path in self.log_paths().items():
            print(f"  logs {what}: {path}")
        return self

    def _bring_up(self, t0: float) -> None:
        self._write_files()
        self._network()
        for n in self.layout.nodes:
            self._anchor(n)
        for n in self.layout.nodes:
            self._bmc(n)
        self.timings["infra_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        for n in self.layout.nodes:
            nodeops.set_power_state(self.layout, n, 1)
            _run([self.layout.python, "-m", "tests.rig.cluster.node", "boot",
                  self.layout.rig_dir, n.name], timeout=60,
                 env=dict(nodeops.BASE_ENV, PYTHONPATH=str(REPO)))
        self.wait_controllers_online(timeout=120)
        self.timings["controllers_online_s"] = time.monotonic() - t1
        self.configure()
        self.wait_converged(timeout=180)
        (self.root / "configured").write_text("ok\n")
        self.timings["converged_s"] = time.monotonic() - t1
        self.timings["up_total_s"] = time.monotonic() - t0

    def _write_files(self) -> None:
        lay = self.layout
        lay.root.mkdir(parents=True, exist_ok=True)
        for stale in ("configured",):
            (lay.root / stale).unlink(missing_ok=True)
        lay.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(lay.secrets_dir, 0o700)
        if not lay.bmc_password_file.exists():
            fd = os.open(lay.bmc_password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(8) + "\n")
        script = lay.bmc_password_script
        script.write_text(f"#!/bin/sh\nexec cat '{lay.bmc_password_file}'\n")
        os.chmod(script, 0o700)
        corosync_key = os.urandom(256)
        pcmk_key = os.urandom(4096)
        uid, gid = nodeops._hacluster_ids()
        agents_mod.stage(lay.agents_dir, lay.agent_python)
        lay.save()
        for n in lay.nodes:
            d = lay.node_dir(n)
            if (d / "log").exists():  # a fresh rig starts with fresh logs; keep one previous
                shutil.rmtree(d / "log.prev", ignore_errors=True)
                os.replace(d / "log", d / "log.prev")
            for sub in ("etc-corosync", "etc-pacemaker", "var-lib-corosync", "var-log-pacemaker",
                        "run", "log", "pids", "bmc/state", "var-lib-pacemaker/cib",
                        "var-lib-pacemaker/pengine", "var-lib-pacemaker/blackbox",
                        "var-lib-pacemaker/cores", "var-lib-pacemaker/lrm"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            for sub in ("var-lib-pacemaker", "var-log-pacemaker", "etc-pacemaker", "log"):
                for p in [d / sub, *(d / sub).rglob("*")]:
                    os.chown(p, uid, gid)
            for sub in ("cib", "pengine", "blackbox", "cores"):
                os.chmod(d / "var-lib-pacemaker" / sub, 0o750)
            os.chmod(d / "var-log-pacemaker", 0o770)
            os.chmod(d / "log", 0o770)
            self._write_secret(d / "etc-pacemaker" / "authkey", pcmk_key, 0o440, uid, gid)
            if n.is_controller:
                (d / "etc-corosync" / "corosync.conf").write_text(corosync_conf(lay))
                self._write_secret(d / "etc-corosync" / "authkey", corosync_key, 0o400, 0, 0)
                cib_dir = d / "var-lib-pacemaker" / "cib"
                for stale in cib_dir.iterdir():  # archives of an earlier bring-up would win over the seed
                    if stale.is_file():
                        stale.unlink()
                self._seed_cib(cib_dir / "cib.xml", uid, gid)
            chassis = d / "bmc" / "chassis"
            chassis.write_text(
                "#!/bin/sh\n# ipmi_sim chassis_control: power really kills/boots the node\n"
                f"PYTHONPATH='{REPO}' exec '{lay.python}' -m tests.rig.cluster.node chassis "
                f"'{lay.rig_dir}' '{n.name}' \"$@\"\n")
            os.chmod(chassis, 0o755)
            conf = d / "bmc" / "lan.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(ipmi_lan_conf(lay, n, chassis, self._bmc_password()))
            (d / "bmc" / "bmc.emu").write_text(IPMI_EMU)
            nodeops.set_power_state(lay, n, 0)

    @staticmethod
    def _write_secret(path: Path, data: bytes, mode: int, uid: int, gid: int) -> None:
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chown(path, uid, gid)
        os.chmod(path, mode)

    @staticmethod
    def _seed_cib(path: Path, uid: int, gid: int) -> None:
        """Pre-seeded CIB: without dc-deadtime=2s every cold start waits 20 s for a DC."""
        empty = _run(["cibadmin", "--empty"]).stdout
        path.write_text(empty)
        env = dict(nodeops.BASE_ENV, CIB_file=str(path))
        for name, value in SEED_OPTIONS.items():
            _run(["crm_attribute", "--type", "crm_config", "--name", name, "--update", value],
                 env=env)
        os.chown(path, uid, gid)
        os.chmod(path, 0o600)

    def _network(self) -> None:
        lay = self.layout
        _run(["ip", "link", "add", lay.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{lay.host_ip}/24", "dev", lay.bridge])
        _run(["ip", "link", "set", lay.bridge, "up"])
        bmc_ns = lay.bmc_netns
        _run(["ip", "netns", "add", bmc_ns])
        self._veth(lay.bmc_veth, bmc_ns)
        for n in lay.nodes:
            _run(["ip", "-n", bmc_ns, "addr", "add", f"{n.bmc_ip}/24", "dev", "eth0"])
        for n in lay.nodes:
            ns = lay.netns(n)
            _run(["ip", "netns", "add", ns])
            self._veth(lay.veth(n), ns)
            _run(["ip", "-n", ns, "addr", "add", f"{n.ip}/24", "dev", "eth0"])

    def _veth(self, host_side: str, ns: str) -> None:
        _run(["ip", "link", "add", host_side, "type", "veth", "peer", "name", "eth0",
              "netns", ns])
        _run(["ip", "link", "set", host_side, "master", self.layout.bridge, "up"])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def _anchor_script(self, n: Node) -> str:
        d = self.layout.node_dir(n)
        a = self.layout.agents_dir
        binds = [("etc-corosync", "/etc/corosync"), ("etc-pacemaker", "/etc/pacemaker"),
                 ("var-lib-corosync", "/var/lib/corosync"),
                 ("var-lib-pacemaker", "/var/lib/pacemaker"),
                 ("var-log-pacemaker", "/var/log/pacemaker"), ("run", "/run")]
        lines = ["set -e"]
        lines += [f"mount --bind '{d / src}' '{dst}'" for src, dst in binds]
        lines += [
            "mount -t tmpfs -o mode=1777,size=64m tmpfs /dev/shm",
            # the working tree's agents, visible to this node only
            f"mount -t overlay overlay -o 'lowerdir={a / 'ocf'}:/usr/lib/ocf/resource.d' "
            "/usr/lib/ocf/resource.d",
            f"mount -t overlay overlay -o 'lowerdir={a / 'sbin'}:/usr/sbin' /usr/sbin",
            f"hostname '{n.name}'",
            "exec sleep infinity",
        ]
        return "\n".join(lines) + "\n"

    def _anchor(self, n: Node) -> None:
        d = self.layout.node_dir(n)
        script = d / "anchor.sh"
        script.write_text(self._anchor_script(n))
        log = open(d / "log" / "anchor.out", "wb")
        try:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.layout.netns(n), "unshare", "--mount", "--uts",
                 "--propagation", "private", "--", "/bin/sh", str(script)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            log.close()
        (d / "anchor.pid").write_text(f"{proc.pid}\n")

        def ready() -> bool:
            if proc.poll() is not None:
                raise RigError(f"{n.name}: anchor failed: {(d / 'log' / 'anchor.out').read_text()}")
            return Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep"

        wait_for(f"{n.name} namespaces", ready, timeout=20, interval=0.05)

    def _bmc(self, n: Node) -> None:
        d = self.layout.node_dir(n) / "bmc"
        log = open(d / "ipmi_sim.out", "wb")
        try:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.layout.bmc_netns, "ipmi_sim", "-c", str(d / "lan.conf"),
                 "-f", str(d / "bmc.emu"), "-s", str(d / "state"), "-n"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            log.close()
        (d / "ipmi_sim.pid").write_text(f"{proc.pid}\n")
        wait_for(f"BMC of {n.name}",
                 lambda: "Chassis Power is" in self.ipmitool(n.name, "chassis", "power", "status",
                                                             timeout=10).stdout,
                 timeout=20, interval=0.1)

    # ------------------------------------------------------------------ configuration
    def rig_configuration(self, live: ET.Element) -> ET.Element:
        return cib.rig_configuration(self.layout, live, self.fence_agent, self.fence_action)

    def configure(self) -> None:
        ctl = self.controller()
        live = ET.fromstring(self.x(ctl, ["cibadmin", "--query"]).stdout)
        conf = self.rig_configuration(live)
        work = self.root / "cib-work"
        work.mkdir(exist_ok=True)
        out = work / "rig-configuration.xml"
        out.write_text(ET.tostring(conf, encoding="unicode"))
        self.x(ctl, ["cibadmin", "--replace", "--scope", "configuration", "--xml-file", str(out)],
               timeout=120)

    def push_cib(self, new: Path, orig: Optional[Path] = None) -> None:
        """Push a CIB file (e.g. one rendered by crm_templates) to the live cluster."""
        ctl = self.controller()
        argv = ["pcs", "cluster", "cib-push", str(new)]
        if orig is not None:
            argv.append(f"diff-against={orig}")
        self.x(ctl, argv, timeout=120)

    def site_model(self, cloud: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
        return cib.site_model(self.layout, cloud, **extra)

    def configure_from_site(self, site: Dict[str, Any]) -> Path:
        """Replace the live configuration with the project's own rendering of ``site``.

        The rendered CIB uses the project's agents (staged into the nodes), e.g. fence_ipmi
        and the fence_compute level, so Nova must be reachable for fencing to succeed.
        Returns the pushed file.
        """
        xml_text, conf = cib.site_configuration(site)
        work = self.root / "cib-work"
        work.mkdir(exist_ok=True)
        (work / "site-rendered.xml").write_text(xml_text)
        out = work / "site-configuration.xml"
        out.write_text(ET.tostring(conf, encoding="unicode"))
        self.x(self.controller(), ["cibadmin", "--replace", "--scope", "configuration",
                                   "--xml-file", str(out)], timeout=120)
        return out

    # ------------------------------------------------------------------ status
    def crm_mon(self, on: Optional[str] = None) -> ET.Element:
        out = self.x(on or self.controller(), ["crm_mon", "-1", "--inactive", "--output-as=xml"],
                     timeout=60).stdout
        return ET.fromstring(out)

    def nodes(self, on: Optional[str] = None) -> Dict[str, NodeStatus]:
        on = on or self.controller()
        status = ET.fromstring(self.x(on, ["cibadmin", "--query", "--scope", "status"]).stdout)
        in_ccm = {e.get("uname"): e.get("in_ccm") == "true" for e in status.iter("node_state")}
        res = {}
        for e in self.crm_mon(on).iter("node"):
            if e.get("type") is None:
                continue  # resource location sub-elements also use <node>
            name = e.get("name", "")
            mon_online = e.get("online") == "true"
            res[name] = NodeStatus(
                name=name, type=e.get("type", ""),
                online=mon_online and in_ccm.get(name, False),
                unclean=e.get("unclean") == "true",
                expected_up=e.get("expected_up") == "true", crm_mon_online=mon_online)
        return res

    def resources_on(self, node: str, on: Optional[str] = None) -> List[str]:
        """Ids of active resources placed on ``node``."""
        out = []
        for r in self.crm_mon(on).iter("resource"):
            if r.get("active") == "true" and any(n.get("name") == node for n in r.iter("node")):
                out.append(r.get("id", ""))
        return out

    def fence_history(self, target: str = "*", on: Optional[str] = None) -> List[FenceEvent]:
        out = self.x(on or self.controller(),
                     ["stonith_admin", "--history", target, "--verbose", "--output-as=xml"],
                     timeout=60).stdout
        events = []
        for e in ET.fromstring(out).iter("fence_event"):
            events.append(FenceEvent(target=e.get("target", ""), action=e.get("action", ""),
                                     status=e.get("status", ""), delegate=e.get("delegate", ""),
                                     completed=e.get("completed", "")))
        return events

    def successful_fences(self, target: str) -> List[FenceEvent]:
        return [e for e in self.fence_history(target) if e.status == "success"]

    # ------------------------------------------------------------------ waits
    def wait_controllers_online(self, timeout: float) -> None:
        names = {n.name for n in self.layout.controllers}

        def ok() -> bool:
            st = self.nodes()
            return all(name in st and st[name].online for name in names) and \
                self.crm_mon().find("summary/current_dc[@present='true']") is not None

        wait_for("all controllers online with a DC", ok, timeout)

    def wait_converged(self, timeout: float) -> None:
        """Every node online and the Dummy clone running on every compute."""
        def ok() -> bool:
            st = self.nodes()
            if not all(n.name in st and st[n.name].online for n in self.layout.nodes):
                return False
            return all(any(r.startswith("compute-dummy") for r in self.resources_on(n.name))
                       for n in self.layout.computes)

        wait_for("cluster converged", ok, timeout, interval=0.5)

    def wait_node(self, node: str, online: bool, timeout: float) -> NodeStatus:
        def ok() -> Optional[NodeStatus]:
            st = self.nodes().get(node)
            return st if st is not None and st.online == online and not st.unclean else None

        return wait_for(f"{node} {'online' if online else 'offline'}", ok, timeout, interval=0.5)

    def wait_fenced(self, node: str, timeout: float, already: int = 0) -> FenceEvent:
        """Wait for a successful fencing of ``node`` beyond the ``already`` known ones."""
        def ok() -> Optional[FenceEvent]:
            done = self.successful_fences(node)
            # stonith_admin lists the newest first; do not rely on the order
            return max(done, key=lambda e: e.completed) if len(done) > already else None

        return wait_for(f"{node} fenced", ok, timeout, interval=0.5)

    # ------------------------------------------------------------------ scenarios
    def power_status(self, node: str) -> str:
        return self.ipmitool(node, "chassis", "power", "status").stdout.strip()

    def power_off(self, node: str) -> None:
        """Simulated power loss through the BMC: every process of the node dies at once."""
        self.ipmitool(node, "chassis", "power", "off")

    def power_on(self, node: str) -> None:
        """Power on through the BMC: the node boots its stack and services asynchronously."""
        self.ipmitool(node, "chassis", "power", "on")

    def partition(self, node: str) -> None:
        """Unplug the node's cable at the switch: it keeps running, nobody reaches it."""
        _run(["ip", "link", "set", self.layout.veth(self.node(node)), "down"])

    def heal(self, node: str) -> None:
        _run(["ip", "link", "set", self.layout.veth(self.node(node)), "up"])

    def restore_all(self) -> None:
        """Back to baseline after a scenario: every cable plugged, every node powered."""
        for n in self.layout.nodes:
            self.heal(n.name)
            if "off" in self.power_status(n.name):
                self.power_on(n.name)

    def node_pids(self, node: str) -> List[int]:
        """Processes of the node, its anchor excluded (empty when powered off)."""
        n = self.node(node)
        anchor = nodeops.anchor_pid(self.layout, n)
        return [p for p in nodeops.netns_pids(self.layout, n) if p != anchor]

    def add_service(self, node: str, service: Service, start: bool = True) -> None:
        """Register a boot service (e.g. the host's nova-compute) and start it if powered."""
        n = self.node(node)
        n.services = [s for s in n.services if s.name != service.name] + [service]
        self.layout.save()
        if start and nodeops.power_state(self.layout, n):
            nodeops.start_service(self.layout, n, service)

    def add_power_hook(self, node: str, when: str, hook: Service) -> None:
        """Run ``hook`` (outside the node) each time its BMC cuts ("off") or restores ("on")
        power; a hook with the same name is replaced."""
        n = self.node(node)
        attr = {"off": "power_off_hooks", "on": "power_on_hooks"}[when]
        setattr(n, attr, [h for h in getattr(n, attr) if h.name != hook.name] + [hook])
        self.layout.save()

    def forward_host_ports(self, ports: Sequence[int]) -> None:
        """See ``openstack_link.forward_host_ports``."""
        openstack_link.forward_host_ports(self, ports)

    def attach_openstack(self, os_rig: Any, hosts: Optional[Sequence[str]] = None) -> List[str]:
        """Run the nova-compute of each (or the given) compute host inside its node."""
        return openstack_link.attach_openstack(self, os_rig, hosts)

    def detach_openstack(self, os_rig: Any, hosts: Sequence[str]) -> None:
        """Move the nova-compute of ``hosts`` back to the root namespace."""
        openstack_link.detach_openstack(self, os_rig, hosts)

    def service_pid(self, node: str, name: str) -> Optional[int]:
        """PID of a running boot service of ``node`` (None when not running)."""
        pidfile = self.layout.node_dir(self.node(node)) / "pids" / f"{name}.pid"
        try:
            pid = int(pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid in self.node_pids(node) else None

    def stop_service(self, node: str, name: str, timeout: float = 30.0) -> None:
        """SIGKILL a boot service's process group (it was started in its own session)."""
        pid = self.service_pid(node, name)
        if pid is None:
            return
        try:
            os.killpg(pid, 9)
        except ProcessLookupError:
            return
        wait_for(f"{name} on {node} gone", lambda: self.service_pid(node, name) is None,
                 timeout, interval=0.1)
        (self.layout.node_dir(self.node(node)) / "pids" / f"{name}.pid").unlink(missing_ok=True)

    def remove_service(self, node: str, name: str) -> None:
        """Forget a boot service; a running instance stays until the node loses power."""
        n = self.node(node)
        n.services = [s for s in n.services if s.name != name]
        self.layout.save()

    def fence_log(self, event: FenceEvent, window_s: float = 300.0) -> List[str]:
        """Fencer log lines (all controllers) about ``event``: which device ran, its result.

        Only lines from the ``window_s`` seconds before the event completed count, so that
        an earlier fencing of the same node cannot stand in for this one.
        """
        import datetime as dt

        done = dt.datetime.strptime(event.completed.rstrip("Z"), "%Y-%m-%d %H:%M:%S")
        lines = []
        for n in self.layout.controllers:
            log = self.layout.node_dir(n) / "log" / "pacemaker.log"
            if not log.exists():
                continue
            for line in log.read_text(errors="replace").splitlines():
                if ("pacemaker-fenced" not in line or f"'{event.action}'" not in line
                        or f"targeting {event.target} using" not in line):
                    continue
                try:  # "Nov 21 02:25:07.626 node ..." (no year: take the event's)
                    when = dt.datetime.strptime(f"{done.year} {line[:15]}", "%Y %b %d %H:%M:%S")
                except ValueError:
                    continue
                if done - dt.timedelta(seconds=window_s) <= when <= done + dt.timedelta(seconds=2):
                    lines.append(line)
        return lines

    def resource_agent(self, rsc: str) -> str:
        """``class:provider:type`` of a resource as crm_mon reports it."""
        for r in self.crm_mon().iter("resource"):
            if r.get("id") == rsc:
                return r.get("resource_agent", "")
        raise RigError(f"no resource {rsc!r}")

    def memory_kib(self) -> Dict[str, int]:
        """Resident memory per node (its processes) and for all BMCs together."""
        def rss(pid: int) -> int:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            except (FileNotFoundError, ProcessLookupError):
                pass
            return 0

        out = {n.name: sum(rss(p) for p in self.node_pids(n.name)) for n in self.layout.nodes}
        bmc_pids = subprocess.run(["ip", "netns", "pids", self.layout.bmc_netns],
                                  capture_output=True, text=True, check=False).stdout
        out["bmcs"] = sum(rss(int(p)) for p in bmc_pids.split())
        return out

    # ------------------------------------------------------------------ tear-down
    def down(self, quiet: bool = False) -> None:
        """Kill what the rig started (recorded PIDs and its namespaces' processes), remove
        its namespaces and bridge. Configuration, keys and logs stay under the rig dir."""
        lay = self.layout
        if (lay.root / "rig.json").exists():
            try:
                lay = Layout.load(lay.root)
            except (ValueError, KeyError, TypeError):
                pass
        (lay.root / "configured").unlink(missing_ok=True)
        existing = set(_run(["ip", "netns", "list"], check=False).stdout.split())
        for n in lay.nodes:
            pidfile = lay.node_dir(n) / "bmc" / "ipmi_sim.pid"
            if pidfile.exists():
                self._kill_pid(int(pidfile.read_text()))
                pidfile.unlink()
        for ns in [lay.netns(n) for n in lay.nodes] + [lay.bmc_netns]:
            if ns not in existing:
                continue
            deadline = time.monotonic() + 15
            while True:
                pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
                if not pids:
                    break
                if time.monotonic() > deadline:
                    raise RigError(f"processes in {ns} survive SIGKILL: {pids}")
                for p in pids:
                    self._kill_pid(int(p))
                time.sleep(0.05)
            _run(["ip", "netns", "del", ns], check=False)
        for n in lay.nodes:
            (lay.node_dir(n) / "anchor.pid").unlink(missing_ok=True)
        if shutil.which("nft"):
            _run(["nft", "delete", "table", "ip", openstack_link.nat_table(lay)], check=False)
        # netns deletion tears veths down asynchronously: delete our ends (and so the
        # pairs) explicitly, so that an immediate up() can reuse the names
        links = [lay.veth(n) for n in lay.nodes] + [lay.bmc_veth, lay.bridge]
        for link in links:
            _run(["ip", "link", "del", link], check=False)
        wait_for("rig interfaces gone",
                 lambda: all(_run(["ip", "link", "show", link], check=False).returncode != 0
                             for link in links), timeout=30, interval=0.1)
        if not quiet:
            print(f"cluster rig down (logs kept under {lay.root / 'nodes'})")

    @staticmethod
    def _kill_pid(pid: int) -> None:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def main(argv: List[str]) -> int:
    cmd = argv[0] if argv else "status"
    rig = Cluster()
    if cmd == "up":
        rig.up()
        print(" ".join(f"{k}={v:.1f}" for k, v in rig.timings.items()))
        return 0
    if cmd == "down":
        rig.down()
        return 0
    if cmd == "status":
        if not rig.is_up():
            print("cluster rig is not up")
            return 1
        for st in rig.nodes().values():
            print(f"{st.name:14} {st.type:7} {'online' if st.online else 'OFFLINE'}")
        print("memory KiB:", rig.memory_kib())
        return 0
    print(f"usage: {sys.argv[0]} up|down|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
