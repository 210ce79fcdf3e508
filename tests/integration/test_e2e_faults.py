"""Fault injection on the whole chain (real Nova, real Pacemaker, real IPMI power): fencing faults,
the loss of the controller running NovaEvacuate, and the mass-failure guard.

Each scenario first checks the safety side (nothing moves while a host's death is unconfirmed,
no instance on two hosts), then removes the fault and checks the liveness side (every instance
recovered exactly once). It declares its row of docs/fault-matrix.md and reports what it saw.
The shared stack and its per-test baseline come from tests/e2e/fixture.py.
"""
from __future__ import annotations

import calendar
import os
import time
from collections import Counter
from typing import Dict, List, Optional, Sequence, Set

import pytest

from computeha.ocf_lib import evacuation_record as er
from tests.e2e.scenario import NOVA_EVACUATE_RSC, Stack
from tests.rig.cluster.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.openstack]

TIMEOUT = 420.0


# ---------------------------------------------------------------------------- helpers
class Baseline:
    """Counts taken before a fault, to tell what the fault changed."""

    def __init__(self, stack: Stack, host: str) -> None:
        self.host = host
        self.fenced = len(stack.cluster.successful_fences(host))
        self.failed = len(stack.failed_fences(host))
        self.migrations: Set[str] = {m.id for m in stack.migrations(host)}

    def new_failures(self, stack: Stack) -> int:
        return len(stack.failed_fences(self.host)) - self.failed


def assert_untouched(stack: Stack, base: Baseline, servers: Sequence[str]) -> None:
    """The safety side while a host's death is unconfirmed: no record, no evacuation, the
    instances still on their host in Nova, nothing running twice."""
    host = base.host
    assert len(stack.cluster.successful_fences(host)) == base.fenced, "a fence succeeded"
    assert stack.record(host) is None, stack.record(host)
    assert {m.id for m in stack.migrations(host)} == base.migrations, "an evacuation was issued"
    for sid, st in stack.servers_state(servers).items():
        assert st["host"] == host and st["task_state"] is None, (sid, st)
    assert stack.cloud.zombies() == {}


def evacuation_counts(stack: Stack, host: str, servers: Sequence[str]) -> Dict[str, int]:
    evacuated = [m.instance_uuid for m in stack.migrations(host)]
    return {sid: evacuated.count(sid) for sid in servers}


def assert_recovered_once(stack: Stack, host: str, servers: Sequence[str]) -> None:
    for sid, st in stack.servers_state(servers).items():
        assert st["status"] == "ACTIVE" and st["power_state"] == 1, (sid, st)
        assert st["host"] != host, (sid, st)
    counts = evacuation_counts(stack, host, servers)
    assert all(n == 1 for n in counts.values()), f"evacuations per instance: {counts}"
    assert stack.cloud.zombies() == {}


def fence_errors(stack: Stack, since: float) -> List[str]:
    """fence_ipmi's error messages as the fencer logged them on the controllers (what an operator
    reads in pacemaker.log), from lines written after ``since`` (epoch)."""
    out = []
    for n in stack.cluster.layout.controllers:
        path = stack.cluster.layout.node_dir(n) / "log" / "pacemaker.log"
        try:
            if path.stat().st_mtime < since:
                continue
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for ln in lines:
            if "pacemaker-fenced" in ln and "fence_ipmi[" in ln and "stderr" in ln and "ERROR:" in ln:
                stamp = _log_time(ln)
                if stamp is None or stamp >= since - 1:
                    out.append(ln.split("ERROR:", 1)[1].strip(" ]"))
    return out


def _log_time(line: str) -> Optional[float]:
    """Epoch of a pacemaker.log line ("Nov 21 04:29:22.090 ..."; the year is the current one)."""
    try:
        stamp = time.strptime(f"{time.gmtime().tm_year} {line[:15]}", "%Y %b %d %H:%M:%S")
    except ValueError:
        return None
    return calendar.timegm(stamp)


def wait_failed_fence(stack: Stack, base: Baseline, timeout: float = TIMEOUT) -> None:
    wait_for(f"the cluster reports a failed fence of {base.host}",
             lambda: base.new_failures(stack) > 0, timeout, interval=2)


# ---------------------------------------------------------------------------- fencing faults
@pytest.mark.fault("Fencing", "wrong BMC password (node partitioned, still running)",
                   "fence fails and is reported; nothing evacuated while unconfirmed; recovered once the "
                   "password is corrected")
def test_wrong_bmc_password_fails_the_fence_and_moves_nothing(stack: Stack, fault_report) -> None:
    host = stack.hosts[0]
    device = f"fence-ipmi-{host}"
    right = str(stack.cluster.layout.bmc_password_script)
    wrong = stack.cluster.layout.secrets_dir / "bmc-wrong-password.sh"
    wrong.write_text("#!/bin/sh\necho wrong-password\n")
    os.chmod(wrong, 0o700)
    servers = stack.boot(1, host, prefix="e2e-passwd")
    try:
        base = Baseline(stack, host)
        t0 = time.time()
        stack.set_param(device, "password_script", str(wrong))
        stack.cluster.partition(host)
        wait_failed_fence(stack, base)
        assert_untouched(stack, base, servers)
        assert stack.cloud.running_guests().get(servers[0]) == {host}  # the node still runs it
        errors = fence_errors(stack, t0)
        assert any("wrong password" in e for e in errors), errors  # the operator is told why
        rec = stack.recover(host, servers, lambda: stack.set_param(device, "password_script", right),
                            already=base.fenced, timeout=TIMEOUT)
        assert_recovered_once(stack, host, servers)
        fault_report.observe(f"{base.new_failures(stack)} failed fence(s), 0 evacuations, guest still running on "
                             f"{host}; fencer log: '{errors[0][:110]}'; password "
                             f"fixed: fenced at {rec.at('fenced'):.0f} s, ACTIVE elsewhere at "
                             f"{rec.at('all_active'):.0f} s, 1 evacuation, 0 zombies")
    finally:
        stack.set_param(device, "password_script", right)
        stack.cloud.delete_servers(servers)


@pytest.mark.fault("Fencing", "BMC accepts power off but the power stays on (node partitioned)",
                   "fence fails after the power-off check; nothing evacuated, no zombie; recovered once the "
                   "BMC works")
def test_bmc_that_keeps_the_power_on_fails_the_fence(stack: Stack, fault_report) -> None:
    host = stack.hosts[-1]
    servers = stack.boot(1, host, prefix="e2e-stuck")
    try:
        base = Baseline(stack, host)
        t0 = time.time()
        stack.bmc_fault(host, stuck_on=1)
        stack.cluster.partition(host)
        wait_failed_fence(stack, base)
        assert "on" in stack.cluster.power_status(host)
        assert_untouched(stack, base, servers)
        assert stack.cloud.running_guests().get(servers[0]) == {host}
        failures = base.new_failures(stack)
        errors = fence_errors(stack, t0)
        assert errors, "no fence_ipmi error in the fencer's log"
        rec = stack.recover(host, servers, lambda: stack.bmc_fault(host), already=base.fenced, timeout=TIMEOUT)
        assert_recovered_once(stack, host, servers)
        fault_report.observe(f"{failures} failed fence(s) while the power stayed on, 0 evacuations, guest still "
                             f"running on {host}; fencer log: '{errors[-1][:110]}'; "
                             f"BMC fixed: fenced at {rec.at('fenced'):.0f} s, ACTIVE "
                             f"elsewhere at {rec.at('all_active'):.0f} s, 1 evacuation, 0 zombies")
    finally:
        stack.bmc_fault(host)
        stack.cloud.delete_servers(servers)


@pytest.mark.fault("Fencing", "BMC answering 75 s late, beyond the 60 s fence timeout (node partitioned)",
                   "fence times out and is reported; nothing evacuated meanwhile; recovered once the BMC is fast")
def test_bmc_slower_than_the_fence_timeout_fails_the_fence(stack: Stack, fault_report) -> None:
    host = stack.hosts[0]
    servers = stack.boot(1, host, prefix="e2e-slow")
    try:
        base = Baseline(stack, host)
        t0 = time.monotonic()
        stack.bmc_fault(host, reply_delay=75)
        stack.cluster.partition(host)
        wait_failed_fence(stack, base)
        failed_after = time.monotonic() - t0
        assert_untouched(stack, base, servers)
        errors = fence_errors(stack, time.time() - failed_after)
        rec = stack.recover(host, servers, lambda: stack.bmc_fault(host), already=base.fenced, timeout=TIMEOUT)
        assert_recovered_once(stack, host, servers)
        fault_report.observe(f"first failed fence {failed_after:.0f} s after the cut, 0 evacuations meanwhile; "
                             f"fencer log: '{errors[-1][:110] if errors else 'timed out (no agent message)'}'; "
                             f"BMC fast again: fenced at {rec.at('fenced'):.0f} s, ACTIVE elsewhere at "
                             f"{rec.at('all_active'):.0f} s, 1 evacuation, 0 zombies")
    finally:
        stack.bmc_fault(host)
        # chassis calls already waiting finish their delay: let the BMC answer before the baseline
        wait_for(f"{host}'s BMC answers", lambda: _answers(stack, host), 200, interval=2)
        stack.cloud.delete_servers(servers)


def _answers(stack: Stack, host: str) -> bool:
    try:
        return bool(stack.cluster.power_status(host))
    except Exception:
        return False


@pytest.mark.fault("Fencing", "Nova API down when the power fence succeeds (fence_compute level fails)",
                   "the topology fails and is retried; no evacuation request; once Nova answers: fenced, "
                   "evacuated once")
def test_fence_compute_failing_after_the_power_fence_holds_everything(stack: Stack, fault_report) -> None:
    host = stack.hosts[-1]
    servers = stack.boot(2, host, prefix="e2e-novadown")
    try:
        base = Baseline(stack, host)
        stack.block_nova_api()
        t0 = time.monotonic()
        stack.cluster.power_off(host)
        wait_failed_fence(stack, base)
        assert "off" in stack.cluster.power_status(host)  # the IPMI level did its part
        # the request is written only after fence_compute confirmed the host down in Nova
        assert stack.record(host) is None
        assert len(stack.cluster.successful_fences(host)) == base.fenced
        assert {m.id for m in stack.migrations(host)} == base.migrations
        assert not stack.service(host).forced_down
        failures = base.new_failures(stack)
        down_for = time.monotonic() - t0
        rec = stack.recover(host, servers, stack.unblock_nova_api, already=base.fenced, timeout=TIMEOUT)
        assert_recovered_once(stack, host, servers)
        fault_report.observe(f"Nova unreachable {down_for:.0f} s: {failures} failed fence(s), power off, no "
                             f"record, not forced down, 0 evacuations; Nova back: fenced at "
                             f"{rec.at('fenced'):.0f} s, ACTIVE elsewhere at {rec.at('all_active'):.0f} s, "
                             "1 evacuation each, 0 zombies")
    finally:
        stack.unblock_nova_api()
        stack.cloud.delete_servers(servers)


# ---------------------------------------------------------------------------- agent faults
@pytest.mark.fault("Agent", "controller running NovaEvacuate powered off mid-evacuation",
                   "controller fenced; NovaEvacuate restarts on another controller and finishes; no instance "
                   "evacuated twice")
def test_controller_lost_mid_evacuation_another_one_finishes(stack: Stack, fault_report) -> None:
    host = stack.hosts[0]
    servers = stack.boot(6, host, prefix="e2e-ctl")
    # one evacuation at a time: the controller dies with most of the work still to do
    stack.set_param(NOVA_EVACUATE_RSC, "max_parallel", "1")
    ctl = None
    try:
        stack.wait_ready()
        ctl = stack.evacuate_running_on()
        assert ctl is not None
        base = Baseline(stack, host)
        ctl_fenced = len(stack.cluster.successful_fences(ctl))
        t0 = time.monotonic()
        # the lost controller stays down (its fence's power-on does nothing): another one must finish
        stack.bmc_fault(ctl, stay_off=1)
        stack.cluster.power_off(host)
        wait_for("the first evacuation", lambda: len(stack.migrations(host)) > len(base.migrations), TIMEOUT,
                 interval=0.2)
        stack.cluster.power_off(ctl)
        lost_at = time.monotonic() - t0
        done_at_loss = sum(1 for st in stack.servers_state(servers).values()
                           if st["host"] != host and st["status"] == "ACTIVE" and st["task_state"] is None)
        assert done_at_loss < len(servers), "every instance was done before the controller died"

        def finished() -> bool:
            record = stack.record(host)
            return record is not None and record.state == er.DONE
        wait_for(f"the evacuation of {host} done by another controller", finished, TIMEOUT, interval=1)
        done_after = time.monotonic() - t0
        new_home = wait_for("NovaEvacuate started on a surviving controller",
                            lambda: (n := stack.evacuate_running_on()) not in (None, ctl) and n, 60, interval=1)
        assert "off" in stack.cluster.power_status(ctl)  # the lost controller stayed down all along
        assert len(stack.cluster.successful_fences(ctl)) > ctl_fenced, f"{ctl} was not fenced"
        assert_recovered_once(stack, host, servers)
        fault_report.observe(f"{ctl} lost {lost_at:.0f} s after the power cut with {done_at_loss}/{len(servers)} "
                             f"done; {ctl} fenced; NovaEvacuate on {new_home} finished at {done_after:.0f} s; "
                             f"{len(servers)}/{len(servers)} ACTIVE elsewhere, 1 evacuation each, 0 zombies")
    finally:
        if ctl is not None:
            stack.bmc_fault(ctl)
        stack.set_param(NOVA_EVACUATE_RSC, "max_parallel", "4")
        stack.cloud.delete_servers(servers)
    stack.cluster.restore_all()
    stack.wait_ready(after=time.time())


def guard_log(stack: Stack) -> List[str]:
    """NovaEvacuate's lines of the mass-failure guard and of the stale-cloud breaker, every controller's log."""
    return [ln for n in stack.cluster.layout.controllers
            for ln in stack.evacuate_log(n.name, "MASS FAILURE GUARD|STALE CLOUD")]


def new_lines(before: List[str], now: List[str]) -> List[str]:
    """The lines of `now` that `before` did not have. Not a slice: the logs of several controllers are read one
    after the other, so a new line of the first one lands in the middle of the list."""
    seen = Counter(before)
    out = []
    for line in now:
        if seen[line]:
            seen[line] -= 1
        else:
            out.append(line)
    return out


def evacuations_done(stack: Stack, servers: Dict[str, List[str]]) -> bool:
    """Every host's record done (or already cleared) and its instances ACTIVE on another host."""
    return all(_record_state(stack, h) in (er.DONE, "") and
               all(st["host"] != h and st["status"] == "ACTIVE" for st in stack.servers_state(ids).values())
               for h, ids in servers.items())


def _record_state(stack: Stack, host: str) -> str:
    try:  # the CIB may not answer yet while the cluster re-forms
        record = stack.record(host)
    except Exception:
        return ""
    return record.state if record else ""


@pytest.mark.fault("Agent", "whole cluster restarted (every controller power-cycled) mid-evacuation",
                   "the request survives in the CIB; NovaEvacuate resumes after the restart; every instance "
                   "recovered once")
def test_whole_cluster_restart_mid_evacuation_resumes(stack: Stack, fault_report) -> None:
    host = stack.hosts[0]
    servers = stack.boot(4, host, prefix="e2e-restart")
    stack.set_param(NOVA_EVACUATE_RSC, "max_parallel", "1")
    controllers = [n.name for n in stack.cluster.layout.controllers]
    try:
        stack.wait_ready()
        base = Baseline(stack, host)
        t0 = time.monotonic()
        stack.cluster.power_off(host)
        wait_for("the first evacuation", lambda: len(stack.migrations(host)) > len(base.migrations), TIMEOUT,
                 interval=0.2)
        for ctl in controllers:
            stack.cluster.power_off(ctl)
        lost_at = time.monotonic() - t0
        done_at_loss = sum(1 for st in stack.servers_state(servers).values()
                           if st["host"] != host and st["status"] == "ACTIVE" and st["task_state"] is None)
        assert done_at_loss < len(servers), "every instance was done before the cluster went down"
        for ctl in controllers:
            stack.cluster.power_on(ctl)
        stack.cluster.wait_controllers_online(TIMEOUT)
        back_at = time.monotonic() - t0
        wait_for(f"the evacuation of {host} done after the restart",
                 lambda: _record_state(stack, host) == er.DONE, TIMEOUT, interval=1)
        done_after = time.monotonic() - t0
        assert_recovered_once(stack, host, servers)
        fault_report.observe(f"all {len(controllers)} controllers off {lost_at:.0f} s after the power cut with "
                             f"{done_at_loss}/{len(servers)} done; cluster back at {back_at:.0f} s; evacuation "
                             f"done at {done_after:.0f} s; {len(servers)}/{len(servers)} ACTIVE elsewhere, "
                             "1 evacuation each, 0 zombies")
    finally:
        for ctl in controllers:  # whatever happened, the controllers come back
            if "off" in stack.cluster.power_status(ctl):
                stack.cluster.power_on(ctl)
        stack.cluster.wait_controllers_online(TIMEOUT)
        stack.set_param(NOVA_EVACUATE_RSC, "max_parallel", "4")
        stack.cloud.delete_servers(servers)
    stack.cluster.restore_all()
    stack.wait_ready(after=time.time())


# ---------------------------------------------------------------------------- mass failure
@pytest.mark.fault("Mass failure", "two of the three computes power-lost together (67% > mass_failure_share 50%)",
                   "both fenced; once the second is flagged, automatic evacuation stops (the first may be done "
                   "already): a CRITICAL log line and 'blocked: mass failure' in crm_mon -A and computeha status; "
                   "after the operator raises mass_failure_share: all recovered once")
def test_two_computes_lost_together_trip_the_mass_failure_guard(stack: Stack, fault_report) -> None:
    hosts = stack.hosts[:2]
    servers = {h: stack.boot(2, h, prefix=f"e2e-mass-{h}") for h in hosts}
    earlier = guard_log(stack)

    def guard_said() -> List[str]:  # the lines this scenario caused, not an earlier one's
        return new_lines(earlier, guard_log(stack))
    try:
        bases = {h: Baseline(stack, h) for h in hosts}
        t0 = time.monotonic()
        for h in hosts:
            stack.cluster.power_off(h)
        for h in hosts:
            stack.cluster.wait_fenced(h, TIMEOUT, already=bases[h].fenced)
        lines = wait_for("NovaEvacuate's mass-failure message", guard_said, TIMEOUT, interval=1)
        blocked = wait_for("'blocked: mass failure' in the cluster", lambda: [
            h for h in hosts if "mass failure" in stack.progress(h)], 60, interval=1)
        guard_at = time.monotonic() - t0
        status = stack.cli_status()
        for h in blocked:  # fenced and requested, but nothing evacuated
            record = stack.record(h)
            assert record is not None and record.state in (er.REQUESTED, er.RUNNING), record
            assert {m.id for m in stack.migrations(h)} == bases[h].migrations, h
            assert any(h in ln and "blocked: mass failure" in ln for ln in status.splitlines()), status
            for st in stack.servers_state(servers[h]).values():
                assert st["host"] == h, st
        early = [h for h in hosts if h not in blocked]
        # the documented way on: the operator raises the guard (Pacemaker restarts NovaEvacuate)
        stack.set_param(NOVA_EVACUATE_RSC, "mass_failure_share", "100")

        wait_for("both evacuations done", lambda: evacuations_done(stack, servers), TIMEOUT, interval=1)
        done_at = time.monotonic() - t0
        for h in hosts:
            assert_recovered_once(stack, h, servers[h])
        n = sum(len(v) for v in servers.values())
        fault_report.observe(f"both fenced; {', '.join(early) or 'no host'} evacuated before the second flag; "
                             f"{', '.join(blocked)} blocked after {guard_at:.0f} s: CRITICAL "
                             f"'{lines[0].split('GUARD: ', 1)[-1][:80]}...', 'blocked: mass failure' in computeha "
                             f"status, 0 evacuations of it; mass_failure_share=100 set: {n}/{n} ACTIVE elsewhere at "
                             f"{done_at:.0f} s, 1 evacuation each, 0 zombies")
    finally:
        stack.set_param(NOVA_EVACUATE_RSC, "mass_failure_share", None)
        for h in hosts:
            stack.cloud.delete_servers(servers[h])
    stack.cluster.restore_all()
    stack.wait_ready(after=time.time())
