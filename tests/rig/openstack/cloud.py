"""Python API of the OpenStack test rig, used by the pytest fixture, the scripts and the demo.

    rig = OpenStackRig()          # paths from COMPUTEHA_RIG_DIR or <repo>/.rig/openstack
    rig.up()                      # idempotent: reuses a healthy rig, restarts dead computes
    nova = rig.nova()             # python-novaclient, admin, microversion 2.94
    rig.boot_servers(6)           # spread over the compute hosts, waits for ACTIVE
    rig.kill_compute("compute-0") # SIGKILL nova-compute only: its guests keep running
    rig.power_off("compute-0")    # power loss: nova-compute dies AND its guests are gone
    rig.running_guests()          # {instance uuid: {hosts really running it}}
    rig.down()

The power helpers are what the cluster rig's BMC calls for chassis power off/on.
"""
from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set

try:
    from computeha.ocf_lib.nova import nova_time
except ImportError:  # the rig's CLI runs in the OpenStack venv, from the checkout, without the project installed
    from ocf_lib.nova import nova_time  # type: ignore[no-redef]  # stdlib only: importable from the checkout
from tests.rig.openstack import bringup, commands, procs
from tests.rig.openstack.auth import admin_session, nova_client
from tests.rig.openstack.config import RIG_PKG_DIR, RigPaths, RigSettings, compute_hosts, load_settings
from tests.rig.openstack.configs import CLOUD_NAME, url
from tests.rig.openstack.driver import rig_guest_records as records

REQUIREMENTS = (RIG_PKG_DIR / "requirements.txt", RIG_PKG_DIR / "constraints.txt")
STAMP_NAME = ".computeha-requirements.sha256"


class RigNotInstalled(RuntimeError):
    pass


def requirements_hash() -> str:
    """Same as install.sh's stamp: sha256 of requirements.txt followed by constraints.txt."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in REQUIREMENTS)).hexdigest()


class OpenStackRig:
    def __init__(self, paths: Optional[RigPaths] = None):
        self.paths = paths or RigPaths.from_env()
        self.settings = load_settings(self.paths)
        self._session = None
        # Hook for the cluster rig: (host, default command) -> command to run, e.g. wrapped
        # in ``ip netns exec <ns>`` with an extra --config-file for the namespace's my_ip.
        self.compute_launcher: Optional[Callable[[str, commands.Command], commands.Command]] = None

    # -- lifecycle -----------------------------------------------------------
    @property
    def compute_hosts(self) -> List[str]:
        return compute_hosts(self.settings)

    @property
    def logs(self):
        return self.paths.logs

    def installed(self) -> bool:
        stamp = self.paths.venv / STAMP_NAME
        return stamp.exists() and stamp.read_text().strip() == requirements_hash()

    def control_healthy(self) -> bool:
        if not all(procs.alive(n, self.paths.run) for n in bringup.CONTROL_SERVICES):
            return False
        if not self.paths.clouds_yaml.exists():
            return False
        checks = [("keystone", "/v3"), ("nova-api", "/"), ("placement", "/"), ("glance", "/"), ("neutron", "/")]
        return all(procs.http_status(url(self.settings, s, p), timeout=5) in (200, 300) for s, p in checks)

    def healthy(self) -> bool:
        return self.control_healthy() and all(self.compute_running(h) for h in self.compute_hosts)

    def up(self, say: Callable[[str], None] = print) -> bool:
        """Make the rig usable. Returns True if it was built from scratch, False if reused."""
        if not self.installed():
            raise RigNotInstalled("OpenStack rig venv missing or stale at %s: run tests/rig/openstack/install.sh"
                                  % self.paths.venv)
        commands.install_driver_shim(self.paths)
        if self.control_healthy():
            for host in self.compute_hosts:
                if not self.compute_running(host):
                    records.set_power(self.paths.root, host, records.POWER_ON)
                    self.start_compute(host)
                    say("restarted nova-compute of %s" % host)
            say("rig already up (logs in %s)" % self.paths.logs)
            return False
        self.down(say=lambda m: None)
        self.settings = RigSettings.from_env()
        self._check_ports_free()
        self._session = None
        bringup.bring_up(self.paths, self.settings, say=say, compute_command=self.compute_command)
        return True

    def down(self, say: Callable[[str], None] = print) -> None:
        """Stop every process the rig recorded (computes first). Keeps data and logs."""
        stopped = []
        for host in self.compute_hosts:
            if procs.stop("nova-compute-%s" % host, self.paths.run, signal.SIGKILL):
                stopped.append(host)
        # APIs and nova services in parallel (a graceful nova stop takes 5-15 s), then the
        # message bus and database they need.
        tail = ["rabbitmq", "epmd", "mariadb"]
        front = [n for n in bringup.CONTROL_SERVICES if n not in tail]
        with ThreadPoolExecutor(len(front)) as pool:
            for name, was in zip(front, pool.map(lambda n: procs.stop(n, self.paths.run), front), strict=True):
                if was:
                    stopped.append(name)
        for name in tail:
            if procs.stop(name, self.paths.run):
                stopped.append(name)
        self._session = None
        say("stopped: %s (logs kept in %s)" % (", ".join(stopped) or "nothing was running", self.paths.logs))

    def memory_mib(self) -> Dict[str, int]:
        """PSS per running rig service (MiB), summed over its process group."""
        names = bringup.CONTROL_SERVICES + ["nova-compute-%s" % h for h in self.compute_hosts]
        out = {}
        for name in names:
            pgid = procs.recorded(name, self.paths.run)
            if pgid is not None:
                out[name] = procs.group_pss_kib(pgid) // 1024
        return out

    def _check_ports_free(self) -> None:
        busy = []
        for name, port in self.settings.ports.items():
            with socket.socket() as s:
                s.settimeout(1)
                if s.connect_ex((self.settings.bind, port)) == 0:
                    busy.append("%s:%d (%s)" % (self.settings.bind, port, name))
        if busy:
            raise RuntimeError("ports already in use by processes the rig did not start: %s; "
                               "set COMPUTEHA_RIG_PORT_OFFSET to move the rig" % ", ".join(busy))

    # -- access ----------------------------------------------------------------
    @property
    def clouds_yaml(self):
        return self.paths.clouds_yaml

    cloud_name = CLOUD_NAME

    def session(self):
        if self._session is None:
            self._session = admin_session(self.paths)
        return self._session

    def nova(self, microversion: str = "2.94"):
        return nova_client(self.session(), microversion)

    # -- one control service (fault tests) -----------------------------------------
    RESTARTABLE = ("nova-api", "nova-conductor", "nova-scheduler", "keystone", "rabbitmq")

    def service_running(self, name: str) -> bool:
        return procs.alive(name, self.paths.run)

    def stop_service(self, name: str, sig: int = signal.SIGTERM) -> bool:
        """Stop one control service (its recorded process group); True if it was running."""
        self._check_service(name)
        return procs.stop(name, self.paths.run, sig)

    def start_service(self, name: str, timeout: float = 120) -> int:
        """Start one control service again (no-op if running) and wait until it answers."""
        self._check_service(name)
        existing = procs.recorded(name, self.paths.run)
        if existing is not None:
            return existing
        if name == "rabbitmq":
            cmd = commands.rabbitmq_command(self.paths, self.settings)
        elif name in ("nova-conductor", "nova-scheduler"):
            cmd = commands.nova_service_command(self.paths, name)
        else:
            cmd = commands.api_commands(self.paths, self.settings)[name]
        pid = procs.spawn(name, cmd.argv, cmd.env, self.paths.run, self.paths.logs)
        if name == "rabbitmq":
            # await_startup fails at once while the node is not registered yet: first its listener
            procs.wait_until(lambda: procs.port_open(self.settings.bind, self.settings.ports["rabbitmq"]),
                             timeout, "rabbitmq listening")
            wait = commands.rabbitmqctl(self.paths, self.settings, "-q", "await_startup", "--timeout",
                                        str(int(timeout)))
            procs.run(wait.argv, wait.env, self.paths.logs / "rabbitmq-wait.out", timeout=timeout + 30)
        elif name in ("nova-api", "keystone"):
            procs.wait_http(url(self.settings, name, "/v3" if name == "keystone" else "/"), timeout)
        return pid

    def rabbit_consumers(self, timeout: float = 30) -> Dict[str, int]:
        """RabbitMQ's queues and how many consumers each has (a restarted broker has none until Nova's
        services reconnect and declare them again; a message published to a queue not declared yet is dropped)."""
        cmd = commands.rabbitmqctl(self.paths, self.settings, "-q", "list_queues", "name", "consumers",
                                   "--no-table-headers")
        res = subprocess.run(cmd.argv, env=dict(cmd.env), stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=timeout)
        if res.returncode != 0:
            return {}
        out: Dict[str, int] = {}
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                out[parts[0]] = int(parts[1])
        return out

    def nova_subscribed(self, hosts: Sequence[str]) -> bool:
        """Nova's conductor, scheduler and the nova-computes of ``hosts`` consume their queues (after a
        broker restart each service declares its queues again on its own schedule)."""
        queues = self.rabbit_consumers()
        wanted = ["conductor", "scheduler"] + [f"compute.{h}" for h in hosts]
        return all(queues.get(q, 0) >= 1 for q in wanted)

    def _check_service(self, name: str) -> None:
        if name not in self.RESTARTABLE:
            raise ValueError("%r cannot be restarted alone (one of %s)" % (name, ", ".join(self.RESTARTABLE)))

    # -- computes and power ------------------------------------------------------
    def compute_command(self, host: str) -> commands.Command:
        """argv + env that start nova-compute of `host` (after the compute_launcher hook)."""
        cmd = commands.compute_command(self.paths, host)
        return self.compute_launcher(host, cmd) if self.compute_launcher else cmd

    def compute_running(self, host: str) -> bool:
        return procs.alive("nova-compute-%s" % host, self.paths.run)

    def kill_compute(self, host: str, sig: int = signal.SIGKILL) -> None:
        """Stop nova-compute of `host` (SIGKILL by default: a crash). Guests keep running."""
        self._check_host(host)
        procs.stop("nova-compute-%s" % host, self.paths.run, sig)

    def start_compute(self, host: str) -> int:
        """Start nova-compute of `host` (no-op if running); refuses when the host has no power."""
        self._check_host(host)
        if records.power_state(self.paths.root, host) != records.POWER_ON:
            raise RuntimeError("%s is powered off; power_on() it first" % host)
        existing = procs.recorded("nova-compute-%s" % host, self.paths.run)
        if existing is not None:
            return existing
        cmd = self.compute_command(host)
        return procs.spawn("nova-compute-%s" % host, cmd.argv, cmd.env, self.paths.run, self.paths.logs)

    def power_off(self, host: str) -> None:
        """Simulate power loss: nova-compute dies and every guest of the host is gone."""
        self._check_host(host)
        records.set_power(self.paths.root, host, records.POWER_OFF)
        procs.stop("nova-compute-%s" % host, self.paths.run, signal.SIGKILL)
        records.wipe_guests(self.paths.root, host)

    def power_on(self, host: str, start_compute: bool = True) -> None:
        """Power the host back on (no guests) and, like a real boot, start nova-compute."""
        self._check_host(host)
        records.set_power(self.paths.root, host, records.POWER_ON)
        if start_compute:
            self.start_compute(host)

    def power_state(self, host: str) -> str:
        return records.power_state(self.paths.root, host)

    # -- the zombie query ---------------------------------------------------------
    def guests(self, host: str) -> Dict[str, Dict]:
        """The guest records of one host (uuid -> {name, state, running})."""
        return records.read_guests(self.paths.root, host)

    def running_guests(self) -> Dict[str, Set[str]]:
        """uuid -> set of hosts actually running that guest."""
        return records.running_guests(self.paths.root, self.compute_hosts)

    def zombies(self) -> Dict[str, Set[str]]:
        """Guests running on more than one host: must always be empty under correct fencing."""
        return {u: h for u, h in self.running_guests().items() if len(h) > 1}

    # -- servers ----------------------------------------------------------------------
    def boot_servers(self, count: int, flavor: str = "m1.tiny", image: str = "tiny",
                     metadata: Optional[Mapping[str, str]] = None, tags: Sequence[str] = (),
                     power_state: str = "active", hosts: Optional[Sequence[str]] = None,
                     name_prefix: str = "rig", timeout: float = 120) -> list:
        """Boot `count` servers round-robin over `hosts` (default: all computes), pinned with
        availability zone ``nova:<host>``; wait for ACTIVE (or SHUTOFF if power_state='shutoff')."""
        if power_state not in ("active", "shutoff"):
            raise ValueError("power_state must be 'active' or 'shutoff'")
        nova = self.nova()
        targets = list(hosts or self.compute_hosts)
        flv = nova.flavors.find(name=flavor)
        img = nova.glance.find_image(image)
        ids = []
        for i in range(count):
            host = targets[i % len(targets)]
            server = nova.servers.create("%s-%d" % (name_prefix, i), img, flv, meta=dict(metadata or {}),
                                         nics="none", availability_zone="nova:%s" % host,
                                         tags=list(tags) or None)
            ids.append(server.id)
        self.wait_servers(ids, "ACTIVE", timeout)
        if power_state == "shutoff":
            for sid in ids:
                nova.servers.stop(sid)
            self.wait_servers(ids, "SHUTOFF", timeout)
        return [nova.servers.get(sid) for sid in ids]

    def wait_servers(self, ids: Iterable[str], status: str, timeout: float = 120) -> None:
        nova = self.nova()
        pending = set(ids)

        def done():
            for sid in list(pending):
                s = nova.servers.get(sid)
                if s.status == "ERROR":
                    raise RuntimeError("server %s went to ERROR: %s" % (sid, getattr(s, "fault", "")))
                if s.status == status and getattr(s, "OS-EXT-STS:task_state") is None:
                    pending.discard(sid)
            return not pending
        procs.wait_until(done, timeout, "servers %s" % status, interval=0.5)

    def delete_servers(self, ids: Iterable[str], timeout: float = 120) -> None:
        from novaclient import exceptions as nexc
        nova = self.nova()
        ids = list(ids)
        for sid in ids:
            try:
                nova.servers.delete(sid)
            except nexc.NotFound:
                pass

        def gone():
            return not any(s.id in ids for s in nova.servers.list(search_opts={"all_tenants": 1}))
        procs.wait_until(gone, timeout, "servers deleted", interval=0.5)

    def make_volume_backed(self, server_id: str) -> None:
        """Make a booted server look boot-from-volume to the API, the stand-in for Cinder this rig lacks.

        Nova shows a boot-from-volume server with an empty ``image`` (its root disk is a volume,
        not a copy of an image), and that is what an evacuation agent can see of it. Clearing the
        instance's image_ref in the cell database gives exactly that view; Nova's own rebuild on
        evacuate then recreates the guest without an image, as it does for a volume-backed one.
        """
        if not all(c in "0123456789abcdef-" for c in server_id):
            raise ValueError("not a server id: %r" % server_id)
        sql = "UPDATE nova.instances SET image_ref='' WHERE uuid='%s' AND deleted=0;" % server_id
        cmd = commands.mariadb_client(self.paths, "-e", sql)
        subprocess.run(cmd.argv, env=cmd.env, check=True, capture_output=True, timeout=30)

    def server_ids(self) -> Set[str]:
        return {s.id for s in self.nova().servers.list(search_opts={"all_tenants": 1})}

    # -- services -----------------------------------------------------------------------
    def compute_service(self, host: str):
        found = self.nova().services.list(host=host, binary="nova-compute")
        if not found:
            raise LookupError("no nova-compute service for %s" % host)
        return found[0]

    def wait_service_state(self, host: str, state: str, timeout: float = 60) -> None:
        procs.wait_until(lambda: self.compute_service(host).state == state, timeout,
                         "nova-compute of %s %s" % (host, state), interval=0.5)

    def restore_computes(self, timeout: float = 90) -> None:
        """Every compute powered on, running, enabled, not forced down, and reported up."""
        from novaclient import exceptions as nexc
        for host in self.compute_hosts:
            if self.power_state(host) != records.POWER_ON:
                self.power_on(host, start_compute=False)
            self.start_compute(host)
        nova = self.nova()
        touched = set()  # hosts whose service record we wrote: that write moves updated_at too
        for host in self.compute_hosts:
            svc = self.compute_service(host)
            if svc.status != "enabled":
                nova.services.enable(svc.id)
                touched.add(host)
            if svc.forced_down:
                # Refused (400) while evacuations from the host are still 'done' rather
                # than 'completed'; the restarted compute completes them within seconds.
                def force_up(svc=svc):
                    try:
                        nova.services.force_down(svc.id, False)
                        return True
                    except nexc.BadRequest:
                        return False
                procs.wait_until(force_up, timeout, "force-up of %s accepted" % host, interval=1)
                touched.add(host)
        for host in self.compute_hosts:
            self.wait_service_state(host, "up", timeout)
        # Nova says "up" on the last heartbeat of the previous nova-compute; a server scheduled to a
        # host whose current nova-compute has not finished init_host is put into ERROR by it.
        # Heartbeats only start after init_host, so one written after the current process started
        # (and after our own writes above) proves it is over, whoever started that process (a
        # test or the cluster rig's detach may have, before this call).
        written = time.time() + 1
        for host in self.compute_hosts:
            began = procs.started_at("nova-compute-%s" % host, self.paths.run) or 0.0
            since = max(began + 1, written if host in touched else 0.0)
            procs.wait_until(lambda host=host, since=since:
                             nova_time(getattr(self.compute_service(host), "updated_at", "")) > since,
                             timeout, "a heartbeat of the current nova-compute of %s" % host, interval=0.5)

    def _check_host(self, host: str) -> None:
        if host not in self.compute_hosts:
            raise ValueError("unknown compute host %r (rig has %s)" % (host, ", ".join(self.compute_hosts)))

