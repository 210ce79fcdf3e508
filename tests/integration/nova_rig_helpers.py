"""Helpers for the fence_compute / Nova adapter tests on the real OpenStack rig."""
from __future__ import annotations

import time
from typing import Callable, Optional, TypeVar

import pytest

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
