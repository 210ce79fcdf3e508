"""Issue 10: cloud faults during an evacuation, and a seeded SIGKILL loop of the agent, on the real rig.

Each scenario fences compute-0 (power cut, forced down, disabled with our reason,
record `requested`) with N servers on it, injects one fault while evacuations are
in flight, and then checks in Nova and in the rig's zombie-truthful hypervisor:
every instance ACTIVE on another, live host; exactly one (non-failed) evacuation
migration record per instance; no guest running twice; the host's record `done`.
Each also checks that the fault really happened (the proxy counted it, the service
was really down for the time measured, Nova answered 401, ...).

Scenarios 1-6 run the production Engine with the real Nova adapter in a thread
(fault_helpers.EngineThread); scenario 7 runs the real worker process that the
agent's `start` launches, with the cluster records in a JSON file.
"""
from __future__ import annotations

import io
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from computeha.agents import evacuation_worker as worker
from computeha.ocf_lib import evacuation_record as er
from computeha.ocf_lib import ocf
from computeha.ocf_lib.nova_auth import AuthConfig, make_session
from computeha.ocf_lib.state import StateDir
from tests.fakes.file_attributes import FileAttributes
from tests.integration.fault_helpers import (
    SOURCE,
    EngineThread,
    FaultProxy,
    assert_recovered,
    fence,
    issued,
    migrations_from,
    outcome,
    restore,
    taken_by_compute,
    wait_for,
    with_migration,
)
from tests.integration.nova_rig_helpers import adapter
from tests.unit.evacuation_test_worker import ENV as ATTRS_ENV
from tests.unit.evacuation_test_worker import FileAttrsNovaEvacuate

pytestmark = [pytest.mark.integration, pytest.mark.openstack]

N = 6
DONE_STATES = ("done", "completed")


@pytest.fixture
def attrs(tmp_path):
    return FileAttributes(str(tmp_path / "attrs.json"))


@pytest.fixture
def cloud(openstack_cloud):
    """The rig, with every control service a scenario may stop running again afterwards."""
    rig = openstack_cloud
    yield rig
    for name in ("rabbitmq", "nova-api"):
        if not rig.service_running(name):
            rig.start_service(name)


def observe(fault_report, text: str) -> None:
    print(text)  # visible with -rP while the matrix file is left alone
    fault_report.observe(text)


def boot(rig, n: int = N, prefix: str = "fault"):
    return [s.id for s in rig.boot_servers(n, hosts=[SOURCE], name_prefix=prefix)]


def finished(rig, ids) -> int:
    return with_migration(rig, ids, lambda status: status in DONE_STATES)


# --- 1. nova-api really stopped and started again ------------------------------------------------
@pytest.mark.fault("Cloud", "nova-api process stopped mid-evacuation, started again 10 s later",
                   "all recovered, none twice")
def test_nova_api_down_mid_evacuation(cloud, attrs, tmp_path, fault_report):
    rig = cloud
    ids = boot(rig)
    fence(rig, attrs)
    with EngineThread(adapter(rig, api_timeout=10), attrs, tmp_path, max_parallel=2) as run:
        wait_for(lambda: issued(rig, ids) >= 2, 90, "the first evacuations")
        done_before = finished(rig, ids)
        t0 = time.monotonic()
        assert rig.stop_service("nova-api")
        assert not rig.service_running("nova-api")
        stopping = time.monotonic() - t0
        threading.Event().wait(10)  # the outage itself: nova-api stays down for 10 s
        rig.start_service("nova-api")  # returns once it answers again
        down = time.monotonic() - t0 - stopping
        assert run.join(), "the engine did not finish in time"
    out = outcome(rig, ids, attrs)
    assert_recovered(out)
    assert done_before < N, "nova-api stopped after everything was done: nothing tested"
    observe(fault_report, f"nova-api stopped with {done_before}/{N} evacuations finished (SIGTERM, {stopping:.1f} s "
            f"to exit), then gone {down:.1f} s until it answered again; "
            f"{out.summary()}; run {run.seconds:.1f} s")


# --- 2. answers slower than the client timeout -------------------------------------------------------
@pytest.mark.fault("Cloud", "Nova answers slower than the agent's client timeout for ~10 s, one evacuate answer "
                   "lost after Nova acted", "in-doubt calls re-checked, all recovered, none twice")
def test_answers_slower_than_the_client_timeout(cloud, attrs, tmp_path, fault_report):
    rig = cloud
    ids = boot(rig)
    api_timeout, slow, window_s = 4.0, 6.0, 10.0  # slow > api_timeout: every call in the window times out
    nova = adapter(rig, api_timeout=api_timeout)
    state = {"posts": 0, "window": None, "late": None, "slowed": 0}
    lock = threading.Lock()

    def fault(method: str, path: str):
        with lock:
            if method == "POST" and path.endswith("/action"):
                state["posts"] += 1
                if state["posts"] == 2:  # Nova carries it out, the answer comes after the timeout
                    state["late"], state["window"] = path, time.monotonic()
                    return None
            window = state["window"]
            slowed = window is not None and time.monotonic() - window < window_s
            if slowed:
                state["slowed"] += 1
        if slowed:
            time.sleep(slow)  # held before Nova sees it: the caller gives up, Nova acts later
        return None

    def answer_delay(method: str, path: str, status: int) -> float:
        with lock:
            if method == "POST" and path == state["late"]:
                state["late"] = "answered"
                return slow
        return 0.0

    with FaultProxy(nova.endpoint(), answer_delay=answer_delay, fault=fault) as proxy:
        nova._endpoints["compute"] = proxy.url  # every Nova call of the engine goes through the proxy
        fence(rig, attrs)
        # the production in-doubt grace (20 s): a held call reaches Nova up to `slow` s late
        with EngineThread(nova, attrs, tmp_path, max_parallel=3, in_doubt_grace=20.0) as run:
            assert run.join(), "the engine did not finish in time"
        posts = proxy.count("POST", "/action")
    out = outcome(rig, ids, attrs)
    assert_recovered(out)
    assert state["late"] == "answered" and proxy.delayed, "no evacuate answer was held back"
    assert state["slowed"] >= 2, "the slow window never hit a call"
    observe(fault_report, f"{state['slowed']} calls held {slow:.0f} s (> api_timeout {api_timeout:.0f} s) in a "
            f"{window_s:.0f} s window, 1 evacuate answer lost after Nova acted, {posts} evacuate "
            f"POSTs for {N} instances; {out.summary()}; run {run.seconds:.1f} s")


# --- 3. 5xx bursts -----------------------------------------------------------------------------------
@pytest.mark.fault("Cloud", "Nova 5xx bursts: 3 windows of 4 s of 500/503 on every call",
                   "all recovered, none twice")
def test_5xx_bursts(cloud, attrs, tmp_path, fault_report):
    rig = cloud
    ids = boot(rig)
    nova = adapter(rig)
    state = {"start": None}
    on, off, bursts = 4.0, 3.0, 3

    def fault(method: str, path: str):
        if state["start"] is None:
            if method == "POST" and path.endswith("/action"):
                state["start"] = time.monotonic()  # the first evacuate goes through, then the bursts
            return None
        t = time.monotonic() - state["start"]
        k, phase = divmod(t, on + off)
        if k < bursts and phase < on:
            return 500 if int(k) % 2 else 503
        return None

    with FaultProxy(nova.endpoint(), fault=fault) as proxy:
        nova._endpoints["compute"] = proxy.url
        fence(rig, attrs)
        with EngineThread(nova, attrs, tmp_path, max_parallel=3) as run:
            assert run.join(), "the engine did not finish in time"
        codes = proxy.statuses()
        posts = proxy.count("POST", "/action")
    out = outcome(rig, ids, attrs)
    assert_recovered(out)
    assert codes[500] >= 1 and codes[503] >= 1, codes
    observe(fault_report, f"{codes[503]} x 503 + {codes[500]} x 500 answered in {bursts} bursts, {posts} evacuate "
            f"POSTs for {N} instances; {out.summary()}; run {run.seconds:.1f} s")


# --- 4. the agent's Keystone token revoked ---------------------------------------------------------------
def _revoke(rig, token: str) -> int:
    """DELETE /v3/auth/tokens with the admin session; then Keystone's own answer for that token."""
    ks = {"service_type": "identity", "interface": "public"}
    resp = rig.session().delete("/auth/tokens", endpoint_filter=ks, headers={"X-Subject-Token": token})
    assert resp.status_code == 204, resp.status_code
    check = rig.session().get("/auth/tokens", endpoint_filter=ks, headers={"X-Subject-Token": token},
                              raise_exc=False)
    return check.status_code


@pytest.mark.fault("Cloud", "Keystone token of the agent revoked while evacuations are in flight",
                   "Nova answers 401, the agent re-authenticates, all recovered, none twice")
def test_token_revoked_mid_run(cloud, attrs, tmp_path, fault_report):
    rig = cloud
    ids = boot(rig)
    nova = adapter(rig)
    # nova-api keeps a validated token in its in-process cache for minutes (keystonemiddleware
    # without memcached, one nova-api worker on the rig), so revoking the token it has just seen
    # changes nothing there. So the agent is also handed a token that Keystone has revoked and
    # this nova-api never validated: what any other nova-api worker sees after a revocation, or
    # an agent whose cached token was revoked (password change) sees.
    other = make_session(AuthConfig.from_values({"cloud": rig.cloud_name, "clouds_yaml": str(rig.clouds_yaml)}))
    revoked = other.get_token()
    revoked_state = other.auth.get_auth_state()
    gone = {"revoked": _revoke(rig, revoked)}
    state = {"posts": 0, "current": None, "done_before": None}

    def fault(method: str, path: str):
        if method == "POST" and path.endswith("/action"):
            state["posts"] += 1
            if state["posts"] == 2:  # evacuations in flight: the agent's token is revoked
                state["done_before"] = finished(rig, ids)
                state["current"] = nova.session.get_token()
                gone["current"] = _revoke(rig, state["current"])
                nova.session.auth.set_auth_state(revoked_state)
        return None

    with FaultProxy(nova.endpoint(), fault=fault) as proxy:
        nova._endpoints["compute"] = proxy.url
        fence(rig, attrs)
        with EngineThread(nova, attrs, tmp_path, max_parallel=1) as run:
            assert run.join(), "the engine did not finish in time"
        refused = proxy.statuses()[401]
        after = nova.session.get_token()
    out = outcome(rig, ids, attrs)
    assert_recovered(out)
    assert state["current"] is not None, "the run ended before the second evacuate call"
    assert gone == {"revoked": 404, "current": 404}, gone  # Keystone itself no longer knows either token
    assert refused >= 1, "Nova never refused the revoked token"
    assert after not in (revoked, state["current"]), "the agent did not re-authenticate"
    assert state["done_before"] < N
    observe(fault_report, f"agent's tokens revoked at the 2nd evacuate call ({state['done_before']}/{N} finished); "
            f"Nova answered 401 {refused} time(s), the agent re-authenticated (new token); {out.summary()}; "
            f"run {run.seconds:.1f} s")


# --- 5. RabbitMQ restarted ---------------------------------------------------------------------------------
def _nova_subscribed(rig) -> bool:
    """Nova's conductor, scheduler and every running nova-compute consume their queues again."""
    return rig.nova_subscribed([h for h in rig.compute_hosts if rig.compute_running(h)])


@pytest.mark.fault("Cloud", "RabbitMQ stopped and started again mid-evacuation (no request queued in it)",
                   "nova services reconnect; evacuate calls refused meanwhile are retried; all recovered, none "
                   "twice")
def test_rabbitmq_restart(cloud, attrs, tmp_path, fault_report):
    """Nova's queues are not durable: an evacuate request still queued when the broker stops, or published
    after it restarts but before the conductor has declared its queue again, is dropped by RabbitMQ, and the
    server stays `rebuilding` with its migration `accepted` for good (README, known limits: the agent will
    not issue a second evacuation over one Nova shows under way, and cannot tell a lost request from a slow
    scheduler). So the evacuate calls are answered 503 by the proxy (as by an API that cannot reach its
    broker) from before the stop until Nova's services consume their queues again, and the broker stops
    only once no request is queued: the agent keeps going through the outage and every instance is
    recovered once. Rebuilds a compute has started may be under way at the stop (reported, not forced)."""
    rig = cloud
    ids = boot(rig)
    nova = adapter(rig)
    lock = threading.Lock()
    gate = {"closed": False, "forwarded": 0, "refused": 0}

    def fault(method: str, path: str):
        if method == "POST" and path.endswith("/action"):
            with lock:
                if gate["closed"]:
                    gate["refused"] += 1
                    return 503
                gate["forwarded"] += 1
        return None

    def settled() -> bool:  # every forwarded call answered, and no evacuation queued for a conductor or compute
        with lock:
            answered = proxy.count("POST", "/action") - gate["refused"]
            if answered < gate["forwarded"]:
                return False
        return with_migration(rig, ids, lambda status: status == "accepted") == 0

    with FaultProxy(nova.endpoint(), fault=fault) as proxy:
        nova._endpoints["compute"] = proxy.url
        fence(rig, attrs)
        with EngineThread(nova, attrs, tmp_path, timeout=360, max_parallel=2, max_attempts=6) as run:
            wait_for(lambda: taken_by_compute(rig, ids) >= 2, 90, "the first evacuations taken by a compute")
            with lock:
                gate["closed"] = True
            wait_for(settled, 90, "no evacuate request on its way through RabbitMQ")
            done_before = finished(rig, ids)
            under_way = with_migration(rig, ids, lambda status: status == "pre-migrating")
            t0 = time.monotonic()
            assert rig.stop_service("rabbitmq")
            stopped = time.monotonic() - t0
            rig.start_service("rabbitmq")
            down = time.monotonic() - t0
            wait_for(lambda: _nova_subscribed(rig), 180, "Nova's services consuming their queues again", interval=1)
            resubscribed = time.monotonic() - t0
            with lock:
                gate["closed"] = False
            assert run.join(), "the engine did not finish in time"
    out = outcome(rig, ids, attrs)
    assert_recovered(out)
    assert done_before < N
    observe(fault_report, f"RabbitMQ down {down:.1f} s (stop took {stopped:.1f} s) with {done_before}/{N} "
            f"evacuations finished and {under_way} rebuilding; "
            f"Nova's services consumed again {resubscribed:.0f} s after the stop; "
            f"{gate['refused']} evacuate call(s) answered 503 meanwhile; {out.summary()}; run {run.seconds:.1f} s")


# --- 6. the target compute dies while receiving ---------------------------------------------------------------
@pytest.mark.fault("Cloud", "target nova-compute SIGKILLed as the first evacuation is issued, restarted 15 s later",
                   "evacuations sent to it wait in Nova (never re-issued) and finish after its restart; none twice")
def test_target_compute_dies_while_receiving(cloud, attrs, tmp_path, fault_report):
    """Nova casts the rebuild to the scheduled host's queue; until that host's nova-compute takes it the
    migration stays `accepted` and the server `rebuilding`, so the agent waits (it never re-issues over an
    evacuation under way). The queue survives the crash: once the compute is restarted (Pacemaker's
    NovaCompute clone does that), it rebuilds them. A target that never returns keeps them in that state
    until evacuation_timeout x max_attempts, when the agent reports them failed (nothing twice)."""
    rig = cloud
    target = "compute-1"
    ids = boot(rig)
    nova = adapter(rig)
    killed = {"at": None}

    def fault(method: str, path: str):
        if method == "POST" and path.endswith("/action") and killed["at"] is None:
            rig.kill_compute(target)  # dies before Nova even schedules the first evacuation
            killed["at"] = time.monotonic()
        return None

    def unclaimed() -> int:  # scheduled, not taken by any compute yet
        return sum(1 for m in migrations_from(rig) if m["instance_uuid"] in ids and m["status"] == "accepted")

    with FaultProxy(nova.endpoint(), fault=fault) as proxy:
        nova._endpoints["compute"] = proxy.url
        fence(rig, attrs)
        with EngineThread(nova, attrs, tmp_path, timeout=300, max_parallel=3) as run:
            wait_for(lambda: killed["at"] is not None, 90, "the first evacuate call")
            remaining = 15.0 - (time.monotonic() - killed["at"])
            if remaining > 0:
                threading.Event().wait(remaining)  # the compute stays dead 15 s (Pacemaker restarts it)
            waiting = unclaimed()
            assert not rig.compute_running(target)
            rig.start_compute(target)
            down = time.monotonic() - killed["at"]
            assert run.join(), "the engine did not finish in time"
        posts = proxy.count("POST", "/action")
    out = outcome(rig, ids, attrs)
    assert_recovered(out)
    assert posts == N, f"{posts} evacuate calls for {N} instances: something was issued twice"
    # it was dead before the first evacuation reached Nova: whatever runs there arrived after its restart
    assert waiting >= 1 and out.where[target] >= 1, (waiting, out.summary())
    observe(fault_report, f"{target} dead {down:.1f} s; {waiting} evacuation(s) waited unclaimed in Nova, "
            f"{out.where[target]} finished on {target} after its restart; {posts} evacuate calls for {N} "
            f"instances; {out.summary()}; run {run.seconds:.1f} s")


# --- 7. seeded SIGKILL loop of the real worker ----------------------------------------------------------------
RUNS = int(os.environ.get("COMPUTEHA_FAULT_KILL_RUNS", "3"))  # 6 or more: make test-faults-long
KILLS = int(os.environ.get("COMPUTEHA_FAULT_KILLS", "3"))
SEED = int(os.environ.get("COMPUTEHA_FAULT_SEED", "20261121"))
KILL_N = 5


def _agent_env(rig, tmp_path: Path) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HA_RSCTMP": str(tmp_path / "rsctmp"),
           "OCF_RESOURCE_INSTANCE": "nova-evacuate", "HA_LOGFILE": str(tmp_path / "agent.log"),
           "OCF_RESKEY_CRM_meta_timeout": "20000", "OCF_RESKEY_CRM_meta_on_node": "ctl-test",
           ATTRS_ENV: str(tmp_path / "attrs.json"), "OCF_RESKEY_cloud": rig.cloud_name,
           "OCF_RESKEY_clouds_yaml": str(rig.clouds_yaml), "OCF_RESKEY_mass_failure_share": "0",
           "OCF_RESKEY_max_parallel": "2"}
    os.makedirs(env["HA_RSCTMP"], exist_ok=True)
    return env


def _ocf(action: str, env: dict, **extra) -> int:
    return ocf.run(FileAttrsNovaEvacuate(), ["NovaEvacuate", action], {**env, **extra},
                   stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.fault("Agent", "NovaEvacuate worker SIGKILLed at seeded random points, restarted by monitor "
                   "(stop/start after its restart limit), several runs", "every instance evacuated exactly once "
                   "in every run")
def test_seeded_sigkill_loop(cloud, attrs, tmp_path, fault_report):
    rig = cloud
    rnd = random.Random(SEED)
    print(f"SIGKILL loop seed {SEED} ({RUNS} runs x {KILLS} kills)")
    env = _agent_env(rig, tmp_path)
    state = StateDir(env["HA_RSCTMP"], "NovaEvacuate", "nova-evacuate")
    monitor = {"OCF_RESKEY_CRM_meta_interval": "10000"}
    kills, by_monitor, by_restart, at_points, seen = 0, 0, 0, [], []
    phase: Counter = Counter()
    assert _ocf("start", env) == 0
    try:
        for run_no in range(RUNS):
            if run_no:
                restore(rig)
            ids = boot(rig, KILL_N, prefix=f"kill{run_no}")
            fence(rig, attrs)
            t_fence = time.monotonic()
            for _ in range(KILLS):
                threading.Event().wait(rnd.uniform(0.0, 3.0))  # the random point
                pid = worker.worker_pid(state)
                assert pid is not None, "no worker to kill"
                os.killpg(pid, signal.SIGKILL)
                kills += 1
                at_points.append(f"{time.monotonic() - t_fence:.1f}")
                n_issued, n_done = issued(rig, ids), finished(rig, ids)
                phase["before the first call" if not n_issued else
                      "after the last confirmation" if n_done == KILL_N else "with evacuations in flight"] += 1
                wait_for(lambda: worker.worker_pid(state) is None, 10, "the worker to die")
                if _ocf("monitor", env, **monitor) == 0:  # Pacemaker's next monitor restarts it
                    by_monitor += 1
                else:  # restart limit reached: Pacemaker recovers the resource with stop + start
                    assert _ocf("stop", env) == 0 and _ocf("start", env) == 0
                    by_restart += 1
                assert worker.worker_pid(state) not in (None, pid)
            wait_for(lambda: (er.parse(attrs.get(SOURCE, er.ATTRIBUTE)) or er.new(er.REQUESTED)).finished, 240,
                     f"run {run_no}: the evacuation record to finish")
            out = outcome(rig, ids, attrs)
            assert_recovered(out)
            seen.append(sum(out.evacuations.values()))
            # the servers stay: the next failure of the host comes within the engine's CLOCK_SLACK (120 s)
            # of these evacuations, and its record must count only its own instances (assert_recovered)
    finally:
        assert _ocf("stop", env) == 0
    assert worker.worker_pid(state) is None
    assert phase["with evacuations in flight"] >= 1, phase  # the loop really hit a run in progress
    observe(fault_report, f"seed {SEED}: {RUNS} runs x {KILL_N} instances, {kills} SIGKILLs at "
            f"{', '.join(at_points)} s after the fence "
            f"({', '.join(f'{v} {k}' for k, v in sorted(phase.items()))}); "
            f"{by_monitor} restarts by monitor, {by_restart} "
            f"by stop/start; evacuations per run {seen} (each instance exactly once, all ACTIVE "
            f"elsewhere, 0 zombies, record done)")
