"""NovaEvacuate: turns "compute host X was fenced" into "X's protected instances run elsewhere".

Design: `start` launches a worker process and `monitor` supervises it (see
evacuation_worker). The worker reads the `computeha-evacuate` record of every
node once a second and starts evacuating a flagged, fenced host at once,
so the first evacuate call leaves within about 2 s of the flag; the
evacuations themselves (minutes for a large host) run outside any Pacemaker
action, so no action timeout bounds them and `monitor` stays cheap: it reads
the worker's PID file and /proc, never Keystone or Nova. A monitor-driven
design would need a 1 s monitor interval (a Python start-up per second) and
would have to cut long evacuations at the monitor timeout.

Everything is resumable: per-instance progress is written atomically under the
resource's StateDir, the per-host record lives in the CIB, and Nova (task_state,
evacuation migrations) is consulted before any evacuation is re-issued.
"""
from __future__ import annotations

import json
import time
from typing import List

from computeha.ocf_lib import ocf
from computeha.ocf_lib.exitcodes import Ocf
from computeha.ocf_lib.params import ActionSpec, AgentInfo, Problem

from . import evacuation_worker as worker
from .evacuation_params import TABLE

RESTART_LIMIT = 3  # worker relaunches by monitor within RESTART_WINDOW before monitor reports a failure
RESTART_WINDOW = 300.0

LONGDESC = """Evacuates the instances of fenced compute hosts: the OCF agent that completes Instance HA.

fence_compute records a successful fence in the persistent node attribute computeha-evacuate
(requested). A worker process started by this agent notices it within poll_interval, checks the fence
evidence in Nova (the host's nova-compute service forced down, or down and disabled with a computeha:
reason; anything else is logged and left alone), claims the host (running), selects the instances
(opt-in markers, exclusions, states Nova cannot evacuate are reported), evacuates them in parallel
(max_parallel, max_parallel_per_host, priority across all failed hosts from the evacuation_priority
server metadata or flavor extra spec), confirms each one (back on another host in its previous power
state, migration record done), retries failures with backoff, and finally records done or failed so
that the host can return to service. Progress shows in crm_mon -A (computeha-progress) and the logs.

The evacuate calls use Nova API microversions 2.68-2.94, which keep the power state (2.95+ would
leave evacuated servers SHUTOFF). An evacuation is never issued twice for one instance: before any
re-issue the agent checks the server's task_state and its evacuation migration records.

start only launches the worker; monitor only checks that it runs (restarting it, with a limit);
stop ends it. A killed worker resumes where it was."""

INFO = AgentInfo(
    name="NovaEvacuate",
    shortdesc="Evacuates the instances of fenced OpenStack compute hosts",
    longdesc=LONGDESC,
    version="1.0.0",
    actions=(ActionSpec("start", 20), ActionSpec("stop", 30), ActionSpec("monitor", 20, interval=10, depth=0),
             ActionSpec("validate-all", 20), ActionSpec("meta-data", 5)),
)


class NovaEvacuate(ocf.OcfAgent):
    info = INFO
    table = TABLE
    worker_module = "computeha.agents.evacuation_worker"

    def validate(self, ctx: ocf.OcfContext) -> List[Problem]:
        from computeha.ocf_lib.nova_auth import AuthConfig, AuthConfigError
        try:
            problems = AuthConfig.from_values(ctx.values).problems()
        except AuthConfigError as err:
            problems = [Problem("cloud", str(err))]
        if ctx.values.max_parallel_per_host > ctx.values.max_parallel:
            problems.append(Problem("max_parallel_per_host", "is larger than max_parallel"))
        if ctx.check_level >= 10:
            for program in ("cibadmin", "crm_attribute", "attrd_updater"):
                if ctx.runner.which(program) is None:
                    problems.append(Problem("", f"{program} is not installed on this node", Ocf.ERR_INSTALLED))
        return problems

    def start(self, ctx: ocf.OcfContext) -> int:
        ctx.state.ensure()
        ctx.state.write_text(worker.ACTIVE, f"{time.time():.0f}\n")
        if worker.worker_pid(ctx.state) is not None:
            return Ocf.SUCCESS
        ctx.state.remove(worker.RESTARTS)
        pid = worker.launch(ctx.state, ctx.env, self.worker_module)
        ctx.log.info("started evacuation worker %d", pid)
        # confirm it came up (a broken interpreter path would die at once)
        ctx.deadline.sub(0.3).sleep(0.3)
        if worker.worker_pid(ctx.state) != pid:
            ctx.state.remove(worker.ACTIVE)
            ctx.log.error("the evacuation worker exited at once (see the log)")
            return Ocf.ERR_GENERIC
        return Ocf.SUCCESS

    def stop(self, ctx: ocf.OcfContext) -> int:
        ctx.state.remove(worker.ACTIVE)  # the worker sees this and leaves on its own, too
        if not worker.stop(ctx.state, ctx.deadline, ctx.log):
            ctx.log.error("the evacuation worker could not be stopped")
            return Ocf.ERR_GENERIC
        ctx.state.remove(worker.RESTARTS)
        return Ocf.SUCCESS

    def monitor(self, ctx: ocf.OcfContext) -> int:
        if not ctx.state.exists(worker.ACTIVE):
            if worker.worker_pid(ctx.state) is not None:  # a stray worker of a stopped resource
                worker.stop(ctx.state, ctx.deadline, ctx.log)
            return Ocf.NOT_RUNNING
        if worker.worker_pid(ctx.state) is not None:
            return Ocf.SUCCESS
        return Ocf.SUCCESS if self._relaunch(ctx) else Ocf.ERR_GENERIC

    def _relaunch(self, ctx: ocf.OcfContext) -> bool:
        """The worker died (killed, crashed): start it again, resuming its work; give up after a few."""
        now = time.time()
        try:
            recent = [t for t in json.loads(ctx.state.read_text(worker.RESTARTS) or "[]") if now - t < RESTART_WINDOW]
        except (ValueError, TypeError):
            recent = []
        if len(recent) >= RESTART_LIMIT:
            ctx.log.error("the evacuation worker died %d times in %.0fs: not restarting it", len(recent),
                          RESTART_WINDOW)
            return False
        ctx.state.write_text(worker.RESTARTS, json.dumps(recent + [now]))
        pid = worker.launch(ctx.state, ctx.env, self.worker_module)
        ctx.log.warning("evacuation worker was not running: restarted it as %d (work resumes)", pid)
        return True


def main() -> None:
    ocf.main(NovaEvacuate())


if __name__ == "__main__":
    main()
