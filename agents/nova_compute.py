"""NovaCompute: runs nova-compute on a compute node, and keeps it down until its old instances are safe.

After the node was fenced, nova-compute may start only once the evacuation of
its former instances is finished; then it starts while the service is still
forced down (its start-up destroys the evacuated guests' leftovers and
completes their migration records), and the service is returned to Nova (see
return_to_service.py). When the evacuation is still running, `start` does not
wait for it inside the action: Pacemaker's controller waits for every
in-flight action before it reacts to a new failure (and under load runs one
action at a time), so a start waiting for an evacuation would hold back, say,
the fence of a lost controller that runs NovaEvacuate. `start` then launches
the return-to-service process (its own process group, PID file in the state
directory; the same sequence, bounded by the start timeout) and returns;
`monitor` reports the resource running while that process works, and its
failure as an error; `stop` ends it first. `stop` stops only nova-compute,
never the instances. `monitor` checks the process (level 0, no Nova call) and,
at level 10, that Nova sees the service up.
"""
from __future__ import annotations

import shlex
import time
from typing import Callable, List, Optional

from computeha.ocf_lib import ocf
from computeha.ocf_lib.attrs import CibAttributes, NodeAttributes
from computeha.ocf_lib.exitcodes import AgentError, Ocf
from computeha.ocf_lib.params import ActionSpec, AgentInfo, Kind, Param, ParamTable, Problem, Values
from computeha.ocf_lib.runner import Runner

from . import evacuation_worker as worker
from . import nova_host
from .compute_service import ChildProcess, ComputeService, ManagedService, child_env
from .nova_compute_params import CREDENTIALS, child_runner, nova_factory

ACTIVE = "active"  # state file: this node started nova-compute through the agent
RETURN_PIDFILE = "return.pid"  # the background return-to-service process
RETURN_RESULT = "return.result"  # its exit code, written when it ends
RETURNER_ENV = "COMPUTEHA_RETURN_TO_SERVICE"  # set in that process: its `start` runs the whole sequence


def _argv_check(value: str) -> Optional[str]:
    try:
        shlex.split(value)
    except ValueError as err:
        return f"cannot be split into arguments: {err}"
    return None


def _env_check(value: str) -> Optional[str]:
    problem = _argv_check(value)
    if problem:
        return problem
    bad = [item for item in shlex.split(value) if "=" not in item or item.startswith("=")]
    return f"items must be KEY=VALUE: {', '.join(repr(b) for b in bad[:3])}" if bad else None


LOCAL = ParamTable([
    Param("host", Kind.STRING, "Nova host name of this node",
          "The name this node's nova-compute registers as in Nova. Default: [DEFAULT] host of the nova.conf "
          "files nova-compute reads (the --config-file/--config-dir of nova_compute_command, else "
          "/etc/nova/nova.conf and /etc/nova/nova.conf.d), else the system host name, which is Nova's own "
          "default. Checked against Nova at start: a name Nova does not know is a configuration error.",
          default=""),
    Param("nova_conf", Kind.STRING, "nova.conf files or folders to read [DEFAULT] host from",
          "Space-separated files or folders (*.conf inside, sorted), later ones overriding earlier ones, as "
          "oslo.config does. Default: those nova_compute_command names, else /etc/nova/nova.conf "
          "/etc/nova/nova.conf.d.", default="", check=_argv_check),
    Param("nova_compute_command", Kind.STRING, "nova-compute command line (supervised child)",
          "Program and arguments, split like a shell would but never run by a shell. The agent starts it "
          "in its own process group, records its PID in the resource's state folder, and stops it with "
          "TERM then KILL. Unused when service_start_cmd is set.",
          default="/usr/bin/nova-compute", check=_argv_check),
    Param("nova_compute_env", Kind.STRING, "Extra environment of the nova-compute child",
          "Space-separated KEY=VALUE items added to a minimal environment (PATH, HOME, TZ, TMPDIR).",
          default="", check=_env_check),
    Param("user", Kind.STRING, "User that runs the nova-compute child",
          "The agent's own user when it is the same (tests); nova-compute should not run as root.",
          default="nova"),
    Param("output_file", Kind.STRING, "Where the child's stdout/stderr go",
          "nova-compute logs through its own configuration; this catches what it prints before that.",
          default="/dev/null"),
    Param("stop_grace", Kind.SECONDS, "Seconds between TERM and KILL when stopping the child",
          "Capped by the stop timeout; nova-compute's graceful shutdown takes several seconds.",
          default=60, minimum=0),
    Param("service_start_cmd", Kind.STRING, "Command that starts nova-compute (service mode)",
          "For hosts where the service manager runs nova-compute, e.g. 'systemctl start "
          "openstack-nova-compute'. The unit must not be enabled at boot: only this agent may start it. "
          "Needs service_stop_cmd and service_status_cmd.", default="", check=_argv_check),
    Param("service_stop_cmd", Kind.STRING, "Command that stops nova-compute (service mode)",
          "E.g. 'systemctl stop openstack-nova-compute'.", default="", check=_argv_check),
    Param("service_status_cmd", Kind.STRING, "Command whose exit status 0 means nova-compute runs (service mode)",
          "E.g. 'systemctl is-active --quiet openstack-nova-compute'.", default="", check=_argv_check),
    Param("evacuation_delay", Kind.SECONDS, "Extra wait after the evacuation finished, before nova-compute starts",
          "The agent waits for the evacuation itself (cluster record and Nova's migrations); this optional "
          "delay gives storage time to release locks or leases. Counted inside the start timeout.",
          default=0, minimum=0),
])

TABLE = LOCAL + CREDENTIALS


def split(text: str) -> List[str]:
    return shlex.split(text or "")


class NovaCompute(ocf.OcfAgent):
    info = AgentInfo(
        name="NovaCompute",
        shortdesc="nova-compute, held down until a fenced node's instances are evacuated",
        longdesc=(
            "Runs nova-compute on an OpenStack compute node (usually a pacemaker-remote node), as a supervised "
            "child or through the service manager. After the node was fenced, nova-compute starts only once the "
            "cluster record computeha-evacuate says done or failed and Nova lists no evacuation from this host in "
            "progress; then it starts while the service is still forced down, so that nova-compute cleans up the "
            "evacuated guests and completes their migration records; then forced_down is cleared, the service "
            "enabled if Instance HA disabled it, and the record cleared. If the evacuation is still running, "
            "start does not wait inside the action (that would hold back Pacemaker's reaction to other "
            "failures): it hands the sequence to a background process bounded by the start timeout and returns; "
            "monitor reports the resource running meanwhile and that process's failure as an error. "
            "Stop never stops instances. Monitor checks "
            "the process; at depth 10 also that Nova reports the service up. A crashed nova-compute is reported "
            "as not running so that Pacemaker restarts it on the same node: nothing here requests an evacuation."),
        version="0.1.0",
        actions=(ActionSpec("start", 600), ActionSpec("stop", 120), ActionSpec("monitor", 30, interval=10, depth=0),
                 ActionSpec("monitor", 60, interval=60, depth=10), ActionSpec("validate-all", 30),
                 ActionSpec("meta-data", 5)),
    )
    table = TABLE
    poll_interval = 1.0  # seconds between Nova/record polls during start (grows to 5 s)

    def __init__(self, nova: Optional[Callable[[ocf.OcfContext], object]] = None,
                 attrs: Optional[Callable[[ocf.OcfContext], NodeAttributes]] = None,
                 hostname: Optional[str] = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._nova_factory = nova or nova_factory
        self._attrs_factory = attrs or (lambda ctx: CibAttributes(self.runner(ctx)))
        self._hostname = hostname
        self._clock = clock  # times the return to service's polls of Nova and the cluster
        self._sleep = sleep

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def runner(ctx: ocf.OcfContext) -> Runner:
        return child_runner(ctx)

    def service(self, ctx: ocf.OcfContext) -> ComputeService:
        v = ctx.values
        if v.service_start_cmd:
            return ManagedService(split(v.service_start_cmd), split(v.service_stop_cmd),
                                  split(v.service_status_cmd), self.runner(ctx))
        return ChildProcess(split(v.nova_compute_command), ctx.state, env=child_env(ctx.env, split(v.nova_compute_env)),
                            user=v.user, output=v.output_file, term_grace=float(v.stop_grace))

    def host(self, ctx: ocf.OcfContext) -> nova_host.HostName:
        v = ctx.values
        sources = split(v.nova_conf) or nova_host.config_sources(split(v.nova_compute_command)) \
            or list(nova_host.DEFAULT_CONFIG)
        try:
            return nova_host.resolve(v.host, sources, self._hostname)
        except ValueError as err:
            raise AgentError(str(err), Ocf.ERR_INSTALLED) from None

    def node(self, ctx: ocf.OcfContext) -> str:
        """The Pacemaker node name the cluster record is kept on."""
        if ctx.node:
            return ctx.node
        runner = self.runner(ctx)
        result = runner.run(["crm_node", "-n"], timeout=ctx.deadline.cap(10)) if runner.which("crm_node") else None
        if result is not None and result.ok and result.stdout.strip():
            return result.stdout.strip()
        import socket
        return socket.gethostname()

    def nova(self, ctx: ocf.OcfContext):
        # one adapter (one keystoneauth1 session) per action
        if "nova" not in ctx.extra:
            ctx.extra["nova"] = self._nova_factory(ctx)
        return ctx.extra["nova"]

    def recorded_active(self, ctx: ocf.OcfContext) -> bool:
        return ctx.state.exists(ACTIVE) or ctx.state.exists("nova-compute.pid")

    # -- validation --------------------------------------------------------------------------
    def static_problems(self, values: Values) -> List[Problem]:
        problems = []
        if values.service_start_cmd:
            for name in ("service_stop_cmd", "service_status_cmd"):
                if not values[name]:
                    problems.append(Problem(name, "is required when service_start_cmd is set"))
        elif not split(values.nova_compute_command):
            problems.append(Problem("nova_compute_command", "is empty"))
        return problems

    def validate(self, ctx: ocf.OcfContext) -> List[Problem]:
        problems = self.static_problems(ctx.values)
        if problems:
            return problems
        v = ctx.values
        program = split(v.service_start_cmd or v.nova_compute_command)[0]
        if not self.runner(ctx).which(program):
            problems.append(Problem("service_start_cmd" if v.service_start_cmd else "nova_compute_command",
                                    f"{program} is not installed or not executable on this node", Ocf.ERR_INSTALLED))
        if v.user and not v.service_start_cmd:
            import pwd
            try:
                pwd.getpwnam(v.user)
            except KeyError:
                problems.append(Problem("user", f"user {v.user!r} does not exist on this node", Ocf.ERR_INSTALLED))
        try:
            host = self.host(ctx)
        except AgentError as err:
            return problems + [Problem("nova_conf", err.reason, Ocf.ERR_INSTALLED)]
        if ctx.check_level >= 10 or ctx.action == "start":
            problems += self.check_host(ctx, host)
        return problems

    def check_host(self, ctx: ocf.OcfContext, host: nova_host.HostName) -> List[Problem]:
        from computeha.ocf_lib.nova import NovaError
        try:
            nova = self.nova(ctx)
            services = nova.compute_services()
        except NovaError as err:
            # not a configuration problem: start polls Nova until its deadline
            ctx.log.warning("cannot check host %s against Nova now: %s", host.name, err)
            return []
        known = sorted({s.host for s in services if s.binary == "nova-compute"})
        if host.name in known:
            return []
        # A name given as a parameter is wrong for the whole resource; a derived one only on this node.
        code = Ocf.ERR_CONFIGURED if host.source == "parameter host" else Ocf.ERR_ARGS
        return [Problem("host", nova_host.mismatch_message(host, known), code)]

    # -- actions ------------------------------------------------------------------------------
    def start(self, ctx: ocf.OcfContext) -> int:
        from .return_to_service import ReturnToService
        host = self.host(ctx)
        service = self.service(ctx)
        flow = ReturnToService(self.nova(ctx), self._attrs_factory(ctx), service, host.name, self.node(ctx),
                               ctx.log, evacuation_delay=float(ctx.values.evacuation_delay),
                               poll_interval=self.poll_interval, max_poll_interval=5 * self.poll_interval,
                               clock=self._clock, sleep=self._sleep)
        ctx.state.write_text(ACTIVE, host.name)
        if ctx.env.get(RETURNER_ENV) != "1":
            if worker.worker_pid(ctx.state, RETURN_PIDFILE) is not None:
                return Ocf.SUCCESS  # a start killed after the launch, run again: the process works on
            why = flow.hold_reason()
            if why is not None:
                if service.running():  # started behind our back: it must not race the rebuilds
                    ctx.log.warning("nova-compute runs while %s must wait (%s): stopping it", host.name, why)
                    service.stop(ctx.deadline)
                ctx.state.remove(RETURN_RESULT)
                pid = self.launch_returner(ctx)
                ctx.log.info("nova-compute of %s held until its evacuation is finished (%s): process %d returns "
                             "it to service, start returns now", host.name, why, pid)
                return Ocf.SUCCESS
        flow.run(ctx.deadline)
        return Ocf.SUCCESS

    def launch_returner(self, ctx: ocf.OcfContext) -> int:
        """The return-to-service process: this agent's `start` again, in a process of its own
        (parameters through the environment, never argv), bounded by the same start timeout."""
        env = dict(ctx.env, **{RETURNER_ENV: "1"})
        return worker.launch(ctx.state, env, __name__, name=RETURN_PIDFILE, entry="returner_main")

    def returner(self, ctx: ocf.OcfContext) -> Optional[str]:
        """"running" while the return-to-service process works, "ok" or "failed (exit N)" once it
        ended, None when there is none."""
        if worker.worker_pid(ctx.state, RETURN_PIDFILE) is not None:
            return "running"
        result = ctx.state.read_text(RETURN_RESULT)
        if result is None:
            return "failed (it was killed)" if ctx.state.exists(RETURN_PIDFILE) else None
        code = result.strip()
        return "ok" if code == "0" else f"failed (exit {code or '?'})"

    def stop(self, ctx: ocf.OcfContext) -> int:
        broken = ctx.problems or self.static_problems(ctx.values)
        if broken and not ctx.state.exists("nova-compute.pid"):
            # Broken configuration and no child of ours: nothing we could have started runs.
            ctx.state.remove(ACTIVE)
            return Ocf.SUCCESS
        # the return-to-service process first: it must not start nova-compute behind this stop
        if not worker.stop(ctx.state, ctx.deadline, ctx.log, name=RETURN_PIDFILE):
            raise AgentError("the return-to-service process could not be stopped")
        ctx.state.remove(RETURN_RESULT)
        # with a broken configuration, the PID file alone is enough to stop our child
        service = self.service(ctx) if not broken else ChildProcess([], ctx.state)
        service.stop(ctx.deadline)
        ctx.state.remove(ACTIVE)
        ctx.log.info("nova-compute stopped (instances left running)")
        return Ocf.SUCCESS

    def monitor(self, ctx: ocf.OcfContext) -> int:
        problems = self.static_problems(ctx.values)
        if problems:
            if not self.recorded_active(ctx):
                return Ocf.NOT_RUNNING
            raise AgentError("invalid configuration: " + "; ".join(str(p) for p in problems), Ocf.ERR_CONFIGURED)
        returning = self.returner(ctx)
        if returning == "running":
            return Ocf.SUCCESS  # held on purpose: the resource is started, nova-compute comes later
        if returning is not None:
            worker.stop(ctx.state, ctx.deadline, ctx.log, name=RETURN_PIDFILE)  # forget the PID file
            ctx.state.remove(RETURN_RESULT)
            if returning != "ok":
                raise AgentError(f"the return to service of this host {returning}: see the log; Pacemaker "
                                 f"recovers by stopping and starting the resource", Ocf.ERR_GENERIC)
        service = self.service(ctx)
        if not service.running():
            if ctx.state.exists(ACTIVE) and not ctx.is_probe:
                # Not 1: nothing to stop. Pacemaker recovers 7 by starting it again on this node.
                ctx.log.error("nova-compute is not running (crashed or killed); reporting it stopped "
                              "so that Pacemaker restarts it here")
            return Ocf.NOT_RUNNING
        if ctx.check_level < 10:
            return Ocf.SUCCESS
        return self.monitor_nova(ctx)

    def monitor_nova(self, ctx: ocf.OcfContext) -> int:
        from computeha.ocf_lib.nova import NovaError

        from .return_to_service import service_up
        host = self.host(ctx)
        try:
            svc = service_up(self.nova(ctx), host.name)
        except NovaError as err:
            # The control plane, not this node, is failing: restarting nova-compute would not help.
            ctx.log.warning("cannot ask Nova about %s: %s", host.name, err)
            return Ocf.SUCCESS
        if svc is None:
            raise AgentError(f"Nova has no nova-compute service for host {host.name!r}", Ocf.ERR_GENERIC)
        if svc.forced_down:
            raise AgentError(f"the nova-compute service of {host.name} is forced down (fenced?): "
                             "restart needed to return it to service", Ocf.ERR_GENERIC)
        if svc.state != "up":
            raise AgentError(f"nova-compute runs but Nova reports {host.name} {svc.state}", Ocf.ERR_GENERIC)
        return Ocf.SUCCESS


def returner_main() -> None:
    """Entry point of the return-to-service process (see NovaCompute.launch_returner)."""
    import os
    import sys

    from computeha.ocf_lib.state import StateDir, rsctmp
    env = dict(os.environ)
    with open(os.devnull, "w") as devnull:
        code = ocf.run(NovaCompute(), ["NovaCompute", "start"], env, stdout=devnull, stderr=devnull)
    StateDir(rsctmp(env), NovaCompute.info.name, env.get("OCF_RESOURCE_INSTANCE", "")).write_text(
        RETURN_RESULT, f"{code}\n")
    sys.stdout.flush()
    os._exit(0)


def main() -> None:
    ocf.main(NovaCompute())


if __name__ == "__main__":
    main()
