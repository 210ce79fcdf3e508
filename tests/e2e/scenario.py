"""The whole chain on the real rigs: Keystone/Nova (OpenStack rig) + Pacemaker with IPMI BMCs
(cluster rig), configured from the project's own ``crm_templates`` rendering.

``Stack`` brings both rigs up (reusing running ones), moves each cluster compute's
nova-compute into its node under the NovaCompute clone (its child, not a rig boot service),
pushes our CIB (fence_ipmi + fence_compute levels, NovaEvacuate on the controllers,
NovaCompute on the computes, credentials from the rig's clouds.yaml) and boots servers.
``Stack.power_loss`` cuts a compute's power through its BMC and watches the recovery,
returning a ``Recovery`` timeline; the demo narrates it, the e2e tests assert on it.
Every wait is bounded; the bounds are generous for a loaded 2-core machine.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import re
import shlex
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from computeha.ocf_lib import evacuation_record as er
from tests.rig.cluster import cib as cluster_cib
from tests.rig.cluster import node as cluster_node
from tests.rig.cluster import util as cluster_util
from tests.rig.cluster.cluster import Cluster, wait_for
from tests.rig.cluster.config import IPMI_PORT
from tests.rig.openstack.cloud import OpenStackRig

Say = Callable[[str], None]

NOVA_COMPUTE_RSC = "nova-compute"  # crm_templates' NovaCompute primitive id
NOVA_EVACUATE_RSC = "nova-evacuate"
BMC_TABLE = "computeha_e2e_bmc"
NOVA_TABLE = "computeha_e2e_nova"
READY_TIMEOUT = 300.0
RECOVERY_TIMEOUT = 300.0


def _quiet(_: str) -> None:
    pass


def _cmdline(pid: int) -> List[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


@dataclass
class Recovery:
    """Seconds after the power cut at which each step was first observed (None: never)."""
    host: str
    servers: List[str]
    timeline: Dict[str, float] = field(default_factory=dict)
    records: List[str] = field(default_factory=list)  # record states seen, in order
    nova_compute_started_before_done: bool = False

    def at(self, step: str) -> Optional[float]:
        return self.timeline.get(step)


# steps, in the order they normally happen, and how the narration names them
STEPS = [
    ("detected", "Pacemaker lost the node"),
    ("fenced", "fenced over IPMI (fence_ipmi + fence_compute level confirmed)"),
    ("nova_down", "Nova marks the nova-compute service forced down"),
    ("requested", "evacuation requested in the cluster record"),
    ("evacuation_issued", "NovaEvacuate issued the first evacuation"),
    ("all_active", "every instance ACTIVE on another host"),
    ("record_done", "cluster record: evacuation done"),
    ("powered_on", "node powered on through its BMC"),
    ("node_online", "node back online in the cluster"),
    ("nova_compute_running", "nova-compute started by NovaCompute"),
    ("reenabled", "nova-compute service up, enabled, not forced down"),
    ("record_cleared", "cluster record cleared"),
]
LABELS = dict(STEPS)


class Stack:
    def __init__(self, say: Say = _quiet, cluster: Optional[Cluster] = None,
                 cloud: Optional[OpenStackRig] = None) -> None:
        self.say = say
        self.cluster = cluster or Cluster()
        self.cloud = cloud or OpenStackRig()
        self.started_cloud = False
        self.started_cluster = False
        self.hosts: List[str] = []
        self.saved_configuration: Optional[Path] = None
        self._locks: List = []

    # ------------------------------------------------------------------ bring-up
    def lock(self, timeout: float = 900.0) -> None:
        """Exclusive use of both rigs, on the same lock files as the test fixtures (a test
        session and the demo must not fence each other's nodes). Released at exit."""
        for root in (self.cloud.paths.root, self.cluster.root):
            root.mkdir(parents=True, exist_ok=True)
            fh = open(root / "session.lock", "a+")
            deadline = time.monotonic() + timeout
            waited = False
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise RuntimeError(f"{root} is in use by another session "
                                           f"(lock {root / 'session.lock'})") from None
                    if not waited:
                        self.say(f"waiting for {root} (in use by a test session)...")
                        waited = True
                    time.sleep(1)
            self._locks.append(fh)

    def up(self) -> None:
        """Lock and bring up both rigs (running ones are reused and left running)."""
        self.lock()
        self.say("OpenStack rig (Keystone, Glance, Placement, Nova on MariaDB/RabbitMQ)...")
        was_up = self.cloud.control_healthy()
        self.started_cloud = not was_up  # so that down() also cleans up a failed bring-up
        self.cloud.up(say=lambda m: self.say("  openstack: " + re.sub(r"^\[\s*[\d.]+s\] ", "", m)))
        if not self.cluster.is_up():
            self.say("cluster rig (corosync/pacemaker controllers, pacemaker-remote computes, "
                     "one ipmi_sim BMC per node)...")
            self.started_cluster = True  # down() cleans up even a partial bring-up
            self._forget_stale_cib()
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    self.cluster.up()
            finally:
                lines = out.getvalue().splitlines()
                self.say(f"  cluster: {lines[0] if lines else 'no output'}")
        else:
            self.say("cluster rig already running: reusing it")
        self.cluster.wait_controllers_online(READY_TIMEOUT)

    def _forget_stale_cib(self) -> None:
        """Work around the cluster rig restarting from a previous run's CIB: it seeds cib.xml
        but leaves the old archives and signature, and pacemaker-based then loads the newest
        archive (the old configuration), on which the rig's own configure() fails. Only called
        while the rig is down."""
        for n in self.cluster.layout.controllers:
            cib_dir = self.cluster.layout.node_dir(n) / "var-lib-pacemaker" / "cib"
            if cib_dir.is_dir():
                for f in cib_dir.iterdir():
                    if f.is_file() and (f.name.startswith("cib") or f.suffix == ".sig"):
                        f.unlink()

    def attach(self) -> List[str]:
        """Save the rig's configuration, then move each cluster compute's nova-compute into its
        node (power hooks from the rig; the process itself will be NovaCompute's child)."""
        ctl = self.cluster.controller()
        work = self.cluster.root / "cib-work"
        work.mkdir(exist_ok=True)
        saved = work / "e2e-saved-configuration.xml"
        live = self.cluster.x(ctl, ["cibadmin", "--query", "--scope", "configuration"]).stdout
        if "NovaEvacuate" not in live:  # the rig's own: what down() puts back
            saved.write_text(live)
        if saved.exists():  # else left over from a run that kept the stack (--keep)
            self.saved_configuration = saved
        self.hosts = self.cluster.attach_openstack(self.cloud)
        for host in self.hosts:
            self.cluster.remove_service(host, "nova-compute")
            self.cluster.stop_service(host, "nova-compute")
        return self.hosts

    def site(self) -> Dict:
        cloud = {"cloud": self.cloud.cloud_name, "clouds_yaml": str(self.cloud.clouds_yaml)}
        return self.cluster.site_model(cloud, evacuation={"max_parallel": 4})

    def configuration(self) -> ET.Element:
        """Our rendering of the site, plus each compute's nova-compute command for NovaCompute
        (per node, with ``#uname`` rules: the rig's computes differ by config file)."""
        _, conf = cluster_cib.site_configuration(self.site())
        prim = conf.find(f".//primitive[@id='{NOVA_COMPUTE_RSC}']")
        if prim is None:
            raise RuntimeError("the rendered CIB has no NovaCompute primitive")
        base = prim.find("instance_attributes")
        index = list(prim).index(base) + 1 if base is not None else 0
        for host in self.hosts:
            cmd = self.cloud.compute_command(host)
            sid = f"{NOVA_COMPUTE_RSC}-{host}-params"
            ia = ET.Element("instance_attributes", id=sid, score="10")
            rule = ET.SubElement(ia, "rule", id=f"{sid}-rule", score="INFINITY")
            ET.SubElement(rule, "expression", id=f"{sid}-rule-expr", attribute="#uname",
                          operation="eq", value=host)
            params = {
                "host": host,
                "nova_compute_command": shlex.join(cmd.argv),
                "nova_compute_env": shlex.join(f"{k}={v}" for k, v in sorted(cmd.env.items())),
                "user": "root",
                "output_file": str(self.cloud.logs / f"nova-compute-{host}.node.log"),
                "stop_grace": "10",
            }
            cluster_cib.set_nvpairs(ia, sid, params)
            prim.insert(index, ia)
            index += 1
        return conf

    def configure(self) -> Path:
        conf = self.configuration()
        out = self.cluster.root / "cib-work" / "e2e-configuration.xml"
        out.write_text(ET.tostring(conf, encoding="unicode"))
        self.cluster.x(self.cluster.controller(), ["cibadmin", "--replace", "--scope",
                                                   "configuration", "--xml-file", str(out)],
                       timeout=120)
        return out

    # ------------------------------------------------------------------ state
    def record(self, host: str) -> Optional[er.EvacuationRecord]:
        proc = self.cluster.x(self.cluster.controller(),
                              ["crm_attribute", "--node", host, "--name", er.ATTRIBUTE,
                               "--query", "--quiet"], check=False)
        return er.parse(proc.stdout.strip()) if proc.returncode == 0 else None

    def progress(self, host: str) -> str:
        """NovaEvacuate's transient progress attribute of ``host`` (what ``crm_mon -A`` shows)."""
        proc = self.cluster.x(self.cluster.controller(),
                              ["crm_attribute", "--node", host, "--name", er.PROGRESS_ATTRIBUTE,
                               "--lifetime", "reboot", "--query", "--quiet"], check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def cli_status(self) -> str:
        """``computeha status`` on a controller, as an operator would run it."""
        ctl = self.cluster.controller()
        proc = self.cluster.x(ctl, [self.cluster.layout.agent_python, "-m", "computeha.crm_templates.cli",
                                    "status", "--no-watch"], check=False, timeout=60)
        return proc.stdout

    def nova_compute_pid(self, host: str) -> Optional[int]:
        for pid in self.cluster.node_pids(host):
            argv = _cmdline(pid)
            if any(a.endswith("/nova-compute") for a in argv[:2]):  # script or interpreter
                return pid
        return None

    def service(self, host: str):
        return self.cloud.compute_service(host)

    def service_ready(self, host: str, after: float = 0.0) -> bool:
        svc = self.service(host)
        if not (svc.state == "up" and svc.status == "enabled" and not svc.forced_down):
            return False
        if after and svc.updated_at:  # a heartbeat newer than ``after`` (epoch, UTC)
            from datetime import datetime, timezone
            beat = datetime.fromisoformat(svc.updated_at.split(".")[0]).replace(
                tzinfo=timezone.utc).timestamp()
            return beat > after
        return True

    def started_on(self, rsc: str) -> List[str]:
        """Nodes where ``rsc`` (or a clone instance of it) has started, its start action
        finished: a start still in flight does not count."""
        out = []
        for r in self.cluster.crm_mon().iter("resource"):
            if r.get("id") == rsc and r.get("role") == "Started" and not r.get("pending") \
                    and r.get("failed") != "true":
                out += [n.get("name", "") for n in r.iter("node")]
        return out

    def evacuate_running_on(self) -> Optional[str]:
        nodes = self.started_on(NOVA_EVACUATE_RSC)
        return nodes[0] if nodes else None

    def wait_ready(self, timeout: float = READY_TIMEOUT, after: float = 0.0) -> None:
        """Every node online, NovaEvacuate started, NovaCompute running nova-compute in every
        attached node, and Nova reporting those services up and enabled. NovaCompute's start
        must have returned: Pacemaker 2.1 does not fence a remote node whose start action is
        still in flight until that action times out (seen: power cut during the start)."""
        def ok() -> bool:
            st = self.cluster.nodes()
            if not all(n.name in st and st[n.name].online for n in self.cluster.layout.nodes):
                return False
            if self.evacuate_running_on() is None:
                return False
            started = self.started_on(NOVA_COMPUTE_RSC)
            for host in self.hosts:
                if host not in started:
                    return False
                if self.nova_compute_pid(host) is None or not self.service_ready(host, after):
                    return False
            return True

        wait_for("cluster and Nova ready (NovaEvacuate started, nova-compute up on "
                 f"{', '.join(self.hosts)})", ok, timeout, interval=1)

    def bring_up(self) -> None:
        """Both rigs up, joined and configured from our rendering; returns when ready."""
        self.up()
        self.say("moving each compute's nova-compute into its cluster node...")
        self.attach()
        self.say(f"  attached: {', '.join(self.hosts)}")
        self.say("configuring the cluster from our own crm_templates rendering "
                 "(fence_ipmi + fence_compute levels, NovaEvacuate, NovaCompute clone)...")
        self.configure()
        self.say("waiting for NovaEvacuate and NovaCompute to start...")
        self.wait_ready()

    def boot(self, count: int, host: str, prefix: str = "e2e") -> List[str]:
        servers = self.cloud.boot_servers(count, hosts=[host], name_prefix=prefix, timeout=240)
        return [s.id for s in servers]

    def servers_state(self, ids: Sequence[str]) -> Dict[str, Dict[str, object]]:
        nova = self.cloud.nova()
        out = {}
        for sid in ids:
            s = nova.servers.get(sid)
            out[sid] = {"status": s.status, "host": getattr(s, "OS-EXT-SRV-ATTR:host"),
                        "task_state": getattr(s, "OS-EXT-STS:task_state"),
                        "power_state": getattr(s, "OS-EXT-STS:power_state")}
        return out

    def migrations(self, host: str) -> List:
        return [m for m in self.cloud.nova().migrations.list(host=host)
                if getattr(m, "migration_type", "") == "evacuation"]

    # ------------------------------------------------------------------ faults
    def power_loss(self, host: str, servers: Sequence[str], power_on: str = "fenced",
                   timeout: float = RECOVERY_TIMEOUT, poll: float = 0.5) -> Recovery:
        """Cut ``host``'s power through its BMC and follow the recovery to the end: fenced,
        forced down in Nova, evacuated, then powered on (``power_on="fenced"``: as soon as the
        fence is confirmed, so NovaCompute must hold nova-compute until the evacuation is
        done; ``"active"``: after every instance is ACTIVE elsewhere), nova-compute back and
        re-enabled, record cleared. Raises TimeoutError naming the step that did not happen."""
        self.say(f"power off {host} through its BMC (ipmitool chassis power off)")
        return self.recover(host, servers, lambda: self.cluster.power_off(host), power_on,
                            timeout, poll)

    def partition_loss(self, host: str, servers: Sequence[str],
                       timeout: float = RECOVERY_TIMEOUT, poll: float = 0.5) -> Recovery:
        """Cut ``host``'s network (it keeps running: a silent hang seen from outside) and
        follow the recovery: the cluster must fence it over IPMI before anything moves."""
        self.say(f"unplug {host}'s network cable (the node keeps running)")
        return self.recover(host, servers, lambda: self.cluster.partition(host), "fenced",
                            timeout, poll)

    def recover(self, host: str, servers: Sequence[str], fault: Callable[[], None],
                power_on: str = "fenced", timeout: float = RECOVERY_TIMEOUT,
                poll: float = 0.5, already: Optional[int] = None) -> Recovery:
        """Inject ``fault`` (None-returning callable) and watch the recovery of ``host``."""
        rec = Recovery(host, list(servers))
        if already is None:
            already = len(self.cluster.successful_fences(host))
        t0 = time.monotonic()
        fault()

        def mark(step: str) -> None:
            if step not in rec.timeline:
                rec.timeline[step] = time.monotonic() - t0
                self.say(f"[{rec.timeline[step]:6.1f}s] {LABELS[step]}")

        deadline = t0 + timeout
        while True:
            now = time.monotonic()
            if now > deadline:
                missing = [LABELS[s] for s, _ in STEPS if s not in rec.timeline]
                raise TimeoutError(f"recovery of {host} not complete after {timeout:.0f}s; "
                                   f"never seen: {'; '.join(missing)}")
            try:
                self._observe(rec, mark, already, power_on)
            except (OSError, RuntimeError, ET.ParseError) as exc:
                self.say(f"  (poll error, retrying: {str(exc)[:120]})")
            if "record_cleared" in rec.timeline and "reenabled" in rec.timeline:
                return rec
            time.sleep(poll)

    def _observe(self, rec: Recovery, mark: Callable[[str], None], already: int,
                 power_on: str) -> None:
        host = rec.host
        tl = rec.timeline
        if "fenced" not in tl:
            st = self.cluster.nodes().get(host)
            if st is None or not st.online or st.unclean:
                mark("detected")
            if len(self.cluster.successful_fences(host)) > already:
                mark("detected")
                mark("fenced")
        record = self.record(host)
        state = record.state if record else None
        if state and (not rec.records or rec.records[-1] != state):
            rec.records.append(state)
            if state in (er.REQUESTED, er.RUNNING):
                mark("requested")
            if state == er.DONE:
                mark("record_done")
        if "nova_down" not in tl:
            if self.service(host).forced_down:
                mark("nova_down")
        if "evacuation_issued" not in tl and self.migrations(host):
            mark("evacuation_issued")
        if "all_active" not in tl and "evacuation_issued" in tl:
            states = self.servers_state(rec.servers)
            if all(s["status"] == "ACTIVE" and s["host"] != host and s["task_state"] is None
                   for s in states.values()):
                mark("all_active")
        ready_for_power = "fenced" in tl if power_on == "fenced" else "all_active" in tl
        if "powered_on" not in tl and ready_for_power and "nova_down" in tl:
            self.cluster.heal(host)  # no-op unless the fault was a cut cable
            self.cluster.power_on(host)
            mark("powered_on")
        if "powered_on" in tl:
            if "node_online" not in tl:
                st = self.cluster.nodes().get(host)
                if st is not None and st.online:
                    mark("node_online")
            if "nova_compute_running" not in tl and self.nova_compute_pid(host) is not None:
                mark("nova_compute_running")
                rec.nova_compute_started_before_done = "record_done" not in tl
            if "nova_compute_running" in tl and "record_done" in tl:
                if "reenabled" not in tl and self.service_ready(host):
                    mark("reenabled")
                if "record_cleared" not in tl and record is None:
                    mark("record_cleared")

    def block_bmc(self, host: str) -> None:
        """Make ``host``'s BMC unreachable (its IPMI packets dropped inside the BMC namespace)."""
        lay, n = self.cluster.layout, self.cluster.node(host)
        rules = (f"table ip {BMC_TABLE} {{\n  chain input {{ type filter hook input priority 0; "
                 f"ip daddr {n.bmc_ip} udp dport {IPMI_PORT} drop; }}\n}}\n")
        self.unblock_bmc()
        cluster_util.run(["ip", "netns", "exec", lay.bmc_netns, "nft", "-f", "-"], input=rules)

    def unblock_bmc(self) -> None:
        cluster_util.run(["ip", "netns", "exec", self.cluster.layout.bmc_netns, "nft", "delete",
                          "table", "ip", BMC_TABLE], check=False)

    def bmc_fault(self, host: str, **faults: float) -> None:
        """Make ``host``'s BMC misbehave (see tests.rig.cluster.node.bmc_faults); no keyword
        arguments: a healthy BMC again."""
        path = cluster_node.bmc_fault_file(self.cluster.layout, self.cluster.node(host))
        if faults:
            path.write_text(json.dumps(faults))
        else:
            path.unlink(missing_ok=True)

    def block_nova_api(self) -> None:
        """nova-api unreachable from every controller (connections refused): Nova is down as
        far as fence_compute and NovaEvacuate can tell; the computes keep their RabbitMQ."""
        port = self.cloud.settings.ports["nova-api"]
        rules = (f"table ip {NOVA_TABLE} {{\n  chain output {{ type filter hook output priority 0; "
                 f"tcp dport {port} reject with tcp reset; }}\n}}\n")
        self.unblock_nova_api()
        for n in self.cluster.layout.controllers:
            cluster_util.run(["ip", "netns", "exec", self.cluster.layout.netns(n), "nft", "-f", "-"],
                             input=rules)

    def unblock_nova_api(self) -> None:
        for n in self.cluster.layout.controllers:
            cluster_util.run(["ip", "netns", "exec", self.cluster.layout.netns(n), "nft", "delete",
                              "table", "ip", NOVA_TABLE], check=False)

    def set_param(self, rsc: str, name: str, value: Optional[str]) -> None:
        """Set (or, with None, delete) an instance attribute of ``rsc`` the way an operator
        would, with crm_resource."""
        argv = ["crm_resource", "--resource", rsc]
        argv += (["--set-parameter", name, "--parameter-value", value] if value is not None
                 else ["--delete-parameter", name])
        self.cluster.x(self.cluster.controller(), argv, timeout=60, check=value is not None)

    def evacuate_log(self, node: str, pattern: str) -> List[str]:
        """Lines of ``node``'s Pacemaker log from NovaEvacuate matching ``pattern``."""
        path = self.cluster.layout.node_dir(self.cluster.node(node)) / "log" / "pacemaker.log"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return []
        rx = re.compile(pattern)
        return [line for line in text.splitlines() if "NovaEvacuate" in line and rx.search(line)]

    def failed_fences(self, host: str) -> List:
        return [e for e in self.cluster.fence_history(host) if e.status == "failed"]

    # ------------------------------------------------------------------ tear-down
    def restore(self) -> None:
        """Back to baseline after a scenario: cables plugged, nodes powered, ready."""
        self.unblock_bmc()
        self.unblock_nova_api()
        for n in self.cluster.layout.nodes:
            self.bmc_fault(n.name)
        self.cluster.restore_all()
        # what an operator does after repairing a fault: forget the failed starts/monitors (e.g.
        # a fence device whose BMC refused the password) so that every resource may run again
        self.cluster.x(self.cluster.controller(), ["crm_resource", "--cleanup"], timeout=120, check=False)
        self.wait_ready()

    def down(self) -> None:
        """Undo what this stack did: the rig's own configuration back and nova-compute back in
        the root namespace (rigs that were running are left running), then stop the rigs
        this stack started."""
        errors = []
        if self.started_cluster:
            self.say("tearing down the cluster rig...")
            try:
                self.cluster.down()
            except Exception as exc:  # keep going: the OpenStack rig must still stop
                errors.append(f"cluster rig: {exc}")
        elif self.cluster.is_up():
            try:
                self.unblock_bmc()
                self.cluster.restore_all()
                if self.saved_configuration is not None:
                    self.cluster.x(self.cluster.controller(),
                                   ["cibadmin", "--replace", "--scope", "configuration",
                                    "--xml-file", str(self.saved_configuration)], timeout=120)
                    # the NovaCompute clone is gone from the configuration: wait until Pacemaker has
                    # stopped it (and with it the nova-computes it ran inside the nodes) before the
                    # root-namespace nova-computes come back, or a host would run two
                    self.cluster.x(self.cluster.controller(), ["crm_resource", "--wait", "--timeout", "180"],
                                   timeout=200)
                if self.hosts:
                    self.cluster.detach_openstack(self.cloud, self.hosts)
            except Exception as exc:
                errors.append(f"cluster rig restore: {exc}")
        if self.started_cloud:
            self.say("tearing down the OpenStack rig...")
            try:
                self.cloud.down(say=lambda m: self.say(f"  openstack: {m}"))
            except Exception as exc:
                errors.append(f"openstack rig: {exc}")
        elif self.started_cluster and self.hosts:
            try:  # its nova-computes died with the nodes: back to the root namespace
                self.cloud.restore_computes(timeout=180)
            except Exception as exc:
                errors.append(f"openstack rig restore: {exc}")
        for fh in self._locks:
            fh.close()
        self._locks = []
        if errors:
            raise RuntimeError("; ".join(errors))
