"""End to end, the mass-failure guard on the real cluster: a host that failed and came back does not
hold back the next failure; the absolute cap and an aggregate's failure budget block a double failure,
and each is released by its documented operator step.

Waits are bounds for a loaded 2-core machine, never measurements: recovery times are reported in
docs/fault-matrix.md, not asserted.
"""
from __future__ import annotations

import time
from typing import Dict, List

import pytest

from computeha.agents.failure_guard import MAX_FAILURES_KEY, PROGRESS_BLOCKED, PROGRESS_STALE
from computeha.ocf_lib import evacuation_record as er
from tests.e2e.scenario import NOVA_EVACUATE_RSC, Stack
from tests.integration.test_e2e_faults import TIMEOUT, assert_recovered_once, evacuations_done, guard_log, new_lines
from tests.rig.cluster.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.openstack]

BACK_FOR = 60.0  # seconds host A stays back in service before host B fails (inside the old 300 s window)




@pytest.mark.fault("Mass failure", "one compute power-lost and back in service; 60 s later a second one power-lost",
                   "the host back in service no longer counts: the second host is evacuated at once, no guard "
                   "message, every instance once")
def test_a_host_back_in_service_does_not_hold_back_the_next_failure(stack: Stack, fault_report) -> None:
    first, second = stack.hosts[0], stack.hosts[1]
    servers = {first: stack.boot(1, first, prefix="e2e-back-a"), second: stack.boot(2, second, prefix="e2e-back-b")}
    try:
        before = guard_log(stack)
        rec_a = stack.power_loss(first, servers[first], power_on="fenced")
        back_at = time.monotonic()
        assert stack.record(first) is None
        time.sleep(max(0.0, back_at + BACK_FOR - time.monotonic()))  # the scenario's fixed gap, not a poll
        rec_b = stack.power_loss(second, servers[second], power_on="fenced")
        assert new_lines(before, guard_log(stack)) == []
        assert rec_b.at("evacuation_issued") is not None
        for host in (first, second):
            assert_recovered_once(stack, host, servers[host])
        fault_report.observe(
            f"{first}: fenced {rec_a.at('fenced'):.0f} s, all ACTIVE elsewhere {rec_a.at('all_active'):.0f} s, back in "
            f"service {rec_a.at('reenabled'):.0f} s; {second} power-lost {BACK_FOR:.0f} s later: fenced "
            f"{rec_b.at('fenced'):.0f} s, first evacuation {rec_b.at('evacuation_issued'):.0f} s, "
            f"{len(servers[second])}/{len(servers[second])} ACTIVE elsewhere {rec_b.at('all_active'):.0f} s after "
            f"its power cut; 0 guard messages, 1 evacuation each, 0 zombies")
    finally:
        for ids in servers.values():
            stack.cloud.delete_servers(ids)


def _aggregate(stack: Stack, name: str, hosts: List[str], budget: int):
    nova = stack.cloud.nova()
    for old in nova.aggregates.list():
        if old.name == name:
            for h in old.hosts:
                nova.aggregates.remove_host(old, h)
            nova.aggregates.delete(old)
    agg = nova.aggregates.create(name, None)
    for h in hosts:
        nova.aggregates.add_host(agg, h)
    nova.aggregates.set_metadata(agg, {MAX_FAILURES_KEY: str(budget)})
    return agg


@pytest.mark.fault("Mass failure", "two computes power-lost together under mass_failure_max_hosts=1 and an "
                   "aggregate budget computeha:max_failures=1 (share guard off)",
                   "blocked by the cap, then (cap lifted) by the aggregate budget, each with its CRITICAL line; "
                   "raising the budget releases them: every instance evacuated once")
def test_the_cap_and_an_aggregate_budget_block_until_the_operator_raises_them(stack: Stack, fault_report) -> None:
    hosts = stack.hosts[:2]
    servers: Dict[str, List[str]] = {h: stack.boot(1, h, prefix=f"e2e-budget-{h}") for h in hosts}
    agg = _aggregate(stack, "e2e-rack", hosts, 1)
    try:
        # "together" made exact: the guard counts the hosts down when it judges, and a host whose fence
        # ends before the other's would be judged alone (and rightly evacuated). The maintenance switch
        # holds both requests until both are recorded; resume then judges them together.
        stack.set_param(NOVA_EVACUATE_RSC, "paused", "true")
        stack.set_param(NOVA_EVACUATE_RSC, "mass_failure_share", "100")
        stack.set_param(NOVA_EVACUATE_RSC, "mass_failure_max_hosts", "1")
        before = guard_log(stack)
        fenced = {h: len(stack.cluster.successful_fences(h)) for h in hosts}
        migrations = {h: {m.id for m in stack.migrations(h)} for h in hosts}
        t0 = time.monotonic()
        for h in hosts:
            stack.cluster.power_off(h)
        for h in hosts:
            stack.cluster.wait_fenced(h, TIMEOUT, already=fenced[h])
        wait_for("both requests recorded", lambda: all(stack.record(h) is not None for h in hosts), TIMEOUT,
                 interval=1)
        stack.set_param(NOVA_EVACUATE_RSC, "paused", None)

        def said(text: str) -> List[str]:
            return [ln for ln in new_lines(before, guard_log(stack)) if text in ln]

        def blocked() -> List[str]:
            return [h for h in hosts if stack.progress(h).startswith(PROGRESS_BLOCKED)]

        cap = wait_for("the cap's CRITICAL line", lambda: said("mass_failure_max_hosts=1"), TIMEOUT, interval=1)
        held = wait_for("a host blocked", blocked, 60, interval=1)
        for h in held:
            assert {m.id for m in stack.migrations(h)} == migrations[h], f"{h} evacuated while blocked"
        # the cap lifted (0: no cap): the aggregate's budget still holds its hosts
        stack.set_param(NOVA_EVACUATE_RSC, "mass_failure_max_hosts", "0")
        budget = wait_for("the aggregate's CRITICAL line", lambda: said("aggregate 'e2e-rack'"), TIMEOUT,
                          interval=1)
        for h in held:
            record = stack.record(h)
            assert record is not None and record.state in (er.REQUESTED, er.RUNNING), record
            assert {m.id for m in stack.migrations(h)} == migrations[h], f"{h} evacuated while over budget"
        # the documented step: raise the aggregate's budget (read again at the next judgement)
        stack.cloud.nova().aggregates.set_metadata(agg, {MAX_FAILURES_KEY: "2"})

        wait_for("both evacuations done", lambda: evacuations_done(stack, servers), TIMEOUT, interval=1)
        done_at = time.monotonic() - t0
        for h in hosts:
            assert_recovered_once(stack, h, servers[h])
        fault_report.observe(
            f"both fenced; {', '.join(held)} blocked: '{cap[0].split('GUARD: ', 1)[-1][:60]}...'; cap lifted: "
            f"'{budget[0].split('GUARD: ', 1)[-1][:60]}...'; budget raised to 2: {len(hosts)}/{len(hosts)} "
            f"ACTIVE elsewhere {done_at:.0f} s after the power cut, 1 evacuation each, 0 zombies")
    finally:
        for name in ("paused", "mass_failure_share", "mass_failure_max_hosts"):
            stack.set_param(NOVA_EVACUATE_RSC, name, None)
        nova = stack.cloud.nova()
        for h in hosts:
            nova.aggregates.remove_host(agg, h)
        nova.aggregates.delete(agg)
        for h in hosts:
            stack.cloud.delete_servers(servers[h])
        stack.cluster.restore_all()
    stack.wait_ready(after=time.time())


@pytest.mark.fault("Cloud", "RabbitMQ stopped until Nova reports every nova-compute down (no node fenced); then "
                   "a compute really power-lost; RabbitMQ back",
                   "nothing fenced or evacuated for the outage; the lost node is fenced and recorded but held "
                   "('held: Nova sees no computes', STALE CLOUD line) instead of sent to a cloud with no target; "
                   "evacuated once when Nova sees its computes again")
def test_a_stale_cloud_holds_evacuation_until_nova_sees_its_computes(stack: Stack, fault_report) -> None:
    host = stack.hosts[0]
    others = [h for h in stack.hosts if h != host]
    servers = stack.boot(1, host, prefix="e2e-stale")
    fences = {h: len(stack.cluster.successful_fences(h)) for h in stack.hosts}
    migrations = {m.id for m in stack.migrations(host)}
    before = guard_log(stack)
    stopped = False
    try:
        t0 = time.monotonic()
        stopped = stack.cloud.stop_service("rabbitmq")
        assert stopped
        wait_for("Nova reporting every nova-compute down", lambda: all(
            stack.service(h).state == "down" for h in stack.hosts), TIMEOUT, interval=1)
        all_down_at = time.monotonic() - t0
        for h in stack.hosts:  # an outage of the control plane is no host failure
            assert len(stack.cluster.successful_fences(h)) == fences[h], f"{h} fenced in a control-plane outage"
            assert stack.record(h) is None, (h, stack.record(h))
        stack.cluster.power_off(host)
        stack.cluster.wait_fenced(host, TIMEOUT, already=fences[host])
        wait_for("the STALE CLOUD line", lambda: [ln for ln in new_lines(before, guard_log(stack))
                                                  if "STALE CLOUD" in ln],
                 TIMEOUT, interval=1)
        # transient: the fenced node's reboot clears it, the next judgement (every 5 s) writes it again
        wait_for("'held: Nova sees no computes' in crm_mon -A", lambda: stack.progress(host).startswith(
            PROGRESS_STALE), 60, interval=1)
        assert {m.id for m in stack.migrations(host)} == migrations, "evacuated into a cloud with no target"
        t1 = time.monotonic()
        stack.cloud.start_service("rabbitmq")
        stopped = False

        def done() -> bool:
            rec = stack.record(host)
            return rec is not None and rec.state == er.DONE
        wait_for("the evacuation once Nova sees its computes", done, TIMEOUT, interval=1)
        assert_recovered_once(stack, host, servers)
        # released because Nova sees a target again; the other computes' first heartbeats after the
        # broker's return come one by one (report_interval), so "all of them" is awaited, not sampled
        wait_for("Nova reporting the other computes up again", lambda: all(
            stack.service(h).state == "up" for h in others), TIMEOUT, interval=1)
        fault_report.observe(f"every nova-compute down in Nova {all_down_at:.0f} s after RabbitMQ stopped: 0 fences, "
                             f"0 records; {host} power-lost: fenced and recorded, held (STALE CLOUD), 0 evacuations; "
                             f"RabbitMQ back: {len(servers)}/{len(servers)} ACTIVE elsewhere "
                             f"{time.monotonic() - t1:.0f} s later, 1 evacuation each, 0 zombies")
    finally:
        if stopped:
            stack.cloud.start_service("rabbitmq")
        stack.cloud.delete_servers(servers)
        stack.cluster.restore_all()
        # the next scenario starts with every Nova service consuming its queue again
        wait_for("Nova's services consuming their queues again",
                 lambda: stack.cloud.nova_subscribed(stack.cloud.compute_hosts), TIMEOUT, interval=1)
    stack.wait_ready(after=time.time())
