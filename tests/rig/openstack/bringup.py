"""From-scratch bring-up of the rig, in dependency order, with bounded waits.

Order: RabbitMQ and MariaDB -> db syncs (in parallel) -> Keystone -> catalog ->
Placement, Glance, fake Neutron -> Nova API, conductor, scheduler -> computes ->
image and flavors -> host discovery.
"""
from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
import time
from typing import Callable, List, Optional

from tests.rig.openstack import bootstrap, commands, procs
from tests.rig.openstack.config import RigPaths, RigSettings, compute_hosts, save_settings
from tests.rig.openstack.configs import DB_USER, Secrets, render_all, url
from tests.rig.openstack.driver import rig_guest_records as records

CONTROL_SERVICES = ["epmd", "rabbitmq", "mariadb", "keystone", "placement", "glance", "fake-neutron",
                    "nova-api", "nova-conductor", "nova-scheduler"]
DATABASES = ("keystone", "placement", "glance", "nova_api", "nova", "nova_cell0")


class _Clock:
    def __init__(self, say: Callable[[str], None]):
        self.t0 = time.monotonic()
        self._say = say

    def __call__(self, msg: str) -> None:
        self._say("[%6.1fs] %s" % (time.monotonic() - self.t0, msg))


def _spawn(paths: RigPaths, name: str, cmd: commands.Command) -> None:
    procs.spawn(name, cmd.argv, cmd.env, paths.run, paths.logs)


def _run(paths: RigPaths, cmd: commands.Command, log: str, timeout: float = 300, stdin_data: bytes = None,
         env_extra: dict = None) -> None:
    env = dict(cmd.env)
    env.update(env_extra or {})
    procs.run(cmd.argv, env, paths.logs / log, timeout, stdin_data=stdin_data)


def _in_background(fn) -> Callable[[], None]:
    """Run fn in a thread; return a join() that re-raises its exception."""
    errors: List[BaseException] = []

    def target():
        try:
            fn()
        except BaseException as exc:  # noqa: B902 - re-raised in join
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()

    def join():
        t.join()
        if errors:
            raise errors[0]
    return join


def wipe(paths: RigPaths) -> None:
    """Remove all run-time state of a stopped rig (keeps the venv)."""
    for d in (paths.data, paths.etc, paths.rabbit, paths.mysql, paths.guests, paths.power, paths.run):
        shutil.rmtree(d, ignore_errors=True)
    if paths.logs.exists():
        for f in paths.logs.iterdir():
            if f.is_file() and not f.name.startswith("install"):
                f.unlink()
    paths.clouds_yaml.unlink(missing_ok=True)


def _start_mariadb(paths: RigPaths, settings: RigSettings, sec: Secrets) -> None:
    (paths.mysql / "data").mkdir(parents=True)
    _run(paths, commands.Command(["mariadb-install-db", "--user=root", "--datadir=%s" % (paths.mysql / "data"),
                                  "--auth-root-authentication-method=socket", "--skip-test-db"],
                                 commands.base_env(paths)), "mariadb-install.out", timeout=120)
    _spawn(paths, "mariadb", commands.mariadb_command(paths, settings))
    client = commands.mariadb_client(paths)

    def answers():
        return subprocess.run(commands.mariadb_client(paths, "-e", "select 1").argv, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    procs.wait_until(answers, 60, "mariadb")
    # SQL on stdin: the password never appears on a command line.
    hosts = sorted({"localhost", "127.0.0.1", settings.bind, "%"})
    sql = []
    for h in hosts:
        sql.append("CREATE USER '%s'@'%s' IDENTIFIED BY '%s';" % (DB_USER, h, sec.db))
        sql.append("GRANT ALL ON *.* TO '%s'@'%s';" % (DB_USER, h))
    sql += ["CREATE DATABASE %s;" % d for d in DATABASES] + ["FLUSH PRIVILEGES;"]
    _run(paths, client, "mariadb-setup.out", timeout=60,
         stdin_data="\n".join(sql).encode())


def bring_up(paths: RigPaths, settings: RigSettings, say: Callable[[str], None] = print,
             compute_command: Optional[Callable[[str], commands.Command]] = None) -> None:
    log = _Clock(say)
    wipe(paths)
    for d in (paths.logs, paths.run, paths.guests, paths.power):
        d.mkdir(parents=True, exist_ok=True)
    for d in ("fernet-keys", "credential-keys", "glance-images", "glance-staging", "glance-tasks",
              "glance-locks", "nova-locks"):
        (paths.data / d).mkdir(parents=True, exist_ok=True)
    hosts = compute_hosts(settings)
    for h in ["controller"] + hosts:
        paths.state_dir(h).mkdir(parents=True, exist_ok=True)
    for h in hosts:
        records.set_power(paths.root, h, records.POWER_ON)
        records.wipe_guests(paths.root, h)
    save_settings(paths, settings)
    sec = Secrets.generate()
    render_all(paths, settings, sec)
    for d in ("mnesia", "log", "home"):
        (paths.rabbit / d).mkdir(parents=True, exist_ok=True)
    log("configuration written to %s" % paths.etc)

    _spawn(paths, "epmd", commands.epmd_command(paths, settings))
    procs.wait_until(lambda: procs.port_open(settings.bind, settings.ports["epmd"]), 30, "epmd")
    _spawn(paths, "rabbitmq", commands.rabbitmq_command(paths, settings))
    _start_mariadb(paths, settings, sec)
    log("mariadb up, rabbitmq starting")

    km = lambda *a: commands.manage_command(paths, "keystone-manage", *a)  # noqa: E731
    join_keystone = _in_background(lambda: _run(paths, km("db_sync"), "sync-keystone.out"))

    def keystone_keys():  # key repositories only: no database needed, so alongside the sync
        _run(paths, km("fernet_setup", "--keystone-user", "root", "--keystone-group", "root"), "keystone-fernet.out")
        _run(paths, km("credential_setup", "--keystone-user", "root", "--keystone-group", "root"),
             "keystone-credential.out")
    join_keys = _in_background(keystone_keys)

    def placement_glance():
        _run(paths, commands.manage_command(paths, "placement-manage", "db", "sync"), "sync-placement.out")
        _run(paths, commands.manage_command(paths, "glance-manage", "db_sync"), "sync-glance.out")
    join_pg = _in_background(placement_glance)

    def nova_dbs():
        nm = lambda *a: commands.manage_command(paths, "nova-manage", *a)  # noqa: E731
        _run(paths, nm("api_db", "sync"), "sync-nova.out")
        # Without --database_connection (which would put a password on argv) nova-manage
        # derives the cell0 URL from [database] connection: database "nova" -> "nova_cell0".
        _run(paths, nm("cell_v2", "map_cell0"), "sync-nova.out")
        _run(paths, nm("cell_v2", "create_cell", "--name", "cell1"), "sync-nova.out")
        _run(paths, nm("db", "sync"), "sync-nova.out")
    join_nova = _in_background(nova_dbs)

    join_keystone()
    log("keystone db synced")
    join_keys()
    ks = url(settings, "keystone", "/v3/")
    # keystone-manage takes the bootstrap password only from argv or its environment: give it a
    # one-time password, then set the real one through the API, so that no child ever holds it.
    one_time = secrets.token_hex(16)
    _run(paths, km("bootstrap", "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
                   "--bootstrap-role-name", "admin", "--bootstrap-service-name", "keystone",
                   "--bootstrap-region-id", "RegionOne", "--bootstrap-admin-url", ks,
                   "--bootstrap-internal-url", ks, "--bootstrap-public-url", ks),
         "keystone-setup.out", env_extra={"OS_BOOTSTRAP_PASSWORD": one_time})
    apis = commands.api_commands(paths, settings)
    _spawn(paths, "keystone", apis["keystone"])
    procs.wait_http(url(settings, "keystone", "/v3"), 120)
    log("keystone up")
    bootstrap.replace_admin_password(ks, one_time, sec.admin)
    bootstrap.create_catalog(paths, settings, sec)
    log("catalog created")

    join_pg()
    log("placement and glance dbs synced")
    _spawn(paths, "placement", apis["placement"])
    _spawn(paths, "glance", apis["glance"])
    _spawn(paths, "fake-neutron", commands.fake_neutron_command(paths, settings))
    _run(paths, commands.rabbitmqctl(paths, settings, "-q", "await_startup", "--timeout", "60"),
         "rabbitmq-wait.out", timeout=90)
    log("rabbitmq up")

    join_nova()
    log("nova dbs synced")
    _spawn(paths, "nova-api", apis["nova-api"])
    _spawn(paths, "nova-conductor", commands.nova_service_command(paths, "nova-conductor"))
    _spawn(paths, "nova-scheduler", commands.nova_service_command(paths, "nova-scheduler"))
    for h in hosts:
        cmd = compute_command(h) if compute_command else commands.compute_command(paths, h)
        _spawn(paths, "nova-compute-%s" % h, cmd)
    for svc in ("placement", "glance", "nova-api", "neutron"):
        procs.wait_http(url(settings, svc, "/"), 120)
    log("placement, glance, fake neutron, nova-api up")
    bootstrap.create_image_and_flavors(paths)
    log("image and flavors created")
    bootstrap.discover_computes(paths, settings, len(hosts))
    log("%d compute hosts registered and mapped: rig up (logs in %s)" % (len(hosts), paths.logs))
