"""The command line and environment of every rig service, built in one place.

The cluster rig runs each nova-compute inside that compute's own network/mount
namespace: it takes ``compute_command(host)`` and wraps the argv (``ip netns exec``,
``nsenter``), keeping the environment. Nothing here depends on being on loopback
except the default bind address in the settings.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from tests.rig.openstack.config import RIG_PKG_DIR, RigPaths, RigSettings

RABBIT_LIB = Path("/usr/lib/rabbitmq/bin")
MARIADBD = "/usr/sbin/mariadbd"
DRIVER_DIR = RIG_PKG_DIR / "driver"
FAKE_NEUTRON = RIG_PKG_DIR / "fake_neutron.py"


@dataclass(frozen=True)
class Command:
    argv: List[str]
    env: Dict[str, str]


def base_env(paths: RigPaths) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TZ", "TMPDIR", "HOME")}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["PATH"] = "%s:%s" % (paths.venv / "bin", env["PATH"])
    env["LC_ALL"] = "C.UTF-8"
    env["PYTHONWARNINGS"] = "ignore"
    env["COMPUTEHA_RIG_DIR"] = str(paths.root)
    return env


def rabbit_env(paths: RigPaths, settings: RigSettings) -> Dict[str, str]:
    r = paths.rabbit
    erl_args = (r / "erl_args").read_text().strip() if (r / "erl_args").exists() else ""
    env = base_env(paths)
    env.update({
        "HOME": str(r / "home"),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": "rabbit@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": settings.bind,
        "RABBITMQ_NODE_PORT": str(settings.ports["rabbitmq"]),
        "RABBITMQ_DIST_PORT": str(settings.ports["rabbitmq-dist"]),
        "ERL_EPMD_ADDRESS": settings.bind,
        "ERL_EPMD_PORT": str(settings.ports["epmd"]),
        # Without this the distribution port listens on every address.
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": erl_args,
        "RABBITMQ_CTL_ERL_ARGS": erl_args,
        "RABBITMQ_MNESIA_BASE": str(r / "mnesia"),
        "RABBITMQ_LOG_BASE": str(r / "log"),
        "RABBITMQ_CONFIG_FILE": str(r / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(r / "enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": str(r / "rabbitmq-env.conf"),
        "RABBITMQ_PID_FILE": str(paths.run / "rabbitmq.erlpid"),
    })
    return env


def epmd_command(paths: RigPaths, settings: RigSettings) -> Command:
    return Command(["epmd", "-address", settings.bind, "-port", str(settings.ports["epmd"])],
                   rabbit_env(paths, settings))


def rabbitmq_command(paths: RigPaths, settings: RigSettings) -> Command:
    # Not Debian's /usr/sbin wrapper: that one switches to the rabbitmq user.
    return Command([str(RABBIT_LIB / "rabbitmq-server")], rabbit_env(paths, settings))


def rabbitmqctl(paths: RigPaths, settings: RigSettings, *args: str) -> Command:
    return Command([str(RABBIT_LIB / "rabbitmqctl")] + list(args), rabbit_env(paths, settings))


def mariadb_socket(paths: RigPaths) -> Path:
    return paths.run / "mysqld.sock"


def mariadb_client(paths: RigPaths, *args: str) -> Command:
    """The mariadb client as the database's root, over the rig's socket (no password: socket auth)."""
    return Command(["mariadb", "--no-defaults", "-S", str(mariadb_socket(paths)), "-u", "root", *args],
                   base_env(paths))


def mariadb_command(paths: RigPaths, settings: RigSettings) -> Command:
    return Command([
        MARIADBD, "--no-defaults", "--user=root", "--datadir=%s" % (paths.mysql / "data"),
        "--socket=%s" % mariadb_socket(paths), "--pid-file=%s" % (paths.run / "mysqld.mpid"),
        "--bind-address=%s" % settings.bind, "--port=%d" % settings.ports["mariadb"],
        "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=128M",
        "--innodb-flush-log-at-trx-commit=0", "--max-connections=1000",
        "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
        "--log-error=%s" % (paths.logs / "mariadb.err"),
    ], base_env(paths))


def uwsgi_command(paths: RigPaths, settings: RigSettings, name: str, module: str,
                  extra_env: Dict[str, str]) -> Command:
    env = base_env(paths)
    env.update(extra_env)
    return Command([
        str(paths.bin("uwsgi")), "--http-socket", "%s:%d" % (settings.bind, settings.ports[name]),
        "--home", str(paths.venv), "--module", module, "--master", "--processes", "1",
        "--threads", "8", "--enable-threads", "--die-on-term", "--need-app", "--lazy-apps",
        "--buffer-size", "65535", "--http-chunked-input", "--http-raw-body",
        # uwsgi closes after each answer; say so, or pooled clients race the close (ECONNRESET).
        "--add-header", "Connection: close", "--procname-prefix", "%s-" % name, "--disable-logging",
    ], env)


def api_commands(paths: RigPaths, settings: RigSettings) -> Dict[str, Command]:
    etc = paths.etc
    return {
        "keystone": uwsgi_command(paths, settings, "keystone", "keystone.wsgi.api:application",
                                  {"OS_KEYSTONE_CONFIG_DIR": str(etc / "keystone")}),
        "placement": uwsgi_command(paths, settings, "placement", "placement.wsgi.api:application",
                                   {"OS_PLACEMENT_CONFIG_DIR": str(etc / "placement")}),
        "glance": uwsgi_command(paths, settings, "glance", "glance.wsgi.api:application",
                                {"OS_GLANCE_CONFIG_DIR": str(etc / "glance")}),
        "nova-api": uwsgi_command(paths, settings, "nova-api", "nova.wsgi.osapi_compute:application", {
            "OS_NOVA_CONFIG_DIR": str(etc / "nova"),
            "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf;nova-api.conf"}),
    }


def fake_neutron_command(paths: RigPaths, settings: RigSettings) -> Command:
    return Command([str(paths.bin("python")), str(FAKE_NEUTRON), settings.bind, str(settings.ports["neutron"]),
                    str(paths.logs / "fake-neutron.log")], base_env(paths))


def nova_conf_args(paths: RigPaths) -> List[str]:
    return ["--config-file", str(paths.etc / "nova" / "nova.conf")]


def nova_service_command(paths: RigPaths, binary: str) -> Command:
    return Command([str(paths.bin(binary))] + nova_conf_args(paths)
                   + ["--log-file", str(paths.logs / ("%s.log" % binary))], base_env(paths))


# nova 34 only loads drivers from the nova.virt package: a one-line shim module there
# imports the real driver from DRIVER_DIR (on nova-compute's PYTHONPATH).
DRIVER_SHIM = "computeha_rig"
COMPUTE_DRIVER = DRIVER_SHIM + ".ZombieTruthfulDriver"


def install_driver_shim(paths: RigPaths) -> None:
    text = ('"""Written by the computeha OpenStack test rig; see tests/rig/openstack/driver/."""\n'
            "from rig_zombie_driver import ZombieTruthfulDriver  # noqa: F401\n")
    found = sorted(paths.venv.glob("lib/python3*/site-packages/nova/virt"))
    if not found:
        raise RuntimeError("nova is not installed in %s" % paths.venv)
    shim = found[-1] / (DRIVER_SHIM + ".py")
    if not shim.exists() or shim.read_text() != text:
        shim.write_text(text)


def compute_command(paths: RigPaths, host: str) -> Command:
    """nova-compute of `host` with the rig's zombie-truthful driver.

    Wrap ``argv`` to run it elsewhere (e.g. ``["ip", "netns", "exec", ns] + argv``);
    the environment carries everything else the driver needs.
    """
    env = base_env(paths)
    env["PYTHONPATH"] = str(DRIVER_DIR)
    return Command([str(paths.bin("nova-compute"))] + nova_conf_args(paths)
                   + ["--config-file", str(paths.etc / "nova" / ("%s.conf" % host))], env)


def manage_command(paths: RigPaths, tool: str, *args: str) -> Command:
    conf = {
        "keystone-manage": ["--config-file", str(paths.etc / "keystone" / "keystone.conf")],
        "placement-manage": ["--config-file", str(paths.etc / "placement" / "placement.conf")],
        "glance-manage": ["--config-file", str(paths.etc / "glance" / "glance-api.conf")],
        "nova-manage": nova_conf_args(paths),
    }[tool]
    return Command([str(paths.bin(tool))] + conf + list(args), base_env(paths))
