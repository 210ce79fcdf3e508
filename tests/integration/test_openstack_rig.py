"""The OpenStack test rig itself: real Keystone/Nova/Placement/Glance on loopback.

Proves the rig before anything relies on it: the Instance-HA flow with plain
python-novaclient calls, and that the rig's hypervisor tells the truth about guests
(kept when only nova-compute dies, lost on power loss, cleaned up by nova after an
evacuation once the source compute is back).
"""
from __future__ import annotations

import pytest
from novaclient import exceptions as nexc

from tests.rig.openstack import procs

HOST_ATTR = "OS-EXT-SRV-ATTR:host"


def _host(nova, sid: str) -> str:
    return getattr(nova.servers.get(sid), HOST_ATTR)


def test_servers_boot_on_every_compute_with_requested_attributes(openstack_cloud):
    rig = openstack_cloud
    servers = rig.boot_servers(len(rig.compute_hosts), flavor="m1.small", metadata={"ha": "on"},
                               tags=["rig-smoke"], name_prefix="attrs")
    assert sorted(getattr(s, HOST_ATTR) for s in servers) == sorted(rig.compute_hosts)
    for s in servers:
        assert s.status == "ACTIVE"
        assert s.metadata == {"ha": "on"}
        assert s.tags == ["rig-smoke"]
        assert s.flavor["original_name"] == "m1.small"  # embedded flavor (2.47+)
    running = rig.running_guests()
    assert {s.id: {getattr(s, HOST_ATTR)} for s in servers}.items() <= running.items()

    [stopped] = rig.boot_servers(1, power_state="shutoff", hosts=[rig.compute_hosts[0]], name_prefix="off")
    assert stopped.status == "SHUTOFF"
    assert rig.guests(rig.compute_hosts[0])[stopped.id]["running"] is False
    assert stopped.id not in rig.running_guests()


def test_evacuation_smoke_with_plain_novaclient(openstack_cloud):
    """Kill a compute, force it down, evacuate, see ACTIVE elsewhere, restart, see `completed`."""
    rig = openstack_cloud
    nova = rig.nova("2.94")
    hosts = rig.compute_hosts
    victim = hosts[0]
    servers = rig.boot_servers(len(hosts) * 2, name_prefix="smoke")
    assert {getattr(s, HOST_ATTR) for s in servers} == set(hosts)
    moving = next(s for s in servers if getattr(s, HOST_ATTR) == victim)

    rig.kill_compute(victim)
    assert not rig.compute_running(victim)
    # Only nova-compute died: the hypervisor still runs the guest.
    assert victim in rig.running_guests()[moving.id]

    with pytest.raises(nexc.BadRequest):  # not yet known to be down: nova refuses
        nova.servers.evacuate(moving.id)
    svc = rig.compute_service(victim)
    nova.services.force_down(svc.id, True)
    assert rig.compute_service(victim).state == "down"

    nova.servers.evacuate(moving.id)
    rig.wait_servers([moving.id], "ACTIVE", timeout=120)
    dest = _host(nova, moving.id)
    assert dest in hosts and dest != victim
    # Unfenced on purpose: the guest now runs twice, and the query says so.
    assert rig.running_guests()[moving.id] == {victim, dest}
    assert moving.id in rig.zombies()

    migrations = nova.migrations.list(instance_uuid=moving.id, migration_type="evacuation")
    assert [m.status for m in migrations] == ["done"]

    rig.start_compute(victim)

    def completed():
        return [m.status for m in nova.migrations.list(instance_uuid=moving.id,
                                                        migration_type="evacuation")] == ["completed"]
    procs.wait_until(completed, 90, "evacuation of %s completed" % moving.id, interval=1)
    # nova destroyed the leftover guest on the source when its compute came back.
    procs.wait_until(lambda: moving.id not in rig.guests(victim), 30, "leftover guest destroyed")
    assert rig.running_guests()[moving.id] == {dest}
    assert rig.zombies() == {}

    def forced_up():
        try:
            nova.services.force_down(svc.id, False)
            return True
        except nexc.BadRequest:
            return False
    procs.wait_until(forced_up, 60, "force-up accepted", interval=1)
    rig.wait_service_state(victim, "up", timeout=60)
    assert nova.servers.get(moving.id).status == "ACTIVE"


def test_power_loss_loses_guests_and_blocks_nova_compute(openstack_cloud):
    rig = openstack_cloud
    host = rig.compute_hosts[-1]
    [server] = rig.boot_servers(1, hosts=[host], name_prefix="power")
    assert rig.running_guests()[server.id] == {host}

    rig.power_off(host)
    assert rig.power_state(host) == "off"
    assert not rig.compute_running(host)
    assert server.id not in rig.running_guests()
    with pytest.raises(RuntimeError, match="powered off"):
        rig.start_compute(host)

    rig.power_on(host)
    assert rig.compute_running(host)
    assert rig.guests(host) == {}
    rig.wait_service_state(host, "up", timeout=60)


def test_zombie_query_counts_only_running_guests_on_powered_hosts(tmp_path):
    """The record format the driver writes and the query reads (no rig needed)."""
    from tests.rig.openstack.driver import rig_guest_records as records

    records.write_guests(tmp_path, "a", {"u1": {"running": True}, "u2": {"running": False}})
    records.write_guests(tmp_path, "b", {"u1": {"running": True}, "u3": {"running": True}})
    records.write_guests(tmp_path, "c", {"u3": {"running": True}})
    assert records.running_guests(tmp_path, ["a", "b", "c"]) == {"u1": {"a", "b"}, "u3": {"b", "c"}}

    records.set_power(tmp_path, "c", records.POWER_OFF)
    assert records.running_guests(tmp_path, ["a", "b", "c"]) == {"u1": {"a", "b"}, "u3": {"b"}}
    records.wipe_guests(tmp_path, "a")
    assert records.read_guests(tmp_path, "a") == {}
    assert records.running_guests(tmp_path, ["a", "b", "c"]) == {"u1": {"b"}, "u3": {"b"}}
    with pytest.raises(ValueError):
        records.set_power(tmp_path, "a", "maybe")
