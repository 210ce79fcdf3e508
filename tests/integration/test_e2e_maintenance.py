"""End to end, maintenance on the real cluster: `computeha pause` lets fencing go on and records the
request but evacuates nothing, `computeha resume` processes it; a planned shutdown done the documented
way (standby, connection stopped, then power off) is neither fenced nor evacuated.

Waits are bounds for a loaded 2-core machine, never measurements.
"""
from __future__ import annotations

import time
from typing import List

import pytest

from computeha.agents.evacuation_engine import PROGRESS_PAUSED
from computeha.ocf_lib import evacuation_record as er
from tests.e2e.scenario import Stack
from tests.integration.test_e2e_faults import TIMEOUT, assert_recovered_once
from tests.rig.cluster.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.openstack]

QUIET_FOR = 30.0  # seconds a planned shutdown is watched for a fence that must not come (one normally lands in 1-3 s)


def computeha(stack: Stack, *args: str) -> str:
    """The operator's CLI on a controller."""
    proc = stack.cluster.x(stack.cluster.controller(), [stack.cluster.layout.agent_python, "-m",
                                                        "computeha.crm_templates.cli", *args], timeout=120)
    return proc.stdout


@pytest.mark.fault("Operator", "`computeha pause`, then a compute power-lost; `computeha resume` later",
                   "fenced and recorded while paused, nothing evacuated ('paused' in computeha status); after "
                   "resume every instance evacuated once")
def test_pause_records_the_request_and_resume_evacuates_it(stack: Stack, fault_report) -> None:
    host = stack.hosts[0]
    servers = stack.boot(2, host, prefix="e2e-pause")
    try:
        assert "paused" in computeha(stack, "pause")
        fenced = len(stack.cluster.successful_fences(host))
        before = {m.id for m in stack.migrations(host)}
        t0 = time.monotonic()
        stack.cluster.power_off(host)
        stack.cluster.wait_fenced(host, TIMEOUT, already=fenced)
        wait_for("'paused' in the host's progress", lambda: stack.progress(host) == PROGRESS_PAUSED, TIMEOUT,
                 interval=1)
        paused_at = time.monotonic() - t0
        record = stack.record(host)
        assert record is not None and record.state == er.REQUESTED, record
        assert {m.id for m in stack.migrations(host)} == before, "evacuated while paused"
        assert PROGRESS_PAUSED in stack.cli_status()
        for st in stack.servers_state(servers).values():
            assert st["host"] == host, st
        assert "resumed" in computeha(stack, "resume")
        t1 = time.monotonic()

        def done() -> bool:
            rec = stack.record(host)
            return rec is not None and rec.state == er.DONE
        wait_for("the evacuation after resume", done, TIMEOUT, interval=1)
        assert_recovered_once(stack, host, servers)
        fault_report.observe(f"fenced and recorded while paused ({PROGRESS_PAUSED!r} {paused_at:.0f} s after the "
                             f"cut), 0 evacuations; resumed: {len(servers)}/{len(servers)} ACTIVE elsewhere "
                             f"{time.monotonic() - t1:.0f} s after `computeha resume`, 1 evacuation each, 0 zombies")
    finally:
        computeha(stack, "resume")
        stack.cloud.delete_servers(servers)
    stack.cluster.restore_all()
    stack.wait_ready(after=time.time())


@pytest.mark.fault("Operator", "planned shutdown of a compute: standby, its remote connection stopped, then "
                   "powered off", "not a failure: no fence, no evacuation request, nothing evacuated")
def test_a_planned_shutdown_is_neither_fenced_nor_evacuated(stack: Stack, fault_report) -> None:
    host = stack.hosts[-1]  # a compute that is a cluster (remote) node
    ctl = stack.cluster.controller
    servers: List[str] = stack.boot(1, host, prefix="e2e-planned")
    fenced = len(stack.cluster.successful_fences(host))
    before = {m.id for m in stack.migrations(host)}
    try:
        stack.cluster.x(ctl(), ["crm_attribute", "--node", host, "--name", "standby", "--update", "on"])
        wait_for(f"NovaCompute stopped on {host}", lambda: stack.nova_compute_pid(host) is None, TIMEOUT,
                 interval=1)
        stack.cluster.x(ctl(), ["crm_resource", "--resource", host, "--meta", "--set-parameter", "target-role",
                                "--parameter-value", "Stopped"])
        wait_for(f"{host} offline", lambda: not getattr(stack.cluster.nodes().get(host), "online", True),
                 TIMEOUT, interval=1)
        stack.cluster.power_off(host)
        end = time.monotonic() + QUIET_FOR
        while time.monotonic() < end:  # the absence of a fence can only be watched for a while
            assert len(stack.cluster.successful_fences(host)) == fenced, "a planned shutdown was fenced"
            assert stack.record(host) is None, stack.record(host)
            time.sleep(2)
        assert {m.id for m in stack.migrations(host)} == before, "a planned shutdown was evacuated"
        for st in stack.servers_state(servers).values():
            assert st["host"] == host, st
        fault_report.observe(f"standby, connection stopped, powered off: watched {QUIET_FOR:.0f} s, 0 fences, "
                             f"no record, 0 evacuations; the instance stays on {host} in Nova")
    finally:
        stack.cluster.power_on(host)
        stack.cluster.x(ctl(), ["crm_resource", "--resource", host, "--meta", "--delete-parameter", "target-role"],
                        check=False)
        stack.cluster.x(ctl(), ["crm_attribute", "--node", host, "--name", "standby", "--delete"], check=False)
        stack.cloud.delete_servers(servers)
    stack.cluster.restore_all()
    stack.wait_ready(after=time.time())
