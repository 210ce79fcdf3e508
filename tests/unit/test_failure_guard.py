"""The mass-failure guard: hosts still down count, hosts back in service do not; the absolute cap, the
per-aggregate budgets, the stale-cloud breaker; and the engine acting on each verdict."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest

from computeha.agents import failure_guard as guard
from computeha.agents.nova_evacuate import NovaEvacuate
from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.nova import Aggregate, Service
from tests.unit.evacuation_fakes import MiniNova
from tests.unit.test_evacuation_engine import flag, make, record
from tests.unit.test_nova_evacuate import env, run  # noqa: F401  (env is a fixture)

HOSTS5 = tuple(f"compute-{i}" for i in range(5))


def services(up=(), down=(), fenced=()):
    def svc(h, state, forced):
        return Service(id=h, host=h, binary="nova-compute", state=state, status="enabled", forced_down=forced)
    return ([svc(h, "up", False) for h in up] + [svc(h, "down", False) for h in down]
            + [svc(h, "down", True) for h in fenced])


def state(records, svcs):
    return guard.cloud_state({h: rec.new(s, "t") for h, s in records.items()}, svcs, lambda n: n)


# ---------------------------------------------------------------------------- the pure verdicts
def test_a_host_counts_while_its_record_is_set_whatever_its_state():
    cloud = state({"a": rec.DONE, "b": rec.REQUESTED, "gone": rec.FAILED},
                  services(up=("c",), fenced=("a", "b")))
    assert cloud.down == {"a", "b"}  # "gone" has no nova-compute service: not part of the cloud
    assert cloud.total == 3


def test_the_share_trips_on_hosts_down_together_not_on_one_host():
    limits = guard.Limits(share=50, max_hosts=0, stale_share=0)
    one = state({"a": rec.REQUESTED}, services(up=("b",), fenced=("a",)))
    assert not guard.judge("a", one, limits, []).blocked  # 1 of 2 is half, and a single host never trips it
    two = state({"a": rec.DONE, "b": rec.REQUESTED}, services(up=("c",), fenced=("a", "b")))
    verdict = guard.judge("b", two, limits, [])
    assert verdict.blocked and "2 of 3 compute hosts down at once (a, b" in verdict.reason
    assert verdict.progress == f"{guard.PROGRESS_BLOCKED} (2 of 3 hosts down, mass_failure_share 50%)"


def test_the_absolute_cap_counts_hosts_down_at_once():
    svcs = services(up=HOSTS5[3:], fenced=HOSTS5[:3])
    limits = guard.Limits(share=100, max_hosts=2, stale_share=0)
    assert not guard.judge("compute-1", state({h: rec.REQUESTED for h in HOSTS5[:2]}, svcs), limits, []).blocked
    verdict = guard.judge("compute-2", state({h: rec.REQUESTED for h in HOSTS5[:3]}, svcs), limits, [])
    assert verdict.blocked and "mass_failure_max_hosts=2" in verdict.reason and "3 compute hosts" in verdict.reason


def test_an_aggregate_budget_holds_only_its_own_hosts():
    aggs = [Aggregate("1", "rack-a", ("compute-0", "compute-1"), {guard.MAX_FAILURES_KEY: "1"}),
            Aggregate("2", "plain", ("compute-2",), {"other": "x"})]
    budgets, problems = guard.budgets(aggs)
    assert problems == [] and [b.aggregate for b in budgets] == ["rack-a"]
    limits = guard.Limits(share=0, max_hosts=0, stale_share=0)
    cloud = state({"compute-0": rec.DONE, "compute-1": rec.REQUESTED, "compute-2": rec.REQUESTED},
                  services(up=HOSTS5[3:], fenced=HOSTS5[:3]))
    verdict = guard.judge("compute-1", cloud, limits, budgets)
    assert verdict.blocked and "aggregate 'rack-a'" in verdict.reason and "max_failures=1" in verdict.reason
    assert not guard.judge("compute-2", cloud, limits, budgets).blocked


@pytest.mark.parametrize("raw", ["many", "-1", "1.5", ""])
def test_aggregate_metadata_that_is_not_a_count_is_reported_and_ignored(raw):
    budgets, problems = guard.budgets([Aggregate("1", "rack-a", ("compute-0",), {guard.MAX_FAILURES_KEY: raw})])
    assert budgets == [] and len(problems) == 1 and "rack-a" in problems[0] and "ignored" in problems[0]


def test_the_stale_cloud_breaker_holds_when_nova_sees_few_unfenced_computes():
    limits = guard.Limits(share=0, max_hosts=0, stale_share=50)
    stale = state({"compute-0": rec.REQUESTED}, services(up=("compute-1",), down=HOSTS5[2:], fenced=("compute-0",)))
    verdict = guard.judge("compute-0", stale, limits, [])
    assert verdict.blocked and verdict.reason.startswith("STALE CLOUD: Nova reports 3 of the 4 other")
    assert verdict.progress == f"{guard.PROGRESS_STALE} (3 of 4 down)"
    fine = state({"compute-0": rec.REQUESTED}, services(up=HOSTS5[1:4], down=("compute-4",), fenced=("compute-0",)))
    assert not guard.judge("compute-0", fine, limits, []).blocked


# ---------------------------------------------------------------------------- the engine
def evacuated(nova, sid):
    return nova.evacuations.get(sid, 0)


def steps_until(engine, predicate, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        engine.step()
        if predicate():
            return True
    return False


def back_in_service(nova, attrs, host):
    """What NovaCompute's start does last: service up, forced_down cleared, enabled, record cleared."""
    nova.services[host] = replace(nova.services[host], state="up", forced_down=False, status="enabled",
                                  disabled_reason="")
    attrs.delete(host, rec.ATTRIBUTE)


def test_a_host_back_in_service_does_not_hold_back_the_next_failure(tmp_path, caplog):
    """Host A fails, is evacuated and comes back; then B fails: B is evacuated (the guard used to count
    A for five minutes and held B back: 2 of 3 flagged within 300 s)."""
    nova = MiniNova()
    first = nova.add_server("compute-0").id
    second = nova.add_server("compute-1").id
    nova.fence("compute-0")
    engine, attrs, progress = make(tmp_path, nova, mass_failure_share=50)
    flag(attrs, "compute-0")
    with caplog.at_level(logging.WARNING, logger="test-evacuation"):
        try:
            assert engine.run_until_idle(5)
            assert record(attrs, "compute-0").state == rec.DONE
            back_in_service(nova, attrs, "compute-0")
            nova.fence("compute-1")
            flag(attrs, "compute-1")
            assert engine.run_until_idle(5)
        finally:
            engine.close()
    assert evacuated(nova, first) == 1 and evacuated(nova, second) == 1
    assert record(attrs, "compute-1").state == rec.DONE
    assert "GUARD" not in caplog.text


def test_the_cap_blocks_then_raising_it_releases_every_host_once(tmp_path, caplog):
    nova = MiniNova(hosts=HOSTS5)
    sids = {h: nova.add_server(h).id for h in HOSTS5[:3]}
    for h in HOSTS5[:3]:
        nova.fence(h)
    engine, attrs, progress = make(tmp_path, nova, mass_failure_share=100, mass_failure_max_hosts=2)
    for h in HOSTS5[:3]:
        flag(attrs, h)
    with caplog.at_level(logging.CRITICAL, logger="test-evacuation"):
        try:
            assert engine.run_until_idle(5)
            assert not nova.evacuations
            assert {progress.get(h, rec.PROGRESS_ATTRIBUTE) for h in HOSTS5[:3]} == {
                f"{guard.PROGRESS_BLOCKED} (3 hosts down, mass_failure_max_hosts 2)"}
            assert "mass_failure_max_hosts=2" in caplog.text
        finally:
            engine.close()
    released, attrs, _ = make(tmp_path, nova, attrs=attrs, mass_failure_share=100, mass_failure_max_hosts=3)
    try:
        assert released.run_until_idle(5)
    finally:
        released.close()
    assert {h: evacuated(nova, s) for h, s in sids.items()} == {h: 1 for h in HOSTS5[:3]}


def test_an_aggregate_budget_blocks_its_hosts_lost_together_and_bad_metadata_is_only_logged(tmp_path, caplog):
    nova = MiniNova(hosts=HOSTS5)
    nova.aggs += [Aggregate("1", "rack-a", HOSTS5[:2], {guard.MAX_FAILURES_KEY: "1"}),
                  Aggregate("2", "rack-b", HOSTS5[2:], {guard.MAX_FAILURES_KEY: "lots"})]
    sids = {h: nova.add_server(h).id for h in HOSTS5[:3]}
    for h in HOSTS5[:3]:
        nova.fence(h)
    engine, attrs, progress = make(tmp_path, nova, mass_failure_share=100)
    for h in HOSTS5[:3]:
        flag(attrs, h, since=1_700_000_000 + HOSTS5.index(h))
    with caplog.at_level(logging.WARNING, logger="test-evacuation"):
        try:
            assert engine.run_until_idle(5)
        finally:
            engine.close()
    assert {h: evacuated(nova, s) for h, s in sids.items()} == {"compute-0": 0, "compute-1": 0, "compute-2": 1}
    assert [progress.get(h, rec.PROGRESS_ATTRIBUTE) for h in HOSTS5[:2]] == [
        f"{guard.PROGRESS_BLOCKED} (2 hosts of rack-a down, budget 1)"] * 2
    assert "aggregate 'rack-a'" in caplog.text and "'lots' is not a whole number" in caplog.text


def test_the_stale_cloud_breaker_holds_until_nova_sees_its_computes(tmp_path, caplog):
    nova = MiniNova(hosts=HOSTS5)
    sid = nova.add_server("compute-0").id
    for h in HOSTS5[2:]:  # their heartbeats stopped reaching Nova: down, not fenced
        nova.services[h] = replace(nova.services[h], state="down")
    nova.fence("compute-0")
    engine, attrs, progress = make(tmp_path, nova, mass_failure_share=0, gate_recheck=0.1)
    flag(attrs, "compute-0")
    with caplog.at_level(logging.WARNING, logger="test-evacuation"):
        try:
            assert engine.run_until_idle(2)
            assert evacuated(nova, sid) == 0
            assert progress.get("compute-0", rec.PROGRESS_ATTRIBUTE).startswith(guard.PROGRESS_STALE)
            assert "STALE CLOUD" in caplog.text
            for h in HOSTS5[2:]:
                nova.services[h] = replace(nova.services[h], state="up")
            assert steps_until(engine, lambda: record(attrs, "compute-0").state == rec.DONE, 5)
        finally:
            engine.close()
    assert evacuated(nova, sid) == 1 and record(attrs, "compute-0").state == rec.DONE


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("name,value", [("mass_failure_max_hosts", "-1"), ("mass_failure_max_hosts", "two"),
                                        ("mass_failure_max_hosts", "1e9"), ("stale_cloud_share", "101"),
                                        ("stale_cloud_share", "-5"), ("mass_failure_share", "1.5")])
def test_validate_all_names_a_bad_guard_parameter(env, name, value):  # noqa: F811
    code, _, err = run(NovaEvacuate(), "validate-all", env, **{f"OCF_RESKEY_{name}": value})
    assert code == 6 and name in err, err


def test_a_down_cell_service_is_neither_fence_evidence_nor_a_silent_compute():
    """Nova 2.69+ lists a service of an unreachable cell with status UNKNOWN and no state."""
    from computeha.agents.evacuation_engine import fence_evidence
    unknown = Service(id="", host="compute-9", binary="nova-compute", state="", status="UNKNOWN",
                      forced_down=False)
    assert "cell" in fence_evidence(unknown)
    assert fence_evidence(replace(unknown, forced_down=True)) is not None  # a stale copy proves nothing
    cloud = guard.cloud_state({}, services(up=("compute-0",)) + [unknown], lambda n: n)
    assert cloud.silent == frozenset() and cloud.total == 2


def test_every_request_of_a_host_logs_its_first_evacuate_call(tmp_path, caplog):
    """The latency line ("first evacuate call ... after the request") is logged per request, not once per host."""
    nova = MiniNova()
    nova.add_server("compute-0")
    nova.fence("compute-0")
    engine, attrs, _ = make(tmp_path, nova, mass_failure_share=50)
    with caplog.at_level(logging.INFO, logger="test-evacuation"):
        try:
            flag(attrs, "compute-0", since=time.time() - 5)
            assert engine.run_until_idle(5)
            back_in_service(nova, attrs, "compute-0")
            nova.add_server("compute-0")
            nova.fence("compute-0")
            flag(attrs, "compute-0", since=time.time() - 1)
            assert engine.run_until_idle(5)
        finally:
            engine.close()
    assert caplog.text.count("compute-0: first evacuate call") == 2, caplog.text
