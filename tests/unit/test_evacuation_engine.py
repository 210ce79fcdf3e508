"""The evacuation engine against an in-memory Nova: gate, selection, caps, priority, faults, resume."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest

from computeha.agents.evacuation_engine import CLOCK_SLACK, Engine, fence_evidence, match_service, nova_time
from computeha.agents.evacuation_params import Settings
from computeha.agents.evacuation_store import ISSUING, ProgressStore, parse_nodes_section
from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.nova import Aggregate, Image, Service
from computeha.ocf_lib.state import StateDir
from tests.fakes.file_attributes import FileAttributes
from tests.fakes.memory_attributes import MemoryAttributes
from tests.unit.evacuation_fakes import MiniNova

FAST = dict(poll_interval=0.05, confirm_interval=0.01, in_doubt_grace=0.3, mass_failure_share=0, retry_backoff=0.05)


@pytest.fixture
def log():
    logger = logging.getLogger("test-evacuation")
    logger.setLevel(logging.DEBUG)
    return logger


def make(tmp_path, nova, attrs=None, name="e1", **settings):
    attrs = attrs if attrs is not None else MemoryAttributes()
    store = ProgressStore(StateDir(str(tmp_path), "NovaEvacuate", name))
    s = Settings(**{**FAST, **settings})
    progress = MemoryAttributes()
    engine = Engine(nova, attrs, s, store, logging.getLogger("test-evacuation"), "ctl-1", progress=progress)
    return engine, attrs, progress


def flag(attrs, node, since=None):
    attrs.set(node, rec.ATTRIBUTE, rec.new(rec.REQUESTED, "fenced by test", since or time.time() - 1).format())


def record(attrs, node):
    return rec.parse(attrs.get(node, rec.ATTRIBUTE))


def fenced_host(n, duration=0.05, answer_delay=0.0):
    """A MiniNova with n servers on compute-0, fenced (forced down); answers take answer_delay seconds."""
    nova = MiniNova(duration=duration)
    nova.answer_delay = answer_delay
    sids = [nova.add_server("compute-0").id for _ in range(n)]
    nova.fence("compute-0")
    return nova, sids


def finishes(engine, timeout):
    """Whether the engine runs to idle within timeout; it is closed either way."""
    try:
        return engine.run_until_idle(timeout)
    finally:
        engine.close()


def test_a_fenced_host_is_evacuated_once_per_instance_and_marked_done(tmp_path):
    nova = MiniNova()
    ids = [nova.add_server("compute-0").id for _ in range(5)]
    off = nova.add_server("compute-0", status="SHUTOFF").id
    other = nova.add_server("compute-1").id
    nova.fence("compute-0")
    engine, attrs, progress = make(tmp_path, nova)
    flag(attrs, "compute-0")
    try:
        assert engine.run_until_idle(10)
    finally:
        engine.close()
    for sid in ids + [off]:
        assert nova.evacuations.get(sid) == 1, sid
        assert nova.servers[sid].host != "compute-0"
    assert nova.servers[off].status == "SHUTOFF"
    assert all(nova.servers[s].status == "ACTIVE" for s in ids)
    assert other not in nova.evacuations and nova.servers[other].host == "compute-1"
    assert nova.broken == []
    result = record(attrs, "compute-0")
    assert result.state == rec.DONE and result.detail == "6/6"
    assert progress.get("compute-0", rec.PROGRESS_ATTRIBUTE) == "6/6"
    # the durable record in Nova keeps our prefix and says what happened
    reason = nova.services["compute-0"].disabled_reason
    assert reason.startswith("computeha:") and "done 6/6" in reason


def test_a_host_without_fence_evidence_is_left_alone(tmp_path, caplog):
    nova = MiniNova()
    sid = nova.add_server("compute-0").id
    engine, attrs, _ = make(tmp_path, nova)
    flag(attrs, "compute-0")  # the record says so, Nova does not
    with caplog.at_level(logging.WARNING, logger="test-evacuation"):
        try:
            assert engine.run_until_idle(5)
        finally:
            engine.close()
    assert not [c for c in nova.calls if c[0] == "evacuate"]
    assert nova.servers[sid].host == "compute-0"
    assert record(attrs, "compute-0").state == rec.REQUESTED
    assert "not forced down" in caplog.text and "left alone" in caplog.text


def test_down_and_disabled_by_someone_else_is_not_evidence():
    svc = Service(id="1", host="c", binary="nova-compute", state="down", status="disabled", forced_down=False,
                  disabled_reason="maintenance by admin")
    assert fence_evidence(svc) is not None
    assert fence_evidence(replace(svc, disabled_reason="computeha: fenced")) is None
    assert fence_evidence(replace(svc, forced_down=True, disabled_reason="")) is None
    assert fence_evidence(None) is not None


def test_node_names_map_to_nova_hosts_by_short_name():
    svcs = [Service(id=str(i), host=h, binary="nova-compute", state="up", status="enabled", forced_down=False)
            for i, h in enumerate(["compute-0.example.org", "compute-1.example.org"])]
    assert match_service("compute-0", svcs).host == "compute-0.example.org"
    assert match_service("compute-1.example.org", svcs).host == "compute-1.example.org"
    assert match_service("compute-9", svcs) is None


def test_only_marked_instances_move_when_the_cloud_marks_any(tmp_path):
    nova = MiniNova()
    nova.images.append(Image(id="img-tagged", name="t", tags=("evacuable",)))
    nova.aggs.append(Aggregate(id="1", name="ha", hosts=("compute-2",), metadata={"evacuable": "true"}))
    by_flavor = nova.add_server("compute-0", flavor_extra_specs={"evacuable": "true"}).id
    by_image = nova.add_server("compute-0", image_id="img-tagged").id
    by_meta = nova.add_server("compute-0", metadata={"evacuable": "true"}).id
    by_tag = nova.add_server("compute-0", tags=("evacuable",)).id
    unmarked = nova.add_server("compute-0").id
    opted_out = nova.add_server("compute-0", metadata={"evacuable": "false"}, tags=("evacuable",)).id
    paused = nova.add_server("compute-0", status="PAUSED", tags=("evacuable",)).id
    nova.fence("compute-0")
    engine, attrs, _ = make(tmp_path, nova)
    flag(attrs, "compute-0")
    try:
        assert engine.run_until_idle(10)
    finally:
        engine.close()
    assert set(nova.evacuations) == {by_flavor, by_image, by_meta, by_tag}
    for sid in (unmarked, opted_out, paused):
        assert nova.servers[sid].host == "compute-0"
    assert record(attrs, "compute-0").detail == "4/4"


def test_exclusions_and_local_disk_policy(tmp_path):
    nova = MiniNova()
    nova.images.append(Image(id="img-amph", name="amphora", tags=("amphora",)))
    keep = nova.add_server("compute-0", image_id="").id  # boot from volume: disk survives
    local = nova.add_server("compute-0").id
    amph = nova.add_server("compute-0", image_id="img-amph").id
    octavia = nova.add_server("compute-0", image_id="", project_id="octavia").id
    nova.fence("compute-0")
    engine, attrs, _ = make(tmp_path, nova, no_shared_storage=True, local_disk_policy="skip",
                            exclude_projects=frozenset({"octavia"}), exclude_image_tags=("amphora",))
    flag(attrs, "compute-0")
    try:
        assert engine.run_until_idle(10)
    finally:
        engine.close()
    assert set(nova.evacuations) == {keep}
    assert {local, amph, octavia}.isdisjoint(nova.evacuations)


def test_priority_orders_calls_across_all_failed_hosts(tmp_path):
    nova = MiniNova(hosts=("compute-0", "compute-1", "compute-2", "compute-3"))
    low = nova.add_server("compute-0", name="low").id
    high = nova.add_server("compute-1", name="high", metadata={"evacuation_priority": "10"}).id
    mid = nova.add_server("compute-0", name="mid", flavor_extra_specs={"evacuation_priority": "5"}).id
    nova.fence("compute-0")
    nova.fence("compute-1")
    engine, attrs, _ = make(tmp_path, nova, max_parallel=1, selection="all")
    now = time.time()
    flag(attrs, "compute-0", since=now - 5)
    flag(attrs, "compute-1", since=now - 1)  # requested later, but carries the highest priority
    try:
        assert engine.run_until_idle(10)
    finally:
        engine.close()
    order = [c[1][0] for c in nova.calls if c[0] == "evacuate"]
    assert order == [high, mid, low]


def test_global_and_per_host_caps_bound_the_evacuations_in_flight(tmp_path):
    nova = MiniNova(hosts=("compute-0", "compute-1", "compute-2", "compute-3"), duration=0.15)
    for _ in range(8):
        nova.add_server("compute-0")
        nova.add_server("compute-1")
    nova.fence("compute-0")
    nova.fence("compute-1")
    engine, attrs, _ = make(tmp_path, nova, max_parallel=3, max_parallel_per_host=2)
    flag(attrs, "compute-0")
    flag(attrs, "compute-1")
    peak = []
    orig = engine.dispatch

    def watched():
        orig()
        peak.append(sum(engine.in_flight().values()))

    engine.dispatch = watched
    try:
        assert engine.run_until_idle(20)
    finally:
        engine.close()
    assert max(peak) == 3
    assert nova.inflight_max["compute-0"] <= 2 and nova.inflight_max["compute-1"] <= 2
    assert all(v == 1 for v in nova.evacuations.values()) and len(nova.evacuations) == 16


def test_evacuate_calls_take_the_call_slots_before_confirmations(tmp_path):
    """Slow answers (a loaded or distant nova-api), quick rebuilds: while instances wait to be issued,
    no call slot goes to confirming a finished one; once all are issued, every one is confirmed."""
    nova, sids = fenced_host(12, duration=0.01, answer_delay=0.1)
    engine, attrs, _ = make(tmp_path, nova, max_parallel=50, api_concurrency=2)
    flag(attrs, "compute-0")
    assert finishes(engine, 20)
    assert [nova.evacuations.get(s) for s in sids] == [1] * 12
    names = [c[0] for c in nova.calls]
    last_evacuate = max(i for i, n in enumerate(names) if n == "evacuate")
    reads_before = [c for c in nova.calls[:last_evacuate] if c[0] == "server"]
    assert reads_before == []  # the plan's listing was enough to issue; nothing was confirmed meanwhile
    assert {c[1][0] for c in nova.calls[last_evacuate:] if c[0] == "server"} == set(sids)  # all confirmed
    assert record(attrs, "compute-0").state == rec.DONE


def test_an_old_listing_is_renewed_for_the_whole_host_not_per_instance(tmp_path):
    """More instances than the listing's freshness lets the agent issue (slow answers, few call slots):
    the host's servers are listed again in one call, no instance is read on its own before its call."""
    nova, sids = fenced_host(16, duration=0.01, answer_delay=0.1)
    engine, attrs, _ = make(tmp_path, nova, max_parallel=50, api_concurrency=2)
    engine.fresh_listing = 0.2  # 16 calls two at a time take 0.8 s: the listing gets old three times
    flag(attrs, "compute-0")
    assert finishes(engine, 20)
    assert [nova.evacuations.get(s) for s in sids] == [1] * 16 and nova.broken == []
    called = {c[1][0]: i for i, c in enumerate(nova.calls) if c[0] == "evacuate"}
    inspected = [c[1][0] for i, c in enumerate(nova.calls) if c[0] == "server" and i < called[c[1][0]]]
    assert inspected == []  # no instance read on its own before its call (reads after it are confirmations)
    names = [c[0] for c in nova.calls[:max(called.values())]]
    assert names.count("servers_on_host") >= 3  # the plan and at least two renewals
    assert record(attrs, "compute-0").state == rec.DONE


def test_a_server_changed_since_the_listing_is_inspected_not_issued_again(tmp_path, caplog):
    """Someone evacuates an instance by hand while the agent works through the host: the renewed
    listing shows it busy, so the agent inspects it and waits for it rather than issue a second call."""
    nova, sids = fenced_host(6, duration=0.5, answer_delay=0.1)
    engine, attrs, _ = make(tmp_path, nova, max_parallel=50, api_concurrency=1)
    engine.fresh_listing = 0.3  # renewed at 0.225 s; the last instance is called at about 0.5 s
    flag(attrs, "compute-0")
    with caplog.at_level(logging.INFO, logger="test-evacuation"):
        try:
            end = time.monotonic() + 5
            while time.monotonic() < end and not nova.evacuations:
                engine.step()
            nova.evacuate(sids[-1])  # the operator, on the instance the agent calls last
            assert engine.run_until_idle(20)
        finally:
            engine.close()
    assert [nova.evacuations.get(s) for s in sids] == [1] * 6 and nova.broken == []
    assert "1 instances changed since the last listing" in caplog.text
    assert record(attrs, "compute-0").state == rec.DONE


def test_a_lost_answer_is_never_followed_by_a_second_evacuation(tmp_path):
    nova = MiniNova(duration=1.5)  # still in flight when the in-doubt call is re-checked
    sids = [nova.add_server("compute-0").id for _ in range(3)]
    nova.fence("compute-0")
    nova.fail_evacuate = ["lost", "unavailable"]  # 1st accepted but answer lost; 2nd refused before Nova
    engine, attrs, _ = make(tmp_path, nova, max_parallel=3)
    flag(attrs, "compute-0")
    try:
        assert engine.run_until_idle(15)
    finally:
        engine.close()
    assert nova.broken == []
    assert [nova.evacuations.get(s) for s in sids] == [1, 1, 1]
    assert record(attrs, "compute-0").state == rec.DONE


def test_no_second_evacuation_between_rebuild_end_and_host_move(tmp_path):
    """Measured on the rig under load: task_state is None and the host still the source for a while
    after the rebuild (finish_evacuation waits for a lock); a re-check then must not re-issue."""
    nova = MiniNova(duration=1.2)
    nova.finish_lag = 1.0  # the window opens 0.2 s after the call and lasts 1 s
    sids = [nova.add_server("compute-0").id for _ in range(4)]
    nova.fence("compute-0")
    nova.fail_evacuate = ["lost", "lost", "lost", "lost"]  # every answer lost: every instance re-checked
    engine, attrs, _ = make(tmp_path, nova, max_parallel=4, in_doubt_grace=0.4)
    flag(attrs, "compute-0")
    try:
        assert engine.run_until_idle(20)
    finally:
        engine.close()
    assert nova.broken == []
    assert [nova.evacuations.get(s) for s in sids] == [1] * 4
    assert record(attrs, "compute-0").detail == "4/4"


def test_accepted_migrations_are_seen_although_nova_filters_changes_since_on_updated_at(tmp_path):
    nova, sids = fenced_host(3, duration=1.5)
    engine, attrs, _ = make(tmp_path, nova, max_parallel=3, in_doubt_grace=0.3)
    flag(attrs, "compute-0")
    assert finishes(engine, 20)
    assert [nova.evacuations.get(s) for s in sids] == [1] * 3 and nova.broken == []
    # confirmation came from the per-host listing, not from re-inspecting each server
    assert not [c for c in nova.calls if c[0] == "migrations" and c[1][1] is not None]


def test_host_listings_of_migrations_reach_back_only_to_the_request(tmp_path):
    """The plan's and every poll's listing of the host's migrations are bounded by the request time (less
    the clock slack): the host's older evacuations are history the engine never needs to read again."""
    nova = MiniNova(duration=0.5)
    sids = [nova.add_server("compute-0").id for _ in range(2)]
    nova.fence("compute-0")
    engine, attrs, _ = make(tmp_path, nova, max_parallel=2)
    since = time.time() - 1
    flag(attrs, "compute-0", since)
    try:
        assert engine.run_until_idle(20)
    finally:
        engine.close()
    assert [nova.evacuations.get(s) for s in sids] == [1] * 2
    host_listings = [c[1] for c in nova.calls if c[0] == "migrations" and c[1][0] == "compute-0" and c[1][1] is None]
    assert len(host_listings) >= 2  # the plan's and at least one poll
    assert {args[2] for args in host_listings} == {int(since) - CLOCK_SLACK}


def test_failed_evacuations_are_retried_then_reported(tmp_path):
    nova = MiniNova()
    ok = nova.add_server("compute-0").id
    nova.fence("compute-0")
    nova.fail_evacuate = ["fail"]  # first attempt ends in ERROR, the retry succeeds
    engine, attrs, _ = make(tmp_path, nova, max_parallel=1)
    flag(attrs, "compute-0")
    try:
        assert engine.run_until_idle(15)
    finally:
        engine.close()
    assert nova.evacuations[ok] == 2 and nova.servers[ok].status == "ACTIVE"
    assert record(attrs, "compute-0").state == rec.DONE

    nova2 = MiniNova()
    bad = nova2.add_server("compute-0").id
    nova2.fence("compute-0")
    nova2.fail_evacuate = ["fail", "fail"]
    engine2, attrs2, _ = make(tmp_path, nova2, name="e2", max_parallel=1, max_attempts=2)
    flag(attrs2, "compute-0")
    try:
        assert engine2.run_until_idle(15)
    finally:
        engine2.close()
    assert nova2.evacuations[bad] == 2
    final = record(attrs2, "compute-0")
    assert final.state == rec.FAILED and final.detail.startswith("0/1 1 failed")


def test_a_request_lost_after_nova_accepted_it_is_reported_not_issued_again(tmp_path, caplog):
    """Nova accepted the evacuation, then its message queue dropped it (README, known limits): the migration
    stays `accepted` and the server `rebuilding`. The agent waits, never issues a second evacuation over it,
    and reports the instance failed with words an operator can act on."""
    nova, (sid,) = fenced_host(1)
    nova.fail_evacuate = ["queued-lost"]
    engine, attrs, _ = make(tmp_path, nova, max_parallel=1, max_attempts=2, evacuation_timeout=0.3)
    flag(attrs, "compute-0")
    with caplog.at_level(logging.INFO, logger="test-evacuation"):
        assert finishes(engine, 15)
    assert nova.evacuations[sid] == 1 and not nova.broken
    assert record(attrs, "compute-0").state == rec.FAILED
    assert "still shows the evacuation `accepted`" in caplog.text and "reset-state" in caplog.text
    assert "failed for good after 2 attempts" in caplog.text  # one call, then one more wait: no third


def test_still_in_use_pauses_the_host_without_burning_attempts(tmp_path):
    nova = MiniNova()
    sid = nova.add_server("compute-0").id
    nova.fence("compute-0")
    nova.still_in_use.add("compute-0")
    engine, attrs, _ = make(tmp_path, nova, max_attempts=1, gate_recheck=0.1)
    flag(attrs, "compute-0")
    try:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            engine.step()
        assert engine.hosts["compute-0"].blocked
        nova.still_in_use.clear()
        assert engine.run_until_idle(10)
    finally:
        engine.close()
    assert nova.evacuations[sid] == 1 and record(attrs, "compute-0").state == rec.DONE


def test_resume_after_a_kill_issues_nothing_twice(tmp_path):
    nova = MiniNova(duration=2.0)
    sids = [nova.add_server("compute-0").id for _ in range(6)]
    nova.fence("compute-0")
    attrs = MemoryAttributes()
    first, _, _ = make(tmp_path, nova, attrs=attrs, max_parallel=3)
    nova.answer_delay = 0.3  # the kill lands between Nova accepting and the agent hearing of it
    flag(attrs, "compute-0")
    end = time.monotonic() + 5
    while time.monotonic() < end and len(nova.evacuations) < 3:
        first.step()
    # "kill": the first engine stops dead; whatever it had in flight stays in Nova and on disk
    first.stop.set()
    first.pool.shutdown(wait=True)
    saved = ProgressStore(StateDir(str(tmp_path), "NovaEvacuate", "e1")).load("compute-0")
    assert ISSUING in {i.state for i in saved.instances.values()}  # in doubt on disk, in flight in Nova
    assert record(attrs, "compute-0").state == rec.RUNNING
    nova.answer_delay = 0.0
    second, _, _ = make(tmp_path, nova, attrs=attrs, max_parallel=2)
    try:
        assert second.run_until_idle(15)
    finally:
        second.close()
    assert [nova.evacuations.get(s) for s in sids] == [1] * 6
    assert nova.broken == []
    assert record(attrs, "compute-0").detail == "6/6"


def test_resume_on_another_controller_without_local_state(tmp_path):
    nova = MiniNova(duration=2.0)
    sids = [nova.add_server("compute-0").id for _ in range(4)]
    nova.fence("compute-0")
    attrs = MemoryAttributes()
    first, _, _ = make(tmp_path, nova, attrs=attrs, name="ctl-a", max_parallel=2)
    flag(attrs, "compute-0")
    end = time.monotonic() + 5
    while time.monotonic() < end and len(nova.evacuations) < 2:
        first.step()
    first.stop.set()
    first.pool.shutdown(wait=True)
    second, _, _ = make(tmp_path, nova, attrs=attrs, name="ctl-b", max_parallel=2)  # empty StateDir
    try:
        assert second.run_until_idle(15)
    finally:
        second.close()
    assert [nova.evacuations.get(s) for s in sids] == [1] * 4
    assert record(attrs, "compute-0").detail == "4/4"


def test_nova_outage_during_the_run(tmp_path):
    nova = MiniNova(duration=0.1)
    sids = [nova.add_server("compute-0").id for _ in range(4)]
    nova.fence("compute-0")
    engine, attrs, _ = make(tmp_path, nova, max_parallel=2)
    flag(attrs, "compute-0")
    try:
        for _ in range(40):
            engine.step()
            if nova.evacuations:
                break
        nova.fail_reads = 15
        nova.fail_evacuate = ["unavailable", "unavailable"]
        assert engine.run_until_idle(20)
    finally:
        engine.close()
    assert [nova.evacuations.get(s) for s in sids] == [1] * 4 and nova.broken == []


def test_mass_failure_guard_stops_automatic_evacuation(tmp_path, caplog):
    nova = MiniNova()
    nova.add_server("compute-0")
    nova.add_server("compute-1")
    nova.fence("compute-0")
    nova.fence("compute-1")
    engine, attrs, progress = make(tmp_path, nova, mass_failure_share=50)
    flag(attrs, "compute-0")
    flag(attrs, "compute-1")
    with caplog.at_level(logging.CRITICAL, logger="test-evacuation"):
        try:
            assert engine.run_until_idle(5)
        finally:
            engine.close()
    assert not nova.evacuations
    assert "MASS FAILURE GUARD" in caplog.text
    assert (progress.get("compute-0", rec.PROGRESS_ATTRIBUTE)
            == "blocked: mass failure (2 of 3 hosts down, mass_failure_share 50%)")


def test_mass_failure_guard_counts_a_host_already_evacuated_in_the_window(tmp_path, caplog):
    """Two of three hosts fail two seconds apart: the first is evacuated before the second is
    flagged, but the second crosses the threshold and must be blocked."""
    nova = MiniNova()
    first = nova.add_server("compute-0").id
    second = nova.add_server("compute-1").id
    nova.fence("compute-0")
    engine, attrs, progress = make(tmp_path, nova, mass_failure_share=50)
    flag(attrs, "compute-0")
    with caplog.at_level(logging.CRITICAL, logger="test-evacuation"):
        try:
            assert engine.run_until_idle(5)
            assert record(attrs, "compute-0").state == rec.DONE
            nova.fence("compute-1")
            flag(attrs, "compute-1")
            assert engine.run_until_idle(5)
        finally:
            engine.close()
    assert nova.evacuations.get(first) == 1 and not nova.evacuations.get(second)
    assert "MASS FAILURE GUARD: 2 of 3" in caplog.text
    assert (progress.get("compute-1", rec.PROGRESS_ATTRIBUTE)
            == "blocked: mass failure (2 of 3 hosts down, mass_failure_share 50%)")


def test_target_aggregate_sends_instances_to_reserved_hosts(tmp_path):
    nova = MiniNova(hosts=("compute-0", "compute-1", "spare-1"))
    nova.aggs.append(Aggregate(id="9", name="reserved", hosts=("spare-1",)))
    sids = [nova.add_server("compute-0").id for _ in range(3)]
    nova.fence("compute-0")
    engine, attrs, _ = make(tmp_path, nova, target_aggregate="reserved")
    flag(attrs, "compute-0")
    try:
        assert engine.run_until_idle(10)
    finally:
        engine.close()
    assert {nova.servers[s].host for s in sids} == {"spare-1"}


def test_evacuate_delay_holds_only_the_delayed_host(tmp_path):
    nova = MiniNova(hosts=("compute-0", "compute-1", "compute-2", "compute-3"))
    early = nova.add_server("compute-0").id
    late = nova.add_server("compute-1").id
    nova.fence("compute-0")
    nova.fence("compute-1")
    engine, attrs, _ = make(tmp_path, nova, evacuate_delay=1.0)
    now = time.time()
    flag(attrs, "compute-0", since=now - 10)  # fenced long ago: its delay is over
    flag(attrs, "compute-1", since=int(now) + 1)
    try:
        assert engine.run_until_idle(10)
    finally:
        engine.close()
    assert nova.evacuations == {early: 1, late: 1}
    assert nova.evac_times[early] < now + 0.5
    assert nova.evac_times[late] >= int(now) + 2


def test_cib_nodes_section_parsing():
    xml = """<nodes>
      <node id="1" uname="ctl-1"><instance_attributes id="n1">
        <nvpair id="a" name="computeha-evacuate" value="done;1;x"/></instance_attributes></node>
      <node id="compute-0" type="remote" uname="compute-0"><instance_attributes id="n2">
        <nvpair id="b" name="computeha-evacuate" value="requested;5;ipmi"/>
        <nvpair id="c" name="other" value="1"/></instance_attributes>
        <utilization id="u"><nvpair id="d" name="computeha-evacuate" value="no"/></utilization></node>
      <node id="compute-1" uname="compute-1"/>
    </nodes>"""
    assert parse_nodes_section(xml, "computeha-evacuate") == {"ctl-1": "done;1;x", "compute-0": "requested;5;ipmi"}


def test_file_attributes_are_shared_between_instances(tmp_path):
    path = str(tmp_path / "attrs.json")
    a, b = FileAttributes(path), FileAttributes(path)
    a.set("n1", "x", "1")
    assert b.get("n1", "x") == "1" and b.get_all("x") == {"n1": "1"}
    b.delete("n1", "x")
    assert a.get("n1", "x") is None


def test_nova_time_parsing():
    assert nova_time("1970-01-01T00:01:00.000000") == 60.0
    assert nova_time("1970-01-01T00:01:00Z") == 60.0
    assert nova_time("garbage") == 0.0


def test_retries_wait_while_nova_sees_no_target_instead_of_spending_every_attempt(tmp_path):
    """After a message-bus outage every nova-compute reads down until its next heartbeat: the scheduler
    fails each evacuation at once (no valid host). The retries wait for a compute Nova reports up rather
    than spend max_attempts in seconds and leave the instance dead."""
    nova = MiniNova()
    sid = nova.add_server("compute-0").id
    nova.fence("compute-0")
    engine, attrs, _ = make(tmp_path, nova, max_parallel=1, max_attempts=2, gate_recheck=0.05, evacuate_delay=0.5)
    flag(attrs, "compute-0", since=time.time())
    try:
        deadline = time.monotonic() + 10
        while "compute-0" not in engine.hosts and time.monotonic() < deadline:
            engine.step()
        assert not nova.migs, "issued before the evacuate delay"
        # the outage begins after the claim (before it, the stale-cloud breaker holds the host)
        for other in ("compute-1", "compute-2"):
            nova.services[other] = replace(nova.services[other], state="down")
        while not any(m.status == "error" for m in nova.migs) and time.monotonic() < deadline:
            engine.step()
        assert [m.status for m in nova.migs] == ["error"], "the first attempt did not reach the scheduler"
        held_until = time.monotonic() + 1.0  # far longer than max_attempts backoffs of retry_backoff=0.05
        while time.monotonic() < held_until:
            engine.step()
        assert len(nova.migs) == 1, "a retry was issued although Nova reports no compute up"
        assert record(attrs, "compute-0").state in (rec.REQUESTED, rec.RUNNING)
        nova.services["compute-1"] = replace(nova.services["compute-1"], state="up")
        assert engine.run_until_idle(10)
    finally:
        engine.close()
    assert nova.servers[sid].host == "compute-1" and nova.servers[sid].status == "ACTIVE"
    assert [m.status for m in nova.migs] == ["error", "done"]
    assert record(attrs, "compute-0").state == rec.DONE
