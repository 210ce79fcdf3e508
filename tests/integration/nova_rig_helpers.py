"""Helpers for the tests (and the evacuation benchmark) on the real OpenStack rig.

`fence` leaves exactly what a successful power fence plus fence_compute `off` leave
behind: the host without power (its guests gone), its nova-compute service forced
down and disabled with our reason, and (given the cluster attributes) the
evacuation request recorded.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, TypeVar

import pytest

from computeha.ocf_lib import evacuation_record as er
from computeha.ocf_lib.nova_auth import AuthConfig
from computeha.ocf_lib.nova_client import NovaClient

T = TypeVar("T")


def get_rig(request):
    """The session rig: the `openstack_rig` fixture when the rig plugin provides it, else
    the rig's Python API brought up once (idempotent: a healthy rig is reused)."""
    try:
        return request.getfixturevalue("openstack_rig")
    except pytest.FixtureLookupError:
        pass
    from tests.rig.openstack.cloud import OpenStackRig, RigNotInstalled

    rig = OpenStackRig()
    try:
        rig.up(say=lambda msg: None)
    except RigNotInstalled as err:
        pytest.skip(str(err))
    return rig


def wait_for(probe: Callable[[], Optional[T]], timeout: float, what: str, interval: float = 0.3) -> T:
    end = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def admin_credentials(rig) -> dict:
    """auth_url, username, password, project from the rig's private clouds.yaml."""
    import json

    from tests.rig.openstack.configs import read_cloud

    cloud = read_cloud(rig.paths)
    auth = cloud["auth"]
    json.dumps(auth)  # plain data
    return {"auth_url": auth["auth_url"], "username": auth["username"], "password": auth["password"],
            "project_name": auth["project_name"], "region_name": cloud.get("region_name", ""),
            "interface": cloud.get("interface", "public")}


def boot_on(rig, host: str, prefix: str, timeout: float = 120.0):
    """One server on `host`. Right after a host was disabled and re-enabled, placement may still
    carry its COMPUTE_STATUS_DISABLED trait until nova-compute syncs it: retry NoValidHost."""
    end = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return rig.boot_servers(1, hosts=[host], name_prefix=f"{prefix}-{attempt}")[0]
        except RuntimeError as err:
            if "No valid host" not in str(err) or time.monotonic() > end:
                raise
            rig.delete_servers([s.id for s in rig.nova().servers.list(search_opts={"all_tenants": 1})
                                if s.name == f"{prefix}-{attempt}-0"])
            time.sleep(3)


def adapter(rig, **auth) -> NovaClient:
    """Our Nova adapter, authenticated from the rig's clouds.yaml (plus any auth overrides)."""
    values = {"cloud": rig.cloud_name, "clouds_yaml": str(rig.clouds_yaml)}
    values.update({k: str(v) for k, v in auth.items()})
    return NovaClient.from_config(AuthConfig.from_values(values))


def fence(rig, host: str, attrs=None, by: str = "the test", at: Optional[float] = None) -> None:
    """Power cut, service forced down + disabled with our reason, and (with `attrs`) the record requested."""
    rig.power_off(host)
    nova = rig.nova()
    svc = rig.compute_service(host)
    nova.services.force_down(svc.id, True)
    nova.services.disable_log_reason(svc.id, er.disabled_reason(f"fenced by {by}"))
    if attrs is not None:
        attrs.set(host, er.ATTRIBUTE, er.new(er.REQUESTED, by, at).format())
