"""NovaCompute against an in-memory Nova that models what matters here.

The model: a service heartbeats ("up") only while our nova-compute child
runs and forced_down is false; `done` evacuations become `completed` only
when the host's nova-compute is running (init_host); force-up is refused with
400 while `done` records remain. The fake also records every moment the
child ran while an evacuation from the host was in flight: that list must
stay empty.
"""
from __future__ import annotations

import io
import os
import pwd
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from computeha.agents import evacuation_worker as worker
from computeha.agents import nova_host
from computeha.agents.compute_service import PID_FILE, ChildProcess, _proc_stat
from computeha.agents.nova_compute import RETURN_PIDFILE, RETURN_RESULT, RETURNER_ENV, NovaCompute
from computeha.ocf_lib import evacuation_record as er
from computeha.ocf_lib import ocf
from computeha.ocf_lib.attrs import ClusterAttributeError
from computeha.ocf_lib.deadline import Deadline
from computeha.ocf_lib.nova import Migration, NovaBadRequest, NovaUnavailable, Service, in_progress
from computeha.ocf_lib.state import StateDir
from tests.fakes.memory_attributes import MemoryAttributes
from tests.unit.fake_clock import FakeClock

HOST = "compute-0"
NODE = "compute-0"
SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.2)"]


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie of ours, the test process, counts as gone)."""
    stat = _proc_stat(pid)
    return stat is None or stat[0] == "Z"


class FakeNova:
    def __init__(self, host: str = HOST) -> None:
        self.services: Dict[str, Service] = {
            h: Service(f"id-{h}", h, "nova-compute", "down", "enabled", False)
            for h in (host, "compute-1", "compute-2")}
        self.migs: List[Migration] = []
        self.alive: Callable[[], bool] = lambda: False  # heartbeating
        self.process: Callable[[], bool] = lambda: self.alive()  # the nova-compute process runs
        self.on_poll: Callable[["FakeNova"], None] = lambda nova: None
        self.ran_during_evacuation: List[str] = []
        self.calls: List[str] = []
        self.unavailable = 0  # the next N calls fail as if Nova were down
        self.enabled_while_down = False
        self.heartbeats = 0
        self.writes = 0
        self.stale_up = 0
        self.host = host

    # the model ---------------------------------------------------------------------------
    def _tick(self) -> None:
        self.on_poll(self)
        alive = self.alive()
        if alive and in_progress([m for m in self.migs if m.source_compute == self.host]):
            self.ran_during_evacuation.append(str([m.status for m in self.migs]))
        if self.process():  # init_host starts by completing the done evacuations, heartbeats come later
            self.migs = [replace(m, status="completed") if m.status == "done" else m for m in self.migs]
        svc = self.services[self.host]
        if alive:  # heartbeat
            self.heartbeats += 1
            svc = replace(svc, updated_at=f"2026-01-01T00:00:{self.heartbeats:06d}")
        stale = not alive and self.stale_up > 0  # Nova still counts a recent heartbeat of a dead process
        self.stale_up -= 1 if stale else 0
        self.services[self.host] = replace(svc, state="up" if (alive or stale) and not svc.forced_down else "down")

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.unavailable:
            self.unavailable -= 1
            raise NovaUnavailable("connection refused")
        self._tick()

    def evacuate_from_host(self, count: int, status: str = "accepted") -> None:
        for i in range(count):
            self.migs.append(Migration(str(len(self.migs)), f"uuid-{i}", self.host, "compute-1", status,
                                       "evacuation", "2026-01-01T00:00:00"))

    def finish_evacuations(self) -> None:
        self.migs = [replace(m, status="done") if m.status in ("accepted", "pre-migrating") else m
                     for m in self.migs]

    # the Protocol ----------------------------------------------------------------------------
    def max_microversion(self) -> str:
        return "2.94"

    def check(self) -> None:
        self._call("check")

    def compute_services(self, host: Optional[str] = None) -> List[Service]:
        self._call("compute_services")
        return [s for h, s in self.services.items() if host is None or h == host]

    def force_down(self, service: Service, down: bool) -> Service:
        self._call(f"force_down {down}")
        if not down and any(m.status == "done" and m.source_compute == service.host for m in self.migs):
            raise NovaBadRequest("Unable to force up host as `done` evacuation migration records remain", 400)
        self.writes += 1  # like the real services row: any write bumps updated_at
        self.services[service.host] = replace(self.services[service.host], forced_down=down,
                                              updated_at=f"2026-01-01T00:01:{self.writes:06d}")
        return self.services[service.host]

    def set_enabled(self, service: Service, enabled: bool, reason: str = "") -> Service:
        self._call(f"set_enabled {enabled}")
        if self.services[service.host].state != "up":
            # real Nova: the placement trait is then only synced at the compute's next periodic update
            self.enabled_while_down = True
        self.services[service.host] = replace(self.services[service.host], status="enabled" if enabled else
                                              "disabled", disabled_reason="" if enabled else reason)
        return self.services[service.host]

    def migrations(self, source_host: Optional[str] = None, instance_uuid: Optional[str] = None,
                   migration_type: str = "evacuation", changes_since: Optional[str] = None,
                   created_after: Optional[float] = None) -> List[Migration]:
        self._call("migrations")
        return [m for m in self.migs if source_host in (None, m.source_compute)]

    def fence(self) -> None:
        """What fence_compute `off` leaves behind."""
        svc = self.services[self.host]
        self.services[self.host] = replace(svc, forced_down=True, state="down", status="disabled",
                                           disabled_reason=er.disabled_reason("fenced by test"))


class Harness:
    def __init__(self, tmp: Path, nova: FakeNova, attrs, **params: str) -> None:
        self.tmp = tmp
        self.nova = nova
        self.attrs = attrs
        self.clock = FakeClock()  # the return to service's polls run out without real waiting
        self.agent = NovaCompute(nova=lambda ctx: nova, attrs=lambda ctx: attrs, hostname="node-hostname",
                                 clock=self.clock, sleep=self.clock.sleep)
        self.agent.poll_interval = 0.01
        # the return-to-service process runs this agent's start with RETURNER_ENV set; here it runs inline
        # (the in-memory Nova lives in this process), so a held start returns once the sequence ended
        self.agent.launch_returner = self.returner_inline
        self.launched = 0
        self.params = {"nova_compute_command": " ".join(f"'{a}'" for a in SLEEPER),
                       "user": pwd.getpwuid(os.getuid()).pw_name, "host": HOST, "stop_grace": "5", **params}
        self.state = StateDir(str(tmp), "NovaCompute", "nc")
        self.child = ChildProcess(SLEEPER, self.state)
        nova.alive = self.child.running
        self.stderr = ""

    def returner_inline(self, ctx: ocf.OcfContext) -> int:
        self.launched += 1
        err = io.StringIO()
        code = ocf.run(self.agent, ["NovaCompute", "start"], dict(ctx.env, **{RETURNER_ENV: "1"}),
                       stdout=io.StringIO(), stderr=err)
        self.returner_stderr = err.getvalue()
        ctx.state.write_text(RETURN_RESULT, f"{code}\n")
        return os.getpid()

    def env(self, timeout_s: float = 20, **extra: str) -> Dict[str, str]:
        env = {"OCF_RESOURCE_INSTANCE": "nc", "HA_RSCTMP": str(self.tmp), "OCF_RESKEY_CRM_meta_on_node": NODE,
               "OCF_RESKEY_CRM_meta_timeout": str(int(timeout_s * 1000)), "PATH": os.environ["PATH"]}
        env.update({f"OCF_RESKEY_{k}": v for k, v in self.params.items()})
        env.update(extra)
        return env

    def run(self, action: str, timeout_s: float = 20, **extra: str) -> int:
        err = io.StringIO()
        code = ocf.run(self.agent, ["NovaCompute", action], self.env(timeout_s, **extra), stdout=io.StringIO(),
                       stderr=err)
        self.stderr = err.getvalue()
        return code


@pytest.fixture
def nova() -> FakeNova:
    return FakeNova()


@pytest.fixture
def h(tmp_path: Path, nova: FakeNova):
    harness = Harness(tmp_path, nova, MemoryAttributes())
    yield harness
    harness.child.stop(Deadline(10))


def test_plain_start_runs_the_child_and_waits_for_the_service_up(h: Harness, nova: FakeNova) -> None:
    assert h.run("monitor") == 7  # probe before start
    assert h.run("start") == 0, h.stderr
    assert h.child.running()
    assert nova.services[HOST].state == "up"
    assert "force_down False" not in nova.calls  # not fenced: Nova's flags are left alone
    assert h.run("monitor") == 0
    assert h.run("monitor", OCF_CHECK_LEVEL="10") == 0


def test_start_waits_for_a_heartbeat_of_its_own_nova_compute(h: Harness, nova: FakeNova) -> None:
    """A nova-compute killed a moment ago still counts as "up" in Nova for service_down_time."""
    nova.services[HOST] = replace(nova.services[HOST], state="up", updated_at="old heartbeat")
    nova.stale_up = 1000
    ticks = {"n": 0}

    def alive_after_init_host() -> bool:
        if not h.child.running():
            return False
        ticks["n"] += 1
        return ticks["n"] > 10  # init_host takes a while before the first heartbeat
    nova.alive = alive_after_init_host
    assert h.run("start") == 0, h.stderr
    assert nova.heartbeats >= 1, "start returned on the stale 'up' of the previous nova-compute"


def test_fenced_start_does_not_take_its_own_force_up_for_a_heartbeat(h: Harness, nova: FakeNova) -> None:
    """Fenced shortly after a heartbeat: Nova would say "up" right after force-up, before init_host ends."""
    nova.fence()
    nova.services[HOST] = replace(nova.services[HOST], updated_at="pre-fence heartbeat")
    nova.stale_up = 1000
    ticks = {"n": 0}

    def alive_after_init_host() -> bool:
        if not h.child.running():
            return False
        ticks["n"] += 1
        return ticks["n"] > 10
    nova.alive = alive_after_init_host
    nova.process = h.child.running
    assert h.run("start") == 0, h.stderr
    assert nova.heartbeats >= 1, "start returned without a heartbeat after its own force-up"


def test_start_and_stop_are_idempotent(h: Harness) -> None:
    assert h.run("start") == 0
    pid = h.child.recorded()
    assert h.run("start") == 0
    assert h.child.recorded() == pid, "a second start must not spawn a second nova-compute"
    assert h.run("stop") == 0
    assert not h.child.running() and gone(pid)
    assert h.run("stop") == 0
    assert h.run("monitor") == 7


def test_fenced_host_waits_for_evacuation_then_returns_in_order(h: Harness, nova: FakeNova) -> None:
    nova.fence()
    nova.evacuate_from_host(3)
    h.attrs.set(NODE, er.ATTRIBUTE, er.new(er.RUNNING, "controller-0").format())
    polls = {"n": 0}

    def progress(n: FakeNova) -> None:
        polls["n"] += 1
        if polls["n"] == 10:
            n.finish_evacuations()  # migrations done, but the record still says running
        if polls["n"] == 20:
            h.attrs.set(NODE, er.ATTRIBUTE, er.new(er.DONE, "3/3").format())
    nova.on_poll = progress

    assert h.run("start") == 0, h.stderr
    assert polls["n"] >= 20, "start returned before the record said done"
    assert nova.ran_during_evacuation == []
    svc = nova.services[HOST]
    assert (svc.state, svc.forced_down, svc.status) == ("up", False, "enabled")
    assert {m.status for m in nova.migs} == {"completed"}
    assert h.attrs.get(NODE, er.ATTRIBUTE) is None
    # forced_down is cleared only after nova-compute ran (and completed the records), then enable
    order = [c for c in nova.calls if c.startswith(("force_down", "set_enabled"))]
    assert order == ["force_down False", "set_enabled True"]
    assert not nova.enabled_while_down, "enabled before Nova saw the service up"



def test_start_waits_for_in_progress_evacuations_even_when_the_record_says_done(h: Harness, nova: FakeNova) -> None:
    nova.fence()
    nova.evacuate_from_host(2, status="pre-migrating")
    h.attrs.set(NODE, er.ATTRIBUTE, er.new(er.DONE, "2/2").format())
    polls = {"n": 0}

    def progress(n: FakeNova) -> None:
        polls["n"] += 1
        if polls["n"] == 8:
            n.finish_evacuations()
    nova.on_poll = progress
    assert h.run("start") == 0, h.stderr
    assert nova.ran_during_evacuation == []
    assert nova.services[HOST].state == "up"


def test_start_times_out_while_the_evacuation_runs_and_never_starts_nova_compute(h: Harness, nova: FakeNova) -> None:
    nova.fence()
    nova.evacuate_from_host(1)
    h.attrs.set(NODE, er.ATTRIBUTE, er.new(er.RUNNING).format())
    # start itself returns at once; the return-to-service process gives up at the start timeout
    assert h.run("start", timeout_s=3) == 0, h.stderr
    assert "evacuation" in h.returner_stderr and "record running" in h.returner_stderr, h.returner_stderr
    assert not h.child.running()
    assert nova.services[HOST].forced_down
    assert h.attrs.get(NODE, er.ATTRIBUTE).startswith("running;")
    assert h.run("monitor") == 1  # the failure reaches Pacemaker through monitor
    assert not h.child.running()


def test_a_nova_compute_started_behind_our_back_is_stopped_while_evacuating(h: Harness, nova: FakeNova) -> None:
    nova.fence()
    # e.g. a unit enabled at boot: started outside the agent, so no early-exit watch (settle) is needed
    replace(h.child, settle=0.0).start(Deadline(5))
    assert h.child.running()
    nova.migs = []
    nova.on_poll = lambda n: None
    h.attrs.set(NODE, er.ATTRIBUTE, er.new(er.REQUESTED).format())
    h.nova.alive = lambda: False  # not counted: we check the agent stopped it below
    assert h.run("start", timeout_s=3) == 0  # held: stopped at once, the process waits (and times out)
    assert not h.child.running()
    assert h.run("monitor") == 1
    assert not h.child.running()


def test_an_admin_disable_is_kept_and_failed_records_release_the_host(h: Harness, nova: FakeNova) -> None:
    nova.fence()
    nova.services[HOST] = replace(nova.services[HOST], disabled_reason="maintenance by admin")
    nova.evacuate_from_host(1, status="failed")
    h.attrs.set(NODE, er.ATTRIBUTE, er.new(er.FAILED, "0/1 no valid host").format())
    assert h.run("start") == 0, h.stderr
    svc = nova.services[HOST]
    assert (svc.state, svc.forced_down, svc.status) == ("up", False, "disabled")
    assert "set_enabled True" not in nova.calls
    assert h.attrs.get(NODE, er.ATTRIBUTE) is None


def test_start_rides_out_a_nova_outage(h: Harness, nova: FakeNova) -> None:
    nova.fence()
    nova.unavailable = 5
    assert h.run("start") == 0, h.stderr
    assert nova.services[HOST].state == "up"


def test_unreadable_record_with_forced_down_keeps_waiting(tmp_path: Path, nova: FakeNova) -> None:
    class Broken(MemoryAttributes):
        def get(self, node, name):
            raise ClusterAttributeError("Could not connect to the CIB")
    h = Harness(tmp_path, nova, Broken())
    nova.fence()
    try:
        assert h.run("start", timeout_s=3) == 0  # held (in doubt), the process waits and times out
        assert not h.child.running()
        assert h.run("monitor") == 1
        assert not h.child.running()
    finally:
        h.child.stop(Deadline(5))


def test_unreadable_record_without_fence_evidence_starts(tmp_path: Path, nova: FakeNova) -> None:
    class Broken(MemoryAttributes):
        def get(self, node, name):
            raise ClusterAttributeError("Could not connect to the CIB")
    h = Harness(tmp_path, nova, Broken())
    try:
        assert h.run("start") == 0, h.stderr
    finally:
        h.child.stop(Deadline(5))


def test_crashed_child_reports_not_running_without_touching_nova(h: Harness, nova: FakeNova) -> None:
    assert h.run("start") == 0
    pgid = h.child.recorded()
    os.killpg(pgid, 9)
    ChildProcess._wait_gone(pgid, Deadline(5))
    nova.calls.clear()
    assert h.run("monitor") == 7
    assert h.run("monitor", OCF_CHECK_LEVEL="10") == 7
    assert nova.calls == [], "a crash must not lead to any Nova call (and certainly no evacuation request)"
    assert h.attrs.get(NODE, er.ATTRIBUTE) is None
    assert h.run("stop") == 0
    assert h.run("start") == 0 and h.child.running()


def test_deep_monitor_fails_when_nova_reports_the_service_down_or_forced_down(h: Harness, nova: FakeNova) -> None:
    assert h.run("start") == 0
    nova.alive = lambda: False  # heartbeat lost although the process lives
    assert h.run("monitor", OCF_CHECK_LEVEL="10") == 1
    assert "down" in h.stderr
    nova.alive = h.child.running
    nova.fence()
    assert h.run("monitor", OCF_CHECK_LEVEL="10") == 1
    assert "forced down" in h.stderr
    nova.unavailable = 10
    assert h.run("monitor", OCF_CHECK_LEVEL="10") == 0  # the control plane is not this node's fault


def test_host_unknown_to_nova_is_a_clear_configuration_error(h: Harness, nova: FakeNova) -> None:
    h.params["host"] = "compute-0.example.com"
    assert h.run("start") == int(ocf.Ocf.ERR_CONFIGURED)
    assert "compute-0.example.com" in h.stderr and "'compute-0'" in h.stderr, h.stderr
    assert not h.child.running()
    assert h.run("validate-all", OCF_CHECK_LEVEL="10") == int(ocf.Ocf.ERR_CONFIGURED)


def test_derived_host_mismatch_is_local_to_the_node(h: Harness, tmp_path: Path) -> None:
    conf = tmp_path / "nova.conf"
    conf.write_text("[DEFAULT]\nhost = COMPUTE-0\n")
    h.params.pop("host")
    h.params["nova_conf"] = str(conf)
    assert h.run("start") == int(ocf.Ocf.ERR_ARGS)
    assert str(conf) in h.stderr and "'compute-0'" in h.stderr, h.stderr


def test_host_is_read_from_the_commands_config_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "nova.conf").write_text("[DEFAULT]\nhost = a\n[libvirt]\nhost = nope\n")
    (tmp_path / "compute.conf").write_text("[DEFAULT]\nhost = b\n")
    (tmp_path / "d" / "10-x.conf").write_text("[DEFAULT]\nhost = c %(interp)s\n")
    argv = ["nova-compute", "--config-file", str(tmp_path / "nova.conf"), f"--config-file={tmp_path}/compute.conf"]
    assert nova_host.resolve("", nova_host.config_sources(argv)) == nova_host.HostName("b", f"{tmp_path}/compute.conf")
    argv += ["--config-dir", str(tmp_path / "d")]
    assert nova_host.resolve("", nova_host.config_sources(argv)).name == "c %(interp)s"
    assert nova_host.resolve("", [str(tmp_path / "missing.conf")], "uname-n").name == "uname-n"
    assert nova_host.resolve("p", nova_host.config_sources(argv)).source == "parameter host"


def test_service_mode_uses_the_given_commands(h: Harness, tmp_path: Path) -> None:
    flag = tmp_path / "svc-running"
    py = sys.executable
    h.params.pop("nova_compute_command")
    h.params.update(
        service_start_cmd=f"{py} -c \"open('{flag}','w').close()\"",
        service_stop_cmd=f"{py} -c \"import os; os.remove('{flag}')\"",
        service_status_cmd=f"{py} -c \"import os,sys; sys.exit(0 if os.path.exists('{flag}') else 3)\"")
    h.nova.alive = flag.exists
    assert h.run("monitor") == 7
    assert h.run("start") == 0, h.stderr
    assert flag.exists() and h.run("monitor") == 0
    assert h.run("stop") == 0
    assert not flag.exists() and h.run("monitor") == 7


def test_service_mode_needs_all_three_commands(h: Harness) -> None:
    h.params["service_start_cmd"] = "systemctl start openstack-nova-compute"
    assert h.run("validate-all") == int(ocf.Ocf.ERR_CONFIGURED)
    assert "service_stop_cmd" in h.stderr and "service_status_cmd" in h.stderr


@pytest.mark.parametrize("params", [{"nova_compute_env": "DEBUG=1 NOEQUALS"},
                                    {"service_start_cmd": "/bin/true", "nova_compute_command": ""}])
def test_broken_configuration_is_a_clear_error_in_every_action(h: Harness, params: Dict[str, str]) -> None:
    h.params.update(params)
    assert h.run("validate-all") == int(ocf.Ocf.ERR_CONFIGURED)
    assert h.run("monitor") == 7  # probe of a resource that never ran here
    assert h.run("stop") == 0
    assert h.run("start") == int(ocf.Ocf.ERR_CONFIGURED)
    assert "internal error" not in h.stderr and ("nova_compute_env" in h.stderr or "service_stop_cmd" in h.stderr)


def test_child_that_exits_at_once_fails_the_start(h: Harness) -> None:
    h.params["nova_compute_command"] = f"{sys.executable} -c 'raise SystemExit(3)'"
    assert h.run("start") == 1
    assert "exited with status 3" in h.stderr
    assert h.run("monitor") == 7


def test_stop_escalates_to_kill_when_term_is_ignored(tmp_path: Path) -> None:
    stubborn = [sys.executable, "-c", textwrap.dedent("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True: time.sleep(0.1)""")]
    child = ChildProcess(stubborn, StateDir(str(tmp_path), "NovaCompute", "x"), term_grace=0.5)
    child.start(Deadline(5))
    pgid = child.recorded()
    child.stop(Deadline(10))
    assert gone(pgid) and not child.running()


def test_stale_pid_file_of_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    state = StateDir(str(tmp_path), "NovaCompute", "x")
    state.write_text(PID_FILE, f"{os.getpid()} 1\n")  # our own PID, wrong start time
    child = ChildProcess(SLEEPER, state)
    assert not child.running()
    child.stop(Deadline(2))  # must not signal the test process
    assert not state.exists(PID_FILE)


def test_stop_with_a_broken_configuration_still_stops_our_child(h: Harness) -> None:
    assert h.run("start") == 0
    pgid = h.child.recorded()
    h.params["stop_grace"] = "not-a-number"
    assert h.run("stop") == 0
    assert gone(pgid)


def test_metadata_and_a_level0_monitor_do_not_import_the_nova_client(tmp_path: Path) -> None:
    import subprocess
    code = textwrap.dedent(f"""
        import sys, io
        from computeha.agents.nova_compute import NovaCompute
        from computeha.ocf_lib import ocf
        env = {{"OCF_RESOURCE_INSTANCE": "nc", "HA_RSCTMP": {str(tmp_path)!r}}}
        ocf.run(NovaCompute(), ["x", "meta-data"], env, stdout=io.StringIO())
        assert ocf.run(NovaCompute(), ["x", "monitor"], env, stdout=io.StringIO()) == 7
        heavy = [m for m in ("novaclient", "keystoneauth1") if m in sys.modules]
        print(heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_child_runs_as_the_configured_user_with_its_home(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("switching users needs root")
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    out_dir = Path(tempfile.mkdtemp(prefix="computeha-nc-user-"))
    try:
        os.chmod(out_dir, 0o777)
        out = out_dir / "who"
        script = f'id -u > {out}.tmp; echo "$HOME" >> {out}.tmp; mv {out}.tmp {out}; exec sleep 30'
        child = ChildProcess(["/bin/sh", "-c", script], StateDir(str(tmp_path), "NovaCompute", "u"),
                             env={"PATH": "/usr/bin:/bin", "HOME": os.path.expanduser("~")}, user="nobody")
        child.start(Deadline(5))
        try:
            Deadline(10).poll(lambda: True if out.exists() else None, interval=0.05, what="the child's report")
            uid, home = out.read_text().split()
            assert (int(uid), home) == (nobody.pw_uid, nobody.pw_dir)
        finally:
            child.stop(Deadline(10))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def test_programs_the_agent_runs_do_not_inherit_ocf_parameters(h: Harness, tmp_path: Path) -> None:
    """Service commands (and crm_node/crm_attribute, password_script) get no OCF_RESKEY_*: password is one."""
    dump = tmp_path / "status.env"
    status = tmp_path / "status.sh"
    status.write_text(f"#!/bin/sh\nenv > {dump}\nexit 3\n")
    status.chmod(0o755)
    h.params.update(service_start_cmd=str(status), service_stop_cmd=str(status), service_status_cmd=str(status),
                    password="s3cret-never-inherited")
    assert h.run("monitor") == 7
    text = dump.read_text()
    assert "s3cret-never-inherited" not in text and "OCF_RESKEY_" not in text
    assert "PATH=" in text  # the environment is filtered, not emptied


# --- start never waits for an evacuation inside the action --------------------------------------

def _held(h: Harness, nova: FakeNova) -> None:
    nova.fence()
    nova.evacuate_from_host(2)
    h.attrs.set(NODE, er.ATTRIBUTE, er.new(er.RUNNING, "controller-0").format())


def test_held_start_hands_the_sequence_to_a_process_and_returns(h: Harness, nova: FakeNova) -> None:
    _held(h, nova)
    sleeper = subprocess.Popen(SLEEPER, start_new_session=True)
    launched: List[Dict[str, str]] = []

    def launch(ctx: ocf.OcfContext) -> int:  # the real launch records the process the same way
        launched.append(dict(ctx.env))
        ctx.state.write_text(RETURN_PIDFILE, f"{sleeper.pid} {worker._stat(sleeper.pid)[1]}\n")
        return sleeper.pid

    h.agent.launch_returner = launch
    try:
        assert h.run("start") == 0, h.stderr
        assert len(launched) == 1
        assert not h.child.running(), "nova-compute must not run while the evacuation is in flight"
        assert nova.writes == 0 and nova.services[HOST].forced_down
        # monitor (and a probe) report the resource started while the process works; a second
        # start (say, after a killed start) does not launch another one
        assert h.run("monitor") == 0 and h.run("monitor", OCF_RESKEY_CRM_meta_interval="0") == 0
        assert h.run("start") == 0 and len(launched) == 1
        # stop ends that process first, then there is nothing left
        assert h.run("stop") == 0, h.stderr
        sleeper.wait(timeout=10)
        assert h.run("monitor") == 7
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_held_start_runs_the_whole_sequence_in_the_returner(h: Harness, nova: FakeNova) -> None:
    _held(h, nova)
    polls = {"n": 0}

    def progress(n: FakeNova) -> None:
        polls["n"] += 1
        if polls["n"] == 8:
            n.finish_evacuations()
            h.attrs.set(NODE, er.ATTRIBUTE, er.new(er.DONE, "2/2").format())

    nova.on_poll = progress
    nova.process = h.child.running
    assert h.run("start") == 0, h.stderr
    assert h.launched == 1
    assert nova.ran_during_evacuation == []
    assert h.run("monitor") == 0  # the process ended with 0: back to plain monitoring
    assert h.child.running() and not nova.services[HOST].forced_down
    assert h.attrs.get(NODE, er.ATTRIBUTE) is None


def test_a_failed_return_to_service_is_a_monitor_error(h: Harness, nova: FakeNova) -> None:
    _held(h, nova)

    def launch(ctx: ocf.OcfContext) -> int:
        ctx.state.write_text(RETURN_PIDFILE, "999999 0\n")
        ctx.state.write_text(RETURN_RESULT, "1\n")
        return 999999

    h.agent.launch_returner = launch
    assert h.run("start") == 0, h.stderr
    assert h.run("monitor") == 1
    assert "return to service of this host failed (exit 1)" in h.stderr
    assert not h.state.exists(RETURN_RESULT) and not h.state.exists(RETURN_PIDFILE)
