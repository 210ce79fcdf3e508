"""Cloud contents the tests rely on: service users and catalog, one tiny image, flavors,
and the compute hosts mapped into cell1. Plain REST through keystoneauth1, one process."""
from __future__ import annotations

import io

from tests.rig.openstack import commands, procs
from tests.rig.openstack.auth import admin_session, nova_client
from tests.rig.openstack.config import RigPaths, RigSettings
from tests.rig.openstack.configs import REGION, Secrets, catalog

IMAGE_NAME = "tiny"
# name -> (flavor id, RAM MiB, vCPUs, disk GiB)
FLAVORS = {"m1.tiny": ("1", 64, 1, 1), "m1.small": ("2", 128, 1, 1)}


def replace_admin_password(auth_url: str, one_time: str, password: str) -> None:
    """Swap keystone-manage's one-time bootstrap password for the rig's admin password."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3
    s = ks_session.Session(auth=v3.Password(auth_url=auth_url, username="admin", password=one_time,
                                            project_name="admin", user_domain_name="Default",
                                            project_domain_name="Default"))
    ep = {"endpoint_filter": {"service_type": "identity", "interface": "public"}}
    user_id = s.get_user_id()
    s.post(f"/users/{user_id}/password", json={"user": {"original_password": one_time, "password": password}},
           **ep)
    # Keystone revokes the user's tokens at the password change with one-second granularity:
    # a token issued within that second is refused. Poll until a fresh token is accepted.
    import time

    from keystoneauth1 import exceptions as ks_exc
    deadline = time.monotonic() + 30
    while True:
        fresh = ks_session.Session(auth=v3.Password(auth_url=auth_url, username="admin", password=password,
                                                    project_name="admin", user_domain_name="Default",
                                                    project_domain_name="Default"))
        try:
            fresh.get("/roles", **ep)
            return
        except ks_exc.Unauthorized:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def create_catalog(paths: RigPaths, settings: RigSettings, sec: Secrets) -> None:
    s = admin_session(paths)
    ep = {"endpoint_filter": {"service_type": "identity", "interface": "public"}}
    # The catalog URL already ends in /v3/: paths below must not repeat it.
    roles = {r["name"]: r["id"] for r in s.get("/roles", **ep).json()["roles"]}
    if "service" not in roles:
        roles["service"] = s.post("/roles", json={"role": {"name": "service"}}, **ep).json()["role"]["id"]
    project = s.post("/projects", json={"project": {"name": "service", "domain_id": "default"}},
                     **ep).json()["project"]["id"]
    for user, password in sec.services.items():
        uid = s.post("/users", json={"user": {"name": user, "password": password, "domain_id": "default"}},
                     **ep).json()["user"]["id"]
        for role in ("admin", "service"):
            s.put("/projects/%s/users/%s/roles/%s" % (project, uid, roles[role]), **ep)
    for name, stype, endpoint in catalog(settings):
        sid = s.post("/services", json={"service": {"name": name, "type": stype}}, **ep).json()["service"]["id"]
        for iface in ("public", "internal", "admin"):
            s.post("/endpoints", json={"endpoint": {"service_id": sid, "interface": iface, "url": endpoint,
                                                     "region_id": REGION}}, **ep)


def create_image_and_flavors(paths: RigPaths) -> None:
    s = admin_session(paths)
    img = {"endpoint_filter": {"service_type": "image", "interface": "public"}}
    image = s.post("/v2/images", json={"name": IMAGE_NAME, "disk_format": "raw", "container_format": "bare",
                                       "visibility": "public"}, **img).json()
    # The fake driver never reads it, but nova-api checks the image with Glance at boot.
    s.put("/v2/images/%s/file" % image["id"], data=io.BytesIO(b"\0" * (1 << 20)),
          headers={"Content-Type": "application/octet-stream"}, **img)
    procs.wait_until(lambda: s.get("/v2/images/%s" % image["id"], **img).json()["status"] == "active",
                     60, "image %s active" % IMAGE_NAME)
    nova = nova_client(s)
    for name, (fid, ram, vcpus, disk) in FLAVORS.items():
        nova.flavors.create(name, ram=ram, vcpus=vcpus, disk=disk, flavorid=fid)


def discover_computes(paths: RigPaths, settings: RigSettings, count: int, timeout: float = 120) -> None:
    """Wait for `count` nova-compute services, map their nodes into cell1, wait for the hypervisors."""
    nova = nova_client(admin_session(paths))
    procs.wait_until(lambda: len([x for x in nova.services.list(binary="nova-compute") if x.state == "up"]) >= count,
                     timeout, "%d nova-compute services up" % count, interval=0.5)

    def mapped():
        return len(nova.hypervisors.list(detailed=False)) >= count

    # nova-scheduler maps new hosts every 10 s (discover_hosts_in_cells_interval); running
    # nova-manage as well only costs CPU. It stays as the fallback.
    try:
        procs.wait_until(mapped, 45, "hypervisors mapped by the scheduler", interval=1)
        return
    except TimeoutError:
        pass
    cmd = commands.manage_command(paths, "nova-manage", "cell_v2", "discover_hosts")
    procs.run(cmd.argv, cmd.env, paths.logs / "discover.out", timeout=120)
    procs.wait_until(mapped, 60, "%d hypervisors mapped" % count, interval=1)
