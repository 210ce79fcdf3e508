"""The agents' credentials against the real Keystone: a clouds.yaml that names the user's domain and the
project by id (as openstacksdk accepts) authenticates, and a wrong domain id is one clear error."""
from __future__ import annotations

import os
import secrets
import uuid

import pytest
import yaml

from computeha.ocf_lib.nova import NovaAuthError
from computeha.ocf_lib.nova_auth import AuthConfig
from computeha.ocf_lib.nova_client import NovaClient

pytestmark = [pytest.mark.integration, pytest.mark.openstack]



def _keystone(rig, method: str, path: str, **kw):
    """One Keystone admin call with the rig's admin session (path below /v3)."""
    base = yaml.safe_load(rig.clouds_yaml.read_text())["clouds"][rig.cloud_name]["auth"]["auth_url"].rstrip("/")
    response = rig.session().request(base + path, method, raise_exc=True, **kw)
    return response.json() if response.content else {}


@pytest.fixture
def user_in_own_domain(openstack_rig):
    """A domain whose name differs from its id, a user in it with the admin role on the admin project."""
    rig = openstack_rig
    name = f"computeha-ids-{uuid.uuid4().hex[:8]}"
    domain = _keystone(rig, "POST", "/domains", json={"domain": {"name": name}})["domain"]
    password = secrets.token_urlsafe(16)
    try:
        user = _keystone(rig, "POST", "/users", json={"user": {"name": "evacuator", "domain_id": domain["id"],
                                                                   "password": password}})["user"]
        project = _keystone(rig, "GET", "/projects?name=admin")["projects"][0]
        role = _keystone(rig, "GET", "/roles?name=admin")["roles"][0]
        _keystone(rig, "PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
        yield domain, project, password
    finally:
        _keystone(rig, "PATCH", f"/domains/{domain['id']}", json={"domain": {"enabled": False}})
        _keystone(rig, "DELETE", f"/domains/{domain['id']}")


def _clouds_yaml(path, rig, auth: dict) -> str:
    base = yaml.safe_load(rig.clouds_yaml.read_text())["clouds"][rig.cloud_name]
    entry = dict(base, auth={"auth_url": base["auth"]["auth_url"], **auth})
    path.write_text(yaml.safe_dump({"clouds": {"ids": entry}}))
    os.chmod(path, 0o600)
    return str(path)


def test_domain_and_project_ids_from_clouds_yaml_authenticate(openstack_rig, user_in_own_domain, tmp_path):
    domain, project, password = user_in_own_domain
    path = _clouds_yaml(tmp_path / "clouds.yaml", openstack_rig,
                        {"username": "evacuator", "password": password, "user_domain_id": domain["id"],
                         "project_id": project["id"]})
    nova = NovaClient.from_config(AuthConfig.from_values({"cloud": "ids", "clouds_yaml": path}))
    hosts = {s.host for s in nova.compute_services() if s.binary == "nova-compute"}
    assert set(openstack_rig.compute_hosts) <= hosts


def test_a_wrong_domain_id_is_one_clear_error(openstack_rig, user_in_own_domain, tmp_path):
    _, project, password = user_in_own_domain
    path = _clouds_yaml(tmp_path / "clouds.yaml", openstack_rig,
                        {"username": "evacuator", "password": password, "user_domain_id": uuid.uuid4().hex,
                         "project_id": project["id"]})
    nova = NovaClient.from_config(AuthConfig.from_values({"cloud": "ids", "clouds_yaml": path}))
    with pytest.raises(NovaAuthError) as caught:
        nova.compute_services()
    assert password not in str(caught.value) and "Traceback" not in str(caught.value)
