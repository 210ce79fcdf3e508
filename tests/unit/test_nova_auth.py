"""Credentials, clouds.yaml and the keystoneauth1 session built from them."""
from __future__ import annotations

import os

import pytest

from computeha.ocf_lib.nova_auth import AUTH_PARAMS, AuthConfig, AuthConfigError, load_cloud, make_session

BASE = {"auth_url": "https://keystone.example:5000/v3", "login": "admin", "passwd": "pw-secret-1",
        "tenant_name": "admin"}


def config(**raw: str) -> AuthConfig:
    values, problems = AUTH_PARAMS.parse({**BASE, **raw})
    assert problems == []
    return AuthConfig.from_values(values)


@pytest.mark.parametrize("insecure,verify", [("0", True), ("false", True), ("no", True), ("1", False), ("yes", False)])
def test_insecure_builds_the_session_verify(insecure, verify):
    sess = make_session(config(insecure=insecure))
    assert sess.verify is verify


def test_default_session_verifies_and_has_both_timeouts():
    sess = make_session(config(connect_timeout="2", api_timeout="45"))
    assert sess.verify is True
    assert sess.timeout == (2.0, 45.0)
    plugin = sess.auth
    assert type(plugin).__name__ == "Password" and plugin.auth_url == BASE["auth_url"]


def test_cacert_is_used_for_verification(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    cfg = config(cacert=str(ca))
    assert cfg.verify == str(ca) and make_session(cfg).verify == str(ca)
    assert config(cacert=str(ca), insecure="1").verify is False


def test_application_credential_and_token():
    cfg = config(application_credential_id="ac-id", application_credential_secret="ac-secret-1")
    assert cfg.method == "application_credential" and cfg.problems() == []
    assert type(make_session(cfg).auth).__name__ == "ApplicationCredential"
    cfg = AuthConfig.from_values(AUTH_PARAMS.parse({"auth_url": BASE["auth_url"], "token": "tok-abcdef"})[0])
    assert cfg.method == "token" and type(make_session(cfg).auth).__name__ == "Token"


def test_problems_and_repr_without_secrets():
    cfg = AuthConfig.from_values(AUTH_PARAMS.parse({"login": "a"})[0])
    names = {p.param for p in cfg.problems()}
    assert names == {"auth_url", "password", "project_name"}
    assert "pw-secret-1" not in repr(config())


def test_endpoint_type_spellings():
    assert config(endpoint_type="publicURL").interface == "public"
    assert config(endpoint_type="internalURL").interface == "internal"
    assert config().interface == "internal"
    assert AUTH_PARAMS.parse({**BASE, "endpoint_type": "sideways"})[1]


def test_keystone_v2_url_refused():
    problems = AUTH_PARAMS.parse({**BASE, "auth_url": "http://k:5000/v2.0/"})[1]
    assert problems and "v2.0" in problems[0].message


def write_clouds(path, mode=0o600, version=3):
    path.write_text(
        "clouds:\n  mine:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: u\n"
        "      password: from-yaml-pw\n      project_name: p\n      user_domain_name: UD\n"
        f"    region_name: R1\n    interface: public\n    identity_api_version: {version}\n")
    os.chmod(path, mode)


def test_clouds_yaml(tmp_path):
    path = tmp_path / "clouds.yaml"
    write_clouds(path)
    cfg = AuthConfig.from_values(AUTH_PARAMS.parse({"cloud": "mine", "clouds_yaml": str(path)})[0])
    assert (cfg.auth_url, cfg.username, cfg.password, cfg.user_domain, cfg.region_name, cfg.interface) == (
        "http://127.0.0.1:5000/v3", "u", "from-yaml-pw", "UD", "R1", "public")
    assert cfg.verify is True
    # an explicit parameter wins over the file
    cfg = AuthConfig.from_values(AUTH_PARAMS.parse({"cloud": "mine", "clouds_yaml": str(path),
                                                    "endpoint_type": "internal", "region_name": "R2"})[0])
    assert (cfg.interface, cfg.region_name) == ("internal", "R2")


def test_clouds_yaml_must_be_private_and_v3(tmp_path):
    path = tmp_path / "clouds.yaml"
    write_clouds(path, mode=0o644)
    with pytest.raises(AuthConfigError, match="chmod 600"):
        load_cloud("mine", str(path))
    write_clouds(path, version=2)
    with pytest.raises(AuthConfigError, match="Keystone v3 only"):
        load_cloud("mine", str(path))
    write_clouds(path)
    with pytest.raises(AuthConfigError, match="no cloud named 'other'"):
        load_cloud("other", str(path))
    with pytest.raises(AuthConfigError, match="does not exist"):
        load_cloud("mine", str(tmp_path / "missing.yaml"))


def test_clouds_yaml_ids_reach_keystone_as_ids_and_a_parameter_name_wins(tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text(
        "clouds:\n  ids:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: u\n"
        "      password: from-yaml-pw\n      project_id: 0a1b2c\n      user_domain_id: d0d0d0\n"
        "  named:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: u\n"
        "      password: from-yaml-pw\n      project_name: p\n      project_domain_id: e1e1e1\n"
        "      user_domain_id: d0d0d0\n")
    os.chmod(path, 0o600)
    cfg = AuthConfig.from_values(AUTH_PARAMS.parse({"cloud": "ids", "clouds_yaml": str(path)})[0])
    assert cfg.problems() == []  # a project id is enough: no project_name needed
    plugin = make_session(cfg).auth
    assert (plugin.project_id, plugin.project_name) == ("0a1b2c", None)
    method = plugin.auth_methods[0]
    assert (method.user_domain_id, method.user_domain_name) == ("d0d0d0", None)
    plugin = make_session(AuthConfig.from_values(AUTH_PARAMS.parse({"cloud": "named",
                                                                    "clouds_yaml": str(path)})[0])).auth
    assert (plugin.project_name, plugin.project_domain_id, plugin.project_domain_name) == ("p", "e1e1e1", None)
    # names given as parameters replace the file's ids of the same things
    cfg = AuthConfig.from_values(AUTH_PARAMS.parse({"cloud": "ids", "clouds_yaml": str(path),
                                                    "project_name": "admin", "user_domain": "Default"})[0])
    plugin = make_session(cfg).auth
    assert (plugin.project_id, plugin.project_name, plugin.project_domain_name) == (None, "admin", "Default")
    assert (plugin.auth_methods[0].user_domain_id, plugin.auth_methods[0].user_domain_name) == (None, "Default")
