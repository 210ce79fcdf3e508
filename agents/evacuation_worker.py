"""The NovaEvacuate worker process: launched by `start`, supervised by `monitor`, ended by `stop`.

It runs in its own process group (its PID is the PGID), recorded with its
kernel start time in `<StateDir>/worker.pid` so that a recycled PID is never
mistaken for it. It holds an exclusive lock for its lifetime (never two
workers per resource instance), and leaves as soon as the resource is no
longer active on this node (the `active` state file is gone) or the PID file
names another process. Parameters come through the environment it inherits
from the agent (the password never appears on a command line).
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Mapping, Optional, Tuple

from computeha.ocf_lib import log as ocflog
from computeha.ocf_lib.attrs import AttrdAttributes, NodeAttributes
from computeha.ocf_lib.deadline import Deadline
from computeha.ocf_lib.params import Values
from computeha.ocf_lib.runner import Runner
from computeha.ocf_lib.state import StateDir, rsctmp

ACTIVE = "active"
PIDFILE = "worker.pid"
LOCKFILE = "worker.lock"
RESTARTS = "worker-restarts"
AGENT_NAME = "NovaEvacuate"


# --- process identity -------------------------------------------------------------------------
def _stat(pid: int) -> Optional[Tuple[str, str]]:
    """(state letter, start time) of a process from /proc, None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    return (fields[0], fields[19]) if len(fields) > 19 else None


def read_pidfile(state: StateDir, name: str = PIDFILE) -> Optional[Tuple[int, str]]:
    text = state.read_text(name)
    if not text:
        return None
    parts = text.split()
    try:
        return int(parts[0]), (parts[1] if len(parts) > 1 else "")
    except (ValueError, IndexError):
        return None


def worker_pid(state: StateDir, name: str = PIDFILE) -> Optional[int]:
    """The PID of the live worker of this instance (recorded in ``name``), or None."""
    recorded = read_pidfile(state, name)
    if recorded is None:
        return None
    pid, start = recorded
    seen = _stat(pid)
    if seen is None or seen[0] in ("Z", "X") or (start and seen[1] != start):
        return None
    return pid


def launch(state: StateDir, env: Mapping[str, str], module: str, name: str = PIDFILE,
           entry: str = "worker_main") -> int:
    """Start ``module.entry()`` in its own session/process group and record it in ``name``;
    returns its PID. (NovaCompute's return-to-service process is launched the same way.)"""
    state.ensure()
    paths = [os.path.abspath(p) for p in sys.path if p and os.path.isdir(p)]
    code = f"import sys; sys.path[:0] = {paths!r}; from {module} import {entry}; {entry}()"
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            close_fds=True, cwd="/")
    seen = _stat(proc.pid)
    state.write_text(name, f"{proc.pid} {seen[1] if seen else ''}\n")
    return proc.pid


def stop(state: StateDir, deadline: Deadline, log: logging.Logger, name: str = PIDFILE) -> bool:
    """TERM the worker's process group, then KILL it; True when nothing of it is left."""
    pid = worker_pid(state, name)
    if pid is not None:
        for sig, grace in ((signal.SIGTERM, min(10.0, deadline.remaining() / 2)), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            end = time.monotonic() + deadline.cap(grace)
            while time.monotonic() < end and worker_pid(state, name) == pid:
                time.sleep(0.05)
            if worker_pid(state, name) != pid:
                break
            log.warning("worker %d did not end after %s", pid, signal.Signals(sig).name)
        if worker_pid(state, name) == pid:
            return False
    state.remove(name)
    return True


# --- the worker itself ----------------------------------------------------------------------------
def local_node(env: Mapping[str, str]) -> str:
    return env.get("OCF_RESKEY_CRM_meta_on_node") or os.uname().nodename


def worker_main(records_factory: Optional[Callable[[Runner], NodeAttributes]] = None,
                progress_factory: Optional[Callable[[Runner], Optional[NodeAttributes]]] = None) -> None:
    """Entry point of the worker process (see launch)."""
    env = dict(os.environ)
    instance = env.get("OCF_RESOURCE_INSTANCE", "")
    state = StateDir(rsctmp(env), AGENT_NAME, instance)
    with open(os.devnull, "w") as devnull:
        log = ocflog.setup_ocf(AGENT_NAME, instance, env, devnull)
        code = _serve(env, state, log, records_factory, progress_factory)
    os._exit(code)  # no lingering non-daemon threads


def _serve(env, state: StateDir, log: logging.Logger, records_factory, progress_factory) -> int:
    try:
        lock_fd = os.open(os.path.join(state.path, LOCKFILE), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log.warning("another worker holds the lock of %s: leaving", state.path)
        return 0
    me = os.getpid()
    # the agent writes the PID file right after spawning us: wait for it to name us
    end = time.monotonic() + 5
    while time.monotonic() < end and (read_pidfile(state) or (0, ""))[0] != me:
        time.sleep(0.02)

    def mine() -> bool:
        recorded = read_pidfile(state)
        return state.exists(ACTIVE) and recorded is not None and recorded[0] == me

    if not mine():
        log.warning("worker %d is not the recorded worker of an active resource: leaving", me)
        return 0

    from .evacuation_params import TABLE, Settings
    raw = {name: env.get("OCF_RESKEY_" + name, "") for p in TABLE.for_ocf() for name in p.names}
    values, problems = TABLE.parse(raw, TABLE.for_ocf())
    ocflog.add_secrets(values.secrets())
    if problems:
        log.error("worker cannot run: %s", "; ".join(str(p) for p in problems))
        return 1
    runner = Runner(env)
    from .evacuation_engine import Engine
    from .evacuation_store import CibRecords, ProgressStore
    nova = make_nova(values)
    try:  # token, endpoint and microversion now, not when the first host is flagged
        nova.max_microversion()
    except Exception as err:  # noqa: BLE001 - retried on first use
        log.warning("Nova not reachable yet (will retry when needed): %s", err)
    records = records_factory(runner) if records_factory else CibRecords(runner)
    progress = progress_factory(runner) if progress_factory else AttrdAttributes(runner)
    engine = Engine(nova, records, Settings.from_values(values), ProgressStore(state), log, local_node(env),
                    progress=progress, warm=True)

    def on_signal(signum, _frame):
        engine.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("worker %d watching %s for evacuation requests", me, "computeha-evacuate")
    while not engine.stop.is_set() and mine():
        try:
            engine.step()
        except Exception as err:  # keep watching: a bug in one pass must not end Instance HA
            log.error("evacuation pass failed: %s: %s", type(err).__name__, err)
            engine.stop.wait(1.0)
    engine.stop.set()
    engine.pool.shutdown(wait=False)
    log.info("worker %d leaves (resource stopped)", me)
    return 0


def make_nova(values: Values):
    """The real Nova adapter (imported here: keystoneauth never loads in start/stop/monitor)."""
    from computeha.ocf_lib.nova_auth import AuthConfig
    from computeha.ocf_lib.nova_client import NovaClient
    return NovaClient.from_config(AuthConfig.from_values(values))


__all__ = ["launch", "stop", "worker_pid", "worker_main", "read_pidfile", "ACTIVE", "RESTARTS"]
