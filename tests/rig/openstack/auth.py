"""Admin keystoneauth1 session for the rig, from its clouds.yaml."""
from __future__ import annotations

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from tests.rig.openstack.config import RigPaths
from tests.rig.openstack.configs import read_cloud


def admin_session(paths: RigPaths) -> ks_session.Session:
    auth = read_cloud(paths)["auth"]
    return ks_session.Session(auth=v3.Password(**auth))


def nova_client(sess: ks_session.Session, microversion: str = "2.94"):
    """python-novaclient on the rig. 2.94: newest version where evacuate keeps servers ACTIVE."""
    from novaclient import client
    return client.Client(microversion, session=sess, region_name="RegionOne")
