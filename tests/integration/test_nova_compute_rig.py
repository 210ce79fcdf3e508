"""NovaCompute on the real OpenStack rig: Keystone, Nova (fake driver that keeps guest records), Placement.

The agent runs the rig's own nova-compute command line as its supervised
child. The cluster record lives in a JSON file (the rig has no Pacemaker);
fencing is what fence_compute `off` does (nova-compute killed, power cut,
service forced down and disabled with our reason, record `requested`), and
the evacuations are driven from the test with novaclient, as NovaEvacuate
would. A watcher samples, every 0.2 s, whether the agent's nova-compute runs
while Nova lists an in-progress evacuation from the host: that must never
happen.
"""
from __future__ import annotations

import io
import os
import pwd
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest

from computeha.agents import evacuation_worker as worker
from computeha.agents.compute_service import ChildProcess
from computeha.agents.nova_compute import RETURN_PIDFILE, RETURN_RESULT, RETURNER_ENV, NovaCompute
from computeha.ocf_lib import evacuation_record as er
from computeha.ocf_lib import ocf
from computeha.ocf_lib.nova import IN_PROGRESS_MIGRATION
from computeha.ocf_lib.state import StateDir
from tests.fakes.file_attributes import FileAttributes

pytestmark = [pytest.mark.integration, pytest.mark.openstack]

INSTANCE = "nova-compute-it"


class AgentOnRig:
    """The agent configured for one rig host, run in-process like execd would run it."""

    def __init__(self, rig, host: str, tmp: Path) -> None:
        self.rig = rig
        self.host = host
        self.tmp = tmp
        self.attrs = FileAttributes(str(tmp / "attrs.json"))
        self.agent = NovaCompute(attrs=lambda ctx: self.attrs)
        self.agent.poll_interval = 0.5
        cmd = rig.compute_command(host)
        self.params = {
            "nova_compute_command": shlex.join(cmd.argv),
            "nova_compute_env": shlex.join(f"{k}={v}" for k, v in sorted(cmd.env.items())),
            "user": pwd.getpwuid(os.getuid()).pw_name,
            "output_file": str(rig.logs / f"agent-nova-compute-{host}.out"),
            "stop_grace": "20",
            "cloud": rig.cloud_name,
            "clouds_yaml": str(rig.clouds_yaml),
        }
        self.child = ChildProcess(cmd.argv, StateDir(str(tmp), "NovaCompute", INSTANCE))
        self.stderr = ""
        self.returner_stderr = ""
        # the return-to-service process is this agent's start with RETURNER_ENV set; the cluster
        # record here is a file this process injects, so the sequence runs in a thread of ours,
        # with a stand-in process that lives as long as it does (what monitor and stop look at)
        self.agent.launch_returner = self.returner_in_thread

    def returner_in_thread(self, ctx: ocf.OcfContext) -> int:
        marker = subprocess.Popen(["sleep", "3600"], start_new_session=True)
        ctx.state.write_text(RETURN_PIDFILE, f"{marker.pid} {worker._stat(marker.pid)[1]}\n")
        env = dict(ctx.env, **{RETURNER_ENV: "1"})

        def body() -> None:
            err = io.StringIO()
            code = ocf.run(self.agent, ["NovaCompute", "start"], env, stdout=io.StringIO(), stderr=err)
            self.returner_stderr = err.getvalue()
            ctx.state.write_text(RETURN_RESULT, f"{code}\n")
            marker.kill()
            marker.wait()

        threading.Thread(target=body, daemon=True).start()
        return marker.pid

    def run(self, action: str, timeout_s: float = 120, **extra: str) -> int:
        env = {"OCF_RESOURCE_INSTANCE": INSTANCE, "HA_RSCTMP": str(self.tmp),
               "OCF_RESKEY_CRM_meta_on_node": self.host, "OCF_RESKEY_CRM_meta_timeout": str(int(timeout_s * 1000)),
               "PATH": os.environ["PATH"], **{f"OCF_RESKEY_{k}": v for k, v in self.params.items()}, **extra}
        err = io.StringIO()
        code = ocf.run(self.agent, ["NovaCompute", action], env, stdout=io.StringIO(), stderr=err)
        self.stderr = err.getvalue()
        return code


class Watcher(threading.Thread):
    """Samples (child running?, in-progress evacuations from the host) until stopped."""

    def __init__(self, agent: AgentOnRig) -> None:
        super().__init__(daemon=True)
        self.agent = agent
        self.nova = agent.rig.nova()
        self.stop_flag = threading.Event()
        self.samples = 0
        self.violations: List[str] = []
        self.saw_waiting = 0  # samples with evacuations in flight (and the child correctly down)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            running_before = self.agent.child.running()
            busy = [m.status for m in self.nova.migrations.list(source_compute=self.agent.host,
                                                                  migration_type="evacuation")
                    if m.status in IN_PROGRESS_MIGRATION]
            running_after = self.agent.child.running()
            self.samples += 1
            if busy and (running_before or running_after):
                self.violations.append(f"nova-compute ran with evacuations {busy}")
            elif busy:
                self.saw_waiting += 1
            self.stop_flag.wait(0.2)


@pytest.fixture(scope="module")
def rig(openstack_rig):
    return openstack_rig


@pytest.fixture
def agent_on_rig(rig, tmp_path: Path):
    host = rig.compute_hosts[0]
    rig.restore_computes()
    rig.kill_compute(host)  # the agent takes over this host's nova-compute
    agent = AgentOnRig(rig, host, tmp_path)
    servers: List[str] = []
    agent.servers = servers
    yield agent
    agent.run("stop")
    rig.restore_computes()  # hands the host back to the rig's own nova-compute
    if servers:  # after the restore: deleting a server needs its host's nova-compute
        rig.delete_servers(servers)


def service(rig, host: str):
    return rig.compute_service(host)


def fence(rig, agent: AgentOnRig) -> None:
    """What a power fence plus fence_compute `off` leave behind."""
    host = agent.host
    agent.child.stop(_deadline(30))  # nova-compute dies with the power
    rig.power_off(host)  # its guests are gone
    nova = rig.nova()
    svc = service(rig, host)
    nova.services.force_down(svc.id, True)
    nova.services.disable_log_reason(svc.id, er.disabled_reason("fenced by the integration test"))
    agent.attrs.set(host, er.ATTRIBUTE, er.new(er.REQUESTED, "test").format())
    rig.power_on(host, start_compute=False)  # the node boots; only the agent may start nova-compute


def _deadline(seconds: float):
    from computeha.ocf_lib.deadline import Deadline
    return Deadline(seconds)


def test_host_name_mismatch_is_a_clear_configuration_error(agent_on_rig: AgentOnRig) -> None:
    a = agent_on_rig
    a.params["host"] = a.host.upper() + ".example.com"
    assert a.run("start") == int(ocf.Ocf.ERR_CONFIGURED)
    assert repr(a.host) in a.stderr and "set host=" in a.stderr, a.stderr
    assert not a.child.running()


def test_fenced_host_waits_for_its_evacuation_then_returns_to_service(agent_on_rig: AgentOnRig) -> None:
    a, rig = agent_on_rig, agent_on_rig.rig
    assert a.run("start") == 0, a.stderr
    servers = rig.boot_servers(3, hosts=[a.host], name_prefix="nc-it")
    a.servers.extend(s.id for s in servers)
    fence(rig, a)

    watcher = Watcher(a)
    watcher.start()
    result: Dict[str, int] = {}
    started = time.monotonic()
    starter = threading.Thread(target=lambda: result.setdefault("start", a.run("start", timeout_s=300)))
    starter.start()
    try:
        # NovaEvacuate's part, done by hand: claim, evacuate one by one, record done
        time.sleep(2)  # let start reach its wait (observable below: the child stays down)
        assert not a.child.running(), "nova-compute started while the record said requested"
        a.attrs.set(a.host, er.ATTRIBUTE, er.new(er.RUNNING, "test").format())
        nova = rig.nova()
        for sid in a.servers:
            nova.servers.evacuate(sid)
            assert not a.child.running()
            rig.wait_servers([sid], "ACTIVE", timeout=120)
        hosts = {getattr(nova.servers.get(sid), "OS-EXT-SRV-ATTR:host") for sid in a.servers}
        assert a.host not in hosts
        assert not a.child.running(), "nova-compute started before the record said done"
        # start itself returned at once (held); the return-to-service process waits
        starter.join(timeout=60)
        assert not starter.is_alive() and result.get("start") == 0, a.stderr
        assert a.run("monitor") == 0, a.stderr  # the resource counts as started meanwhile
        a.attrs.set(a.host, er.ATTRIBUTE, er.new(er.DONE, "3/3").format())
        deadline = time.monotonic() + 240
        state = StateDir(str(a.tmp), "NovaCompute", INSTANCE)
        while worker.worker_pid(state, RETURN_PIDFILE) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        watcher.stop_flag.set()
        watcher.join(timeout=10)
    elapsed = time.monotonic() - started
    assert a.run("monitor") == 0, (a.stderr, a.returner_stderr)
    assert a.child.running()
    assert watcher.violations == [], watcher.violations
    assert watcher.saw_waiting > 0, "the watcher never saw an evacuation in flight: the test proved nothing"
    print(f"returned to service {elapsed:.1f}s after start began; {watcher.samples} samples, "
          f"{watcher.saw_waiting} with evacuations in flight")

    svc = service(rig, a.host)
    assert (svc.state, svc.status, svc.forced_down) == ("up", "enabled", False)
    migrations = rig.nova().migrations.list(source_compute=a.host, migration_type="evacuation")
    assert migrations and {m.status for m in migrations} == {"completed"}
    assert a.attrs.get(a.host, er.ATTRIBUTE) is None
    assert rig.zombies() == {}
    # the host takes new instances
    new = rig.boot_servers(1, hosts=[a.host], name_prefix="nc-it-new")
    a.servers.extend(s.id for s in new)
    assert getattr(rig.nova().servers.get(new[0].id), "OS-EXT-SRV-ATTR:host") == a.host


def test_crash_of_nova_compute_alone_is_reported_and_restarted_without_evacuation(agent_on_rig: AgentOnRig) -> None:
    a, rig = agent_on_rig, agent_on_rig.rig
    # the rig's own nova-compute command line, run as the agent's child (idempotent start/stop and
    # probes are covered by ocf-tester in test_nova_compute_tools.py)
    assert a.run("monitor") == 7, a.stderr  # probe
    assert a.run("validate-all", OCF_CHECK_LEVEL="10") == 0, a.stderr
    assert a.run("start") == 0, a.stderr
    assert a.child.running()
    svc = service(rig, a.host)
    assert (svc.state, svc.status, svc.forced_down) == ("up", "enabled", False)
    assert a.run("monitor", OCF_CHECK_LEVEL="10") == 0, a.stderr
    servers = rig.boot_servers(2, hosts=[a.host], name_prefix="nc-crash")
    a.servers.extend(s.id for s in servers)
    pgid = a.child.recorded()
    os.killpg(pgid, 9)
    ChildProcess._wait_gone(pgid, _deadline(10))
    assert a.run("monitor") == 7  # recurring monitor: Pacemaker recovers by starting it here again
    svc = service(rig, a.host)
    assert not svc.forced_down and svc.status == "enabled"
    assert a.attrs.get(a.host, er.ATTRIBUTE) is None
    # Pacemaker's recovery: stop (nothing to do), start
    assert a.run("stop") == 0
    assert a.run("start") == 0, a.stderr
    assert service(rig, a.host).state == "up"
    nova = rig.nova()
    assert nova.migrations.list(source_compute=a.host, migration_type="evacuation") == []
    for sid in a.servers:
        s = nova.servers.get(sid)
        assert (s.status, getattr(s, "OS-EXT-SRV-ATTR:host")) == ("ACTIVE", a.host)
    # the guests lived through the crash: nova-compute's death never touched them
    assert set(a.servers) <= set(rig.guests(a.host))
