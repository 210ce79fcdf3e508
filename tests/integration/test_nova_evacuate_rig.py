"""NovaEvacuate on the real OpenStack rig (Keystone, Nova 34 with the fake driver, Placement, Glance).

The rig has no Pacemaker: the cluster records live in a JSON file, and fencing
is what fence_compute `off` does (power cut, service forced down and disabled
with our reason, record `requested`). The engine and the worker process are the
production code with the real Nova adapter; every claim is checked in Nova
itself (server host/status, evacuation migration records per instance).
"""
from __future__ import annotations

import io
import logging
import os
import signal
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import pytest

from computeha.agents import evacuation_worker as worker
from computeha.agents.evacuation_engine import Engine
from computeha.agents.evacuation_params import Settings
from computeha.agents.evacuation_store import ProgressStore
from computeha.ocf_lib import evacuation_record as er
from computeha.ocf_lib import ocf
from computeha.ocf_lib.state import StateDir
from tests.fakes.file_attributes import FileAttributes
from tests.integration.evacuate_proxy import NovaProxy
from tests.integration.nova_rig_helpers import adapter, fence
from tests.unit.evacuation_test_worker import ENV as ATTRS_ENV
from tests.unit.evacuation_test_worker import FileAttrsNovaEvacuate

pytestmark = [pytest.mark.integration, pytest.mark.openstack]

LOG = logging.getLogger("computeha.test.evacuate")


def evacuations_of(rig, server_id: str) -> List[dict]:
    """Evacuation migration records of one instance, read with a plain admin session (2.80)."""
    sess = rig.session()
    resp = sess.get("/os-migrations", endpoint_filter={"service_type": "compute", "interface": "public"},
                    params={"instance_uuid": server_id, "migration_type": "evacuation"},
                    headers={"OpenStack-API-Version": "compute 2.80"})
    return [m for m in resp.json()["migrations"] if m["instance_uuid"] == server_id]


def servers(rig, ids: Iterable[str]) -> Dict[str, object]:
    nova = rig.nova()
    return {sid: nova.servers.get(sid) for sid in ids}


def host_of(server) -> str:
    return getattr(server, "OS-EXT-SRV-ATTR:host")


def engine_for(rig, attrs, tmp_path: Path, name: str = "it", **settings) -> Engine:
    s = Settings(**{"mass_failure_share": 0, "poll_interval": 0.5, "retry_backoff": 1.0, **settings})
    store = ProgressStore(StateDir(str(tmp_path), "NovaEvacuate", name))
    return Engine(adapter(rig), attrs, s, store, LOG, "ctl-test", progress=attrs)


def run_to_idle(rig, attrs, tmp_path: Path, **settings) -> None:
    """One engine with these settings, run until it has nothing left to do (bounded), then closed."""
    engine = engine_for(rig, attrs, tmp_path, **settings)
    try:
        assert engine.run_until_idle(180)
    finally:
        engine.close()


def assert_evacuated_once(rig, server, sid: str, status: Optional[str] = None) -> None:
    """On another compute, in the expected state, with exactly one finished evacuation record."""
    assert host_of(server) in ("compute-1", "compute-2"), sid
    if status:
        assert server.status == status, sid
    assert [m["status"] for m in evacuations_of(rig, sid)] in (["done"], ["completed"]), sid


@pytest.fixture
def attrs(tmp_path):
    return FileAttributes(str(tmp_path / "attrs.json"))


def test_the_right_instances_move_in_the_right_power_state(openstack_cloud, attrs, tmp_path):
    rig = openstack_cloud
    marked = [s.id for s in rig.boot_servers(3, hosts=["compute-0"], metadata={"evacuable": "true"},
                                             name_prefix="ev-marked")]
    tagged_off = [s.id for s in rig.boot_servers(1, hosts=["compute-0"], tags=["evacuable"],
                                                 power_state="shutoff", name_prefix="ev-off")]
    unmarked = [s.id for s in rig.boot_servers(2, hosts=["compute-0"], name_prefix="ev-plain")]
    elsewhere = [s.id for s in rig.boot_servers(1, hosts=["compute-1"], metadata={"evacuable": "true"},
                                                name_prefix="ev-other")]
    moved = marked + tagged_off
    fence(rig, "compute-0", attrs)
    run_to_idle(rig, attrs, tmp_path, no_shared_storage=True, local_disk_policy="rebuild")
    now = servers(rig, moved + unmarked + elsewhere)
    for sid in marked:
        assert_evacuated_once(rig, now[sid], sid, "ACTIVE")
    assert_evacuated_once(rig, now[tagged_off[0]], tagged_off[0], "SHUTOFF")  # power state preserved
    for sid in unmarked:
        assert host_of(now[sid]) == "compute-0" and evacuations_of(rig, sid) == []
    assert host_of(now[elsewhere[0]]) == "compute-1" and evacuations_of(rig, elsewhere[0]) == []
    record = er.parse(attrs.get("compute-0", er.ATTRIBUTE))
    assert record.state == er.DONE and record.detail == "4/4"
    assert attrs.get("compute-0", er.PROGRESS_ATTRIBUTE) == "4/4"
    svc = rig.compute_service("compute-0")
    assert svc.disabled_reason.startswith("computeha:") and "done 4/4" in svc.disabled_reason
    # the zombie-truthful driver: none of these guests runs twice
    assert not set(rig.zombies()) & set(moved + unmarked + elsewhere)


def test_local_disk_policy_skip_moves_only_volume_backed_marked_instances(openstack_cloud, attrs, tmp_path, caplog):
    """Mixed flavors and disks: marked by a flavor extra spec or by server metadata, on local disk or
    boot-from-volume (the rig's stand-in: Nova shows an empty image, see make_volume_backed). With
    no_shared_storage and local_disk_policy=skip only the marked volume-backed ones move; the marked
    local-disk one stays, reported with the reason; an unmarked volume-backed one stays too."""
    rig = openstack_cloud
    nova = rig.nova()
    flavor = nova.flavors.create("ev-marked-flavor", ram=64, vcpus=1, disk=1, flavorid="auto")
    try:
        flavor.set_keys({"evacuable": "true"})
        by_flavor = [s.id for s in rig.boot_servers(2, flavor=flavor.name, hosts=["compute-0"], name_prefix="ev-flv")]
        by_meta = [s.id for s in rig.boot_servers(1, flavor="m1.small", hosts=["compute-0"],
                                                  metadata={"evacuable": "true"}, name_prefix="ev-meta")]
        plain = [s.id for s in rig.boot_servers(1, hosts=["compute-0"], name_prefix="ev-plain")]
        volume_backed, local_disk = [by_flavor[0], by_meta[0]], [by_flavor[1]]
        for sid in volume_backed + plain:
            rig.make_volume_backed(sid)
        assert nova.servers.get(by_meta[0]).image == ""  # what the API shows of a boot-from-volume server
        assert nova.servers.get(local_disk[0]).image["id"]
        fence(rig, "compute-0", attrs)
        with caplog.at_level(logging.INFO, logger=LOG.name):
            run_to_idle(rig, attrs, tmp_path, no_shared_storage=True, local_disk_policy="skip")
        now = servers(rig, volume_backed + local_disk + plain)
        for sid in volume_backed:
            assert_evacuated_once(rig, now[sid], sid, "ACTIVE")
        for sid in local_disk + plain:
            assert host_of(now[sid]) == "compute-0" and evacuations_of(rig, sid) == [], sid
        record = er.parse(attrs.get("compute-0", er.ATTRIBUTE))
        assert record.state == er.DONE and record.detail == "2/2"
        skipped = [r.getMessage() for r in caplog.records if local_disk[0] in r.getMessage()]
        assert any("local disk would be lost (local_disk_policy=skip)" in m for m in skipped), skipped
        assert any("not marked" in r.getMessage() for r in caplog.records if plain[0] in r.getMessage())
        assert not set(rig.zombies()) & set(volume_backed + local_disk + plain)
    finally:
        nova.flavors.delete(flavor.id)


def test_a_host_without_fence_evidence_is_never_evacuated(openstack_cloud, attrs, tmp_path):
    rig = openstack_cloud
    alive = [s.id for s in rig.boot_servers(2, hosts=["compute-1"], name_prefix="ev-alive")]
    dead = [s.id for s in rig.boot_servers(2, hosts=["compute-2"], name_prefix="ev-dead")]
    # compute-1 runs; compute-2 lost power and Nova sees it down, but nobody fenced/forced it down
    rig.power_off("compute-2")
    rig.wait_service_state("compute-2", "down", timeout=90)
    for host in ("compute-1", "compute-2"):
        attrs.set(host, er.ATTRIBUTE, er.new(er.REQUESTED, "forged").format())
    engine = engine_for(rig, attrs, tmp_path)
    try:
        end = time.monotonic() + 8
        while time.monotonic() < end:
            engine.step()
    finally:
        engine.close()
    for sid in alive + dead:
        assert evacuations_of(rig, sid) == []
    now = servers(rig, alive + dead)
    assert {host_of(now[s]) for s in alive} == {"compute-1"}
    assert {host_of(now[s]) for s in dead} == {"compute-2"}
    for host in ("compute-1", "compute-2"):
        assert er.parse(attrs.get(host, er.ATTRIBUTE)).state == er.REQUESTED


def _agent_env(rig, tmp_path: Path, **params) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HA_RSCTMP": str(tmp_path / "rsctmp"),
           "OCF_RESOURCE_INSTANCE": "nova-evacuate", "HA_LOGFILE": str(tmp_path / "agent.log"),
           "OCF_RESKEY_CRM_meta_timeout": "20000", "OCF_RESKEY_CRM_meta_on_node": "ctl-test",
           ATTRS_ENV: str(tmp_path / "attrs.json"),
           "OCF_RESKEY_cloud": rig.cloud_name, "OCF_RESKEY_clouds_yaml": str(rig.clouds_yaml),
           "OCF_RESKEY_mass_failure_share": "0"}
    env.update({f"OCF_RESKEY_{k}": str(v) for k, v in params.items()})
    os.makedirs(env["HA_RSCTMP"], exist_ok=True)
    return env


def _ocf(action: str, env: dict, **extra) -> int:
    return ocf.run(FileAttrsNovaEvacuate(), ["NovaEvacuate", action], {**env, **extra},
                   stdout=io.StringIO(), stderr=io.StringIO())


def _wait(probe, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_kill_9_in_the_middle_then_monitor_resumes_exactly_once(openstack_cloud, attrs, tmp_path):
    rig = openstack_cloud
    ids = [s.id for s in rig.boot_servers(8, hosts=["compute-0"], name_prefix="ev-kill")]
    env = _agent_env(rig, tmp_path, max_parallel=2)
    state = StateDir(env["HA_RSCTMP"], "NovaEvacuate", "nova-evacuate")
    assert _ocf("start", env) == 0
    try:
        fence(rig, "compute-0", attrs)
        # wait until evacuations are in flight (issued, not all finished), then SIGKILL the worker's group
        _wait(lambda: sum(1 for s in ids if evacuations_of(rig, s)) >= 3, 60, "evacuations under way")
        pid = worker.worker_pid(state)
        os.killpg(pid, signal.SIGKILL)
        _wait(lambda: worker.worker_pid(state) is None, 10, "the worker to die")
        done_before = sum(1 for s in ids if any(m["status"] in ("done", "completed") for m in evacuations_of(rig, s)))
        assert done_before < len(ids), "the kill came too late to test anything"
        assert _ocf("monitor", env, OCF_RESKEY_CRM_meta_interval="10000") == 0  # restarts the worker
        assert worker.worker_pid(state) not in (None, pid)
        _wait(lambda: (er.parse(attrs.get("compute-0", er.ATTRIBUTE)) or er.new(er.REQUESTED)).finished, 180,
              "the evacuation record to finish")
    finally:
        assert _ocf("stop", env) == 0
    assert worker.worker_pid(state) is None
    assert er.parse(attrs.get("compute-0", er.ATTRIBUTE)).format().startswith("done;")
    now = servers(rig, ids)
    for sid in ids:
        assert len(evacuations_of(rig, sid)) == 1, sid  # exactly once, never twice
        assert host_of(now[sid]) != "compute-0" and now[sid].status == "ACTIVE"
    assert not set(rig.zombies()) & set(ids)


def test_nova_faults_during_the_run_recover_everything_once(openstack_cloud, attrs, tmp_path):
    rig = openstack_cloud
    ids = [s.id for s in rig.boot_servers(8, hosts=["compute-0"], name_prefix="ev-fault")]
    nova = adapter(rig)
    real = nova.endpoint()
    evacuate_posts = {"n": 0}
    window = {"from": None}

    def fault(method: str, path: str):
        if method == "POST" and path.endswith("/action"):
            evacuate_posts["n"] += 1
            if evacuate_posts["n"] == 2:
                return "drop"  # Nova evacuates, the agent never hears back
            if evacuate_posts["n"] == 3:
                return "refuse"
        if window["from"] is not None and time.monotonic() - window["from"] < 6:
            return 503  # nova-api "down" for 6 s, for every call
        if method == "POST" and evacuate_posts["n"] == 4 and window["from"] is None:
            window["from"] = time.monotonic()
        return None

    with NovaProxy(real, fault=fault) as proxy:
        nova._endpoints["compute"] = proxy.url  # every Nova call of the engine goes through the proxy
        fence(rig, "compute-0", attrs)
        s = Settings(mass_failure_share=0, poll_interval=0.5, retry_backoff=1.0, in_doubt_grace=5.0,
                     max_parallel=3)
        engine = Engine(nova, attrs, s, ProgressStore(StateDir(str(tmp_path), "NovaEvacuate", "faults")), LOG,
                        "ctl-test", progress=attrs)
        try:
            assert engine.run_until_idle(240)
        finally:
            engine.close()
        assert proxy.count("POST", "/action") >= len(ids) + 1  # the dropped/refused calls were there
        assert window["from"] is not None
    now = servers(rig, ids)
    for sid in ids:
        assert len(evacuations_of(rig, sid)) == 1, sid
        assert host_of(now[sid]) != "compute-0" and now[sid].status == "ACTIVE"
    assert er.parse(attrs.get("compute-0", er.ATTRIBUTE)).detail == f"{len(ids)}/{len(ids)}"


def test_a_flavor_marked_only_on_another_hosts_instances_keeps_unmarked_ones_home(openstack_cloud, attrs,
                                                                                    tmp_path):
    """selection=auto: the cloud marks by a flavor extra spec that no instance of the failed host has; its
    unmarked instances stay (the adapter used to have no flavor listing: everything was evacuated)."""
    rig = openstack_cloud
    nova = rig.nova()
    for old in nova.flavors.list(is_public=None):
        if old.name == "ev-gold":
            nova.flavors.delete(old)
    gold = nova.flavors.create("ev-gold", 64, 1, 1)
    before = rig.server_ids()
    try:
        gold.set_keys({"evacuable": "true"})
        elsewhere = [s.id for s in rig.boot_servers(1, hosts=["compute-1"], flavor="ev-gold",
                                                    name_prefix="ev-gold")]
        unmarked = [s.id for s in rig.boot_servers(2, hosts=["compute-0"], name_prefix="ev-plain")]
        fence(rig, "compute-0", attrs)
        run_to_idle(rig, attrs, tmp_path, selection="auto")
        now = servers(rig, unmarked + elsewhere)
        for sid in unmarked:
            assert host_of(now[sid]) == "compute-0" and evacuations_of(rig, sid) == [], sid
        record = er.parse(attrs.get("compute-0", er.ATTRIBUTE))
        assert record.state == er.DONE, record
        assert host_of(now[elsewhere[0]]) == "compute-1"
    finally:
        rig.restore_computes()  # before deleting: a delete on a dead host would hang
        rig.delete_servers(rig.server_ids() - before)  # the flavor cannot go while a server uses it
        nova.flavors.delete(gold)
