"""End to end: real Nova, real Pacemaker, real IPMI power; the cluster configured from our own
crm_templates rendering (fence_ipmi + fence_compute, NovaEvacuate, NovaCompute).

One bring-up of both rigs for every end-to-end module (``e2e_stack``, tests/e2e/fixture.py); each
scenario restores the baseline.
Waits are bounds for a loaded 2-core machine, never measurements.
"""
from __future__ import annotations

import os
import time

import pytest

from computeha.ocf_lib import evacuation_record as er
from tests.e2e.scenario import Stack
from tests.rig.cluster.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.openstack]

RECOVERY_TIMEOUT = 420.0


def _timeline(rec) -> str:
    keys = ("fenced", "evacuation_issued", "all_active", "record_done", "node_online", "nova_compute_running",
            "reenabled")
    return ", ".join(f"{k} {rec.at(k):.0f} s" for k in keys if rec.at(k) is not None)


@pytest.mark.fault("Fencing", "compute power loss; the fenced node is powered on again at once (boots while its "
                   "evacuation runs)", "fenced over IPMI, every instance evacuated once, nova-compute held until the "
                   "evacuation is done, then re-enabled; no zombie")
def test_compute_power_loss_is_fenced_evacuated_and_returns_to_service(stack: Stack, fault_report) -> None:
    host = stack.hosts[0]
    servers = stack.boot(2, host, prefix="e2e-power")
    try:
        assert {s["host"] for s in stack.servers_state(servers).values()} == {host}
        rec = stack.power_loss(host, servers, power_on="fenced", timeout=RECOVERY_TIMEOUT)

        # Nova: every instance ACTIVE, running, on another host, evacuated exactly once
        for sid, st in stack.servers_state(servers).items():
            assert st["status"] == "ACTIVE" and st["power_state"] == 1, (sid, st)
            assert st["host"] != host and st["host"] in stack.cloud.compute_hosts, (sid, st)
        migrations = stack.migrations(host)
        by_instance = {}
        for m in migrations:
            by_instance.setdefault(m.instance_uuid, []).append(m)
        assert set(servers) <= set(by_instance), migrations
        for sid in servers:
            assert len(by_instance[sid]) == 1, f"{sid} evacuated more than once"
            # completed once the returning nova-compute cleaned up its leftovers
            assert by_instance[sid][0].status == "completed", by_instance[sid][0].status
        # the failed host back: up, enabled, not forced down; nothing runs twice
        svc = stack.service(host)
        assert (svc.state, svc.status, svc.forced_down) == ("up", "enabled", False)
        assert stack.cloud.zombies() == {}
        assert not any(host in hosts for sid, hosts in stack.cloud.running_guests().items()
                       if sid in servers)
        # the cluster: fenced once through the topology, record went to done, then cleared
        assert er.DONE in rec.records and rec.records[0] in (er.REQUESTED, er.RUNNING)
        assert stack.record(host) is None
        assert not rec.nova_compute_started_before_done
        # fence_compute (which writes the request) runs only after fence_ipmi succeeded
        assert rec.timeline["requested"] <= rec.timeline["evacuation_issued"]
        events = stack.cluster.successful_fences(host)
        assert events, "no successful fence in the history"
        log = stack.cluster.fence_log(max(events, key=lambda e: e.completed))
        for device in (f"fence-ipmi-{host}", "fence-nova"):
            assert any(f"using {device} returned 0" in line for line in log), (device, log)
        fault_report.observe(f"{len(servers)}/{len(servers)} ACTIVE elsewhere, 1 evacuation each, 0 zombies; "
                             f"nova-compute started after the record was done; after the power cut: {_timeline(rec)}")
    finally:
        stack.cloud.delete_servers(servers)


@pytest.mark.fault("Compute", "nova-compute crash only (SIGKILL, node healthy)",
                   "restarted in place by NovaCompute; no fence, no evacuation")
def test_nova_compute_crash_is_restarted_in_place_and_nothing_is_evacuated(
        stack: Stack, fault_report) -> None:
    host = stack.hosts[-1]
    servers = stack.boot(1, host, prefix="e2e-crash")
    try:
        fences = len(stack.cluster.successful_fences(host))
        before = set(m.id for m in stack.migrations(host))
        pid = stack.nova_compute_pid(host)
        assert pid is not None
        crashed = time.time()
        os.kill(pid, 9)
        # NovaCompute's monitor sees the crash; Pacemaker restarts it on the same node
        new_pid = wait_for("nova-compute restarted in its node",
                           lambda: (p := stack.nova_compute_pid(host)) is not None and p != pid
                           and p, RECOVERY_TIMEOUT / 2, interval=1)
        assert new_pid != pid
        wait_for("Nova reports the restarted nova-compute up",
                 lambda: stack.service_ready(host, after=crashed), RECOVERY_TIMEOUT / 2,
                 interval=2)
        # nothing fenced, nothing requested, nothing evacuated; the instance stayed
        assert len(stack.cluster.successful_fences(host)) == fences
        assert stack.record(host) is None
        assert set(m.id for m in stack.migrations(host)) == before
        st = stack.servers_state(servers)[servers[0]]
        assert (st["status"], st["host"], st["power_state"]) == ("ACTIVE", host, 1)
        svc = stack.service(host)
        assert (svc.status, svc.forced_down) == ("enabled", False)
        assert stack.cloud.zombies() == {}
        fault_report.observe(f"restarted in {time.time() - crashed:.0f} s (pid {pid} -> {new_pid}); 0 fences, "
                             "0 migrations, instance ACTIVE on its host")
    finally:
        stack.cloud.delete_servers(servers)


def _assert_evacuated(stack: Stack, host: str, servers: list) -> None:
    for sid, st in stack.servers_state(servers).items():
        assert st["status"] == "ACTIVE" and st["power_state"] == 1, (sid, st)
        assert st["host"] != host, (sid, st)
    evacuated = [m.instance_uuid for m in stack.migrations(host)]
    for sid in servers:
        assert evacuated.count(sid) == 1, f"{sid} evacuated {evacuated.count(sid)} times"
    assert stack.cloud.zombies() == {}


@pytest.mark.fault("Fencing", "network partition of a compute that keeps running",
                   "fenced over IPMI before anything moves; evacuated once; no zombie")
def test_network_partition_is_fenced_over_ipmi_then_evacuated(stack: Stack, fault_report) -> None:
    host = stack.hosts[-1]
    servers = stack.boot(1, host, prefix="e2e-partition")
    try:
        rec = stack.partition_loss(host, servers, timeout=RECOVERY_TIMEOUT)
        _assert_evacuated(stack, host, servers)
        # the node kept running until the fence: evacuation only after the IPMI power-off
        assert rec.timeline["requested"] <= rec.timeline["evacuation_issued"]
        assert er.DONE in rec.records and stack.record(host) is None
        svc = stack.service(host)
        assert (svc.state, svc.status, svc.forced_down) == ("up", "enabled", False)
        fault_report.observe(f"fenced at {rec.at('fenced'):.0f} s, first evacuation at "
                             f"{rec.at('evacuation_issued'):.0f} s, ACTIVE elsewhere at {rec.at('all_active'):.0f} s; "
                             "1 evacuation, 0 zombies")
    finally:
        stack.cloud.delete_servers(servers)


@pytest.mark.fault("Fencing", "BMC unreachable (IPMI packets dropped), node partitioned",
                   "failed fence reported; nothing evacuated while unconfirmed; recovered once the BMC answers")
def test_bmc_unreachable_means_a_failed_fence_and_no_evacuation(stack: Stack, fault_report) -> None:
    host = stack.hosts[0]
    servers = stack.boot(1, host, prefix="e2e-bmc")
    try:
        fenced = len(stack.cluster.successful_fences(host))
        failed = len(stack.failed_fences(host))
        before = {m.id for m in stack.migrations(host)}
        stack.block_bmc(host)
        stack.cluster.partition(host)  # lost, and its power cannot be confirmed off
        wait_for(f"the cluster reports a failed fence of {host}",
                 lambda: len(stack.failed_fences(host)) > failed, RECOVERY_TIMEOUT, interval=2)
        # fence_compute follows fence_ipmi in the level: it never ran, nothing moved
        assert len(stack.cluster.successful_fences(host)) == fenced
        assert stack.record(host) is None
        assert not stack.service(host).forced_down
        assert {m.id for m in stack.migrations(host)} == before
        st = stack.servers_state(servers)[servers[0]]
        assert st["host"] == host and st["task_state"] is None, st
        assert stack.cloud.zombies() == {}
        failures = len(stack.failed_fences(host)) - failed
        # the BMC answers again: the retried fence succeeds and the normal recovery follows
        rec = stack.recover(host, servers, stack.unblock_bmc, already=fenced,
                            timeout=RECOVERY_TIMEOUT)
        _assert_evacuated(stack, host, servers)
        fault_report.observe(f"{failures} failed fence(s) in the history, 0 migrations and no record while "
                             f"unreachable; BMC back: fenced at {rec.at('fenced'):.0f} s, ACTIVE elsewhere at "
                             f"{rec.at('all_active'):.0f} s, 1 evacuation, 0 zombies")
    finally:
        stack.unblock_bmc()
        stack.cloud.delete_servers(servers)
