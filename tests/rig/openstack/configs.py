"""Render the rig's configuration files (all written once, at a from-scratch bring-up).

Secrets (database, RabbitMQ and service-user passwords) are generated per rig and
live only in these files (mode 0600). The admin password goes to clouds.yaml only.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping

from tests.rig.openstack.commands import COMPUTE_DRIVER
from tests.rig.openstack.config import RigPaths, RigSettings, compute_hosts

SERVICE_USERS = ("nova", "placement", "glance", "neutron")
CLOUD_NAME = "computeha-rig-admin"
REGION = "RegionOne"
DB_USER = "computeha"
RABBIT_USER = "computeha"


@dataclass(frozen=True)
class Secrets:
    admin: str
    db: str
    rabbit: str
    services: Dict[str, str]

    @classmethod
    def generate(cls) -> "Secrets":
        return cls(admin=secrets.token_urlsafe(18), db=secrets.token_hex(16), rabbit=secrets.token_hex(16),
                   services={u: secrets.token_urlsafe(18) for u in SERVICE_USERS})


def url(settings: RigSettings, service: str, path: str = "") -> str:
    return "http://%s:%d%s" % (settings.bind, settings.ports[service], path)


def keystone_url(settings: RigSettings) -> str:
    return url(settings, "keystone", "/v3")


def catalog(settings: RigSettings):
    """(service name, type, endpoint url) for every service in the rig's catalog."""
    return [
        ("nova", "compute", url(settings, "nova-api", "/v2.1")),
        ("placement", "placement", url(settings, "placement")),
        ("glance", "image", url(settings, "glance")),
        # Stand-in: answers the port list queries nova makes for networks='none' servers.
        ("neutron", "network", url(settings, "neutron")),
    ]


def db_url(settings: RigSettings, sec: Secrets, name: str) -> str:
    return "mysql+pymysql://%s:%s@%s:%d/%s?charset=utf8" % (
        DB_USER, sec.db, settings.bind, settings.ports["mariadb"], name)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _ini(sections: Mapping[str, Mapping[str, object]]) -> str:
    out = []
    for name, keys in sections.items():
        out.append("[%s]" % name)
        out.extend("%s = %s" % (k, v) for k, v in keys.items())
        out.append("")
    return "\n".join(out)


def _service_auth(settings: RigSettings, sec: Secrets, user: str) -> Dict[str, str]:
    return {
        "auth_url": keystone_url(settings), "auth_type": "password", "username": user,
        "password": sec.services[user], "project_name": "service",
        "user_domain_name": "Default", "project_domain_name": "Default",
    }


def _authtoken(settings: RigSettings, sec: Secrets, user: str) -> Dict[str, str]:
    keys = {"www_authenticate_uri": keystone_url(settings)}
    keys.update(_service_auth(settings, sec, user))
    keys["service_token_roles_required"] = "true"
    return keys


def render_all(paths: RigPaths, settings: RigSettings, sec: Secrets) -> None:
    etc, data, logs = paths.etc, paths.data, paths.logs
    for d in (etc, paths.rabbit):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    site = paths.venv / "etc"

    _write(etc / "keystone" / "keystone.conf", _ini({
        "DEFAULT": {"log_file": logs / "keystone.log"},
        "database": {"connection": db_url(settings, sec, "keystone")},
        "token": {"provider": "fernet", "expiration": 86400},
        "fernet_tokens": {"key_repository": data / "fernet-keys"},
        "fernet_receipts": {"key_repository": data / "fernet-keys"},
        "credential": {"key_repository": data / "credential-keys"},
        "cache": {"enabled": "false"},
        # Test rig only: cheap password hashing keeps every service-user auth fast.
        "identity": {"password_hash_rounds": 4},
    }))

    _write(etc / "placement" / "placement.conf", _ini({
        "DEFAULT": {"log_file": logs / "placement.log"},
        "placement_database": {"connection": db_url(settings, sec, "placement")},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": _authtoken(settings, sec, "placement"),
    }))

    _write(etc / "glance" / "glance-api.conf", _ini({
        "DEFAULT": {"log_file": logs / "glance.log", "enabled_backends": "fs:file",
                    "worker_self_reference_url": url(settings, "glance")},
        "glance_store": {"default_backend": "fs"},
        "fs": {"filesystem_store_datadir": "%s/" % (data / "glance-images")},
        "os_glance_staging_store": {"filesystem_store_datadir": "%s/" % (data / "glance-staging")},
        "os_glance_tasks_store": {"filesystem_store_datadir": "%s/" % (data / "glance-tasks")},
        "database": {"connection": db_url(settings, sec, "glance")},
        "paste_deploy": {"flavor": "keystone"},
        "keystone_authtoken": _authtoken(settings, sec, "glance"),
        "oslo_concurrency": {"lock_path": data / "glance-locks"},
    }))
    shutil.copy(site / "glance" / "glance-api-paste.ini", etc / "glance" / "glance-api-paste.ini")

    nova = {
        "DEFAULT": {
            "transport_url": "rabbit://%s:%s@%s:%d/" % (RABBIT_USER, sec.rabbit, settings.bind,
                                                        settings.ports["rabbitmq"]),
            "my_ip": settings.bind, "host": "controller",
            "state_path": paths.state_dir("controller"), "log_dir": logs,
            "compute_driver": COMPUTE_DRIVER,
            "heal_instance_info_cache_interval": -1,
            # Fast failure detection for the tests (defaults are 10 and 60).
            "report_interval": 5, "service_down_time": 20,
        },
        "api": {"auth_strategy": "keystone"},
        "api_database": {"connection": db_url(settings, sec, "nova_api")},
        "database": {"connection": db_url(settings, sec, "nova")},
        "conductor": {"workers": 1},
        "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": 10},
        "quota": {"instances": -1, "cores": -1, "ram": -1},
        "keystone_authtoken": _authtoken(settings, sec, "nova"),
        "service_user": dict(_service_auth(settings, sec, "nova"), send_service_user_token="true"),
        "placement": dict(_service_auth(settings, sec, "placement"), region_name=REGION),
        "glance": {"region_name": REGION},
        "neutron": dict(_service_auth(settings, sec, "neutron"), region_name=REGION),
        "oslo_concurrency": {"lock_path": data / "nova-locks"},
    }
    _write(etc / "nova" / "nova.conf", _ini(nova))
    # Under uwsgi oslo.log cannot derive a file name from the program; name it.
    _write(etc / "nova" / "nova-api.conf", _ini({"DEFAULT": {"log_file": logs / "nova-api.log"}}))
    shutil.copy(site / "nova" / "api-paste.ini", etc / "nova" / "api-paste.ini")
    for host in compute_hosts(settings):
        _write(etc / "nova" / ("%s.conf" % host), _ini({"DEFAULT": {
            "host": host,
            # Separate state_path per compute: it holds the node UUID file (compute_id).
            "state_path": paths.state_dir(host),
            "log_file": logs / ("nova-compute-%s.log" % host),
        }}))

    ip_tuple = "{%s}" % ",".join(settings.bind.split("."))
    _write(paths.rabbit / "rabbitmq.conf", "\n".join([
        "listeners.tcp.default = %s:%d" % (settings.bind, settings.ports["rabbitmq"]),
        "loopback_users = none",
        "default_user = %s" % RABBIT_USER,
        "default_pass = %s" % sec.rabbit,
        "",
    ]))
    _write(paths.rabbit / "enabled_plugins", "[].\n")
    _write(paths.rabbit / "rabbitmq-env.conf", "")
    # Never let Erlang start its own epmd daemon: it would escape our process groups.
    _write(paths.rabbit / "erl_args", "-kernel inet_dist_use_interface %s -start_epmd false\n" % ip_tuple)

    write_clouds_yaml(paths, settings, sec.admin)


def write_clouds_yaml(paths: RigPaths, settings: RigSettings, admin_password: str) -> None:
    # JSON is valid YAML; no YAML library needed on either side.
    doc = {"clouds": {CLOUD_NAME: {
        "auth": {"auth_url": keystone_url(settings), "username": "admin", "password": admin_password,
                 "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": REGION, "identity_api_version": 3, "interface": "public",
    }}}
    _write(paths.clouds_yaml, json.dumps(doc, indent=2) + "\n")


def read_cloud(paths: RigPaths) -> Dict:
    """The admin cloud entry of clouds.yaml."""
    return json.loads(paths.clouds_yaml.read_text())["clouds"][CLOUD_NAME]
