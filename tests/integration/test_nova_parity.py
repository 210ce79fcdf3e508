"""The same Nova scenarios against the in-memory fake and the real rig.

The fake (tests/fakes/fake_nova.py) is what other unit tests build on; this
suite checks that it behaves like nova 34 wherever the agents care: service
state after a crash and a force-down, the 400s on evacuate and on force-up,
migration states accepted -> ... -> done -> completed, and the pre-2.53 path.
"""
from __future__ import annotations

from typing import List

import pytest

from computeha.ocf_lib.nova import NovaBadRequest, NovaNotFound, in_progress
from tests.fakes.fake_nova import FakeNova
from tests.integration.nova_rig_helpers import boot_on, get_rig, wait_for


class FakeWorld:
    kind = "fake"

    def __init__(self, max_mv: str = "2.100") -> None:
        self.fake = FakeNova(max_mv=max_mv)
        self.nova = self.fake
        self.hosts = sorted(self.fake.services)
        self.booted: List[str] = []

    def boot(self, host: str) -> str:
        return self.fake.add_server(host)

    def crash(self, host: str) -> None:
        self.fake.kill_compute(host)  # Nova has not noticed yet

    def make_flavor(self, name: str, specs: dict, public: bool = True) -> None:
        self.fake.flavor_specs[name] = dict(specs)

    def restart(self, host: str) -> None:
        self.fake.start_compute(host)

    def wait(self, probe, what: str, timeout: float = 60):
        for _ in range(20):
            result = probe()
            if result:
                return result
            self.fake.advance()
        raise AssertionError(f"fake never reached: {what}")

    def cleanup(self) -> None:
        pass


class RealWorld:
    kind = "real"

    def __init__(self, rig, max_mv: str = "") -> None:
        from computeha.ocf_lib.nova_auth import AuthConfig
        from computeha.ocf_lib.nova_client import NovaClient

        self.rig = rig
        config = AuthConfig.from_values({"cloud": rig.cloud_name, "clouds_yaml": str(rig.clouds_yaml),
                                         "nova_max_microversion": max_mv})
        self.nova = NovaClient.from_config(config)
        self.hosts = list(rig.compute_hosts)
        self.booted: List[str] = []
        self.flavors: List = []

    def boot(self, host: str) -> str:
        sid = boot_on(self.rig, host, "parity").id
        self.booted.append(sid)
        return sid

    def crash(self, host: str) -> None:
        self.rig.power_off(host)

    def make_flavor(self, name: str, specs: dict, public: bool = True) -> None:
        nova = self.rig.nova()
        for old in nova.flavors.list(is_public=None):
            if old.name == name:
                nova.flavors.delete(old)
        flavor = nova.flavors.create(name, 64, 1, 1, is_public=public)
        flavor.set_keys(dict(specs))
        self.flavors.append(flavor)

    def restart(self, host: str) -> None:
        self.rig.power_on(host)

    def wait(self, probe, what: str, timeout: float = 90):
        return wait_for(probe, timeout, what, interval=0.5)

    def cleanup(self) -> None:
        for flavor in self.flavors:
            self.rig.nova().flavors.delete(flavor)
        self.rig.restore_computes()
        if self.booted:
            self.rig.delete_servers(self.booted)


@pytest.fixture(params=["fake", pytest.param("real", marks=[pytest.mark.integration, pytest.mark.openstack])])
def world(request):
    if request.param == "fake":
        yield FakeWorld()
        return
    w = RealWorld(get_rig(request))
    try:
        yield w
    finally:
        w.cleanup()


@pytest.fixture(params=["fake", pytest.param("real", marks=[pytest.mark.integration, pytest.mark.openstack])])
def old_world(request):
    """Nova pinned below 2.53: services by host+binary, integer ids."""
    if request.param == "fake":
        yield FakeWorld(max_mv="2.52")
        return
    w = RealWorld(get_rig(request), max_mv="2.52")
    try:
        yield w
    finally:
        w.cleanup()


def _svc(world, host: str):
    found = world.nova.compute_services(host)
    assert len(found) == 1
    return found[0]


def test_services_listing(world):
    services = world.nova.compute_services()
    assert sorted(s.host for s in services) == sorted(world.hosts)
    for svc in services:
        assert (svc.binary, svc.state, svc.status, svc.forced_down) == ("nova-compute", "up", "enabled", False)
    assert world.nova.compute_services("no-such-host") == []
    with pytest.raises(NovaNotFound):
        world.nova.server("00000000-0000-0000-0000-000000000000")
    major, minor = (int(x) for x in world.nova.max_microversion().split("."))
    assert (major, minor) >= (2, 53)


def test_fence_evacuate_and_return_lifecycle(world):
    host = world.hosts[-1]
    sid = world.boot(host)
    assert world.nova.server(sid).host == host
    world.crash(host)
    # dead but neither noticed nor forced down: Nova refuses to evacuate
    with pytest.raises(NovaBadRequest) as err:
        world.nova.evacuate(sid)
    assert "still in use" in str(err.value)

    svc = world.nova.force_down(_svc(world, host), True)
    assert svc.forced_down and svc.state == "down"
    svc = world.nova.set_enabled(svc, False, "computeha: parity test")
    assert svc.status == "disabled" and svc.disabled_reason == "computeha: parity test"

    world.nova.evacuate(sid)
    first = world.nova.migrations(source_host=host, instance_uuid=sid)
    assert len(first) == 1 and first[0].migration_type == "evacuation"
    assert first[0].status in ("accepted", "pre-migrating", "done")

    def evacuated():
        server = world.nova.server(sid)
        done = [m for m in world.nova.migrations(source_host=host, instance_uuid=sid) if m.status == "done"]
        return server.host != host and server.task_state is None and done and server

    server = world.wait(evacuated, "evacuation done")
    assert server.status == "ACTIVE" and server.host in world.hosts
    assert in_progress(world.nova.migrations(source_host=host)) == []

    # force-up is refused while `done` records remain (nova 2023.1+)
    with pytest.raises(NovaBadRequest) as err:
        world.nova.force_down(_svc(world, host), False)
    assert "done" in str(err.value)
    assert _svc(world, host).forced_down

    world.restart(host)
    world.wait(lambda: all(m.status == "completed" for m in world.nova.migrations(source_host=host,
                                                                                    instance_uuid=sid)),
               "migrations completed after the source restarted")
    svc = world.nova.force_down(_svc(world, host), False)
    assert not svc.forced_down
    svc = world.nova.set_enabled(svc, True)
    assert svc.status == "enabled" and svc.disabled_reason == ""
    world.wait(lambda: _svc(world, host).state == "up", "service up again")


def test_old_microversion_service_calls(old_world):
    world = old_world
    assert world.nova.max_microversion() == "2.52"
    host = world.hosts[0]
    svc = _svc(world, host)
    assert svc.id.isdigit()  # before 2.53 ids are integers
    svc = world.nova.force_down(svc, True)
    assert svc.forced_down and svc.state == "down"
    svc = world.nova.set_enabled(svc, False, "computeha: old path")
    assert svc.status == "disabled" and svc.disabled_reason == "computeha: old path"
    svc = world.nova.force_down(svc, False)  # no evacuation: accepted
    svc = world.nova.set_enabled(svc, True)
    assert (svc.forced_down, svc.status) == (False, "enabled")


def test_force_down_and_disable_in_one_request(world):
    host = world.hosts[0]
    try:
        svc = world.nova.force_down_and_disable(_svc(world, host), "computeha: one request")
        assert (svc.forced_down, svc.state, svc.status, svc.disabled_reason) == (
            True, "down", "disabled", "computeha: one request")
        again = _svc(world, host)
        assert (again.forced_down, again.status, again.disabled_reason) == (True, "disabled", svc.disabled_reason)
    finally:
        svc = world.nova.force_down(_svc(world, host), False)
        world.nova.set_enabled(svc, True)


def test_flavor_extra_specs_are_listed_cloud_wide_private_flavors_included(world):
    world.make_flavor("computeha-parity-gold", {"evacuable": "true"}, public=False)
    world.make_flavor("computeha-parity-plain", {"hw:cpu_policy": "shared"})
    found = world.nova.flavors_with_extra_spec("evacuable")
    assert found.get("computeha-parity-gold") == "true", found
    assert "computeha-parity-plain" not in found


def test_flavor_extra_specs_below_2_61_are_read_per_flavor(old_world):
    old_world.make_flavor("computeha-parity-old", {"evacuable": "false"})
    assert old_world.nova.flavors_with_extra_spec("evacuable").get("computeha-parity-old") == "false"
