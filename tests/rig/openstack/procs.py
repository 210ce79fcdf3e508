"""Start and stop rig processes by the process group we recorded, nothing else.

Each service runs in its own session (its PID is its PGID). The pid file holds the
PID and the process start time, so a stale file can never make us signal a
process that merely reuses the PID.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

# Children we started from this process: polled so that dead ones do not linger as zombies.
_CHILDREN: Dict[int, subprocess.Popen] = {}


def _reap() -> None:
    # Called from several threads (parallel stops): pop, never del.
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            _CHILDREN.pop(pid, None)


def _stat(pid: int) -> Optional[Tuple[str, str]]:
    """(state, start time) of a process, or None when it does not exist."""
    try:
        raw = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], fields[19]


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], run_dir: Path, log_dir: Path,
          cwd: Optional[Path] = None) -> int:
    """Start argv in a new session, output to <log_dir>/<name>.out; record it as <name>."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / ("%s.out" % name), "ab") as out:
        proc = subprocess.Popen(list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                cwd=str(cwd) if cwd else None)
    _CHILDREN[proc.pid] = proc
    st = _stat(proc.pid)
    (run_dir / ("%s.pid" % name)).write_text("%d %s\n" % (proc.pid, st[1] if st else "?"))
    return proc.pid


def recorded(name: str, run_dir: Path) -> Optional[int]:
    """The PGID of service `name` if it is recorded and still the same live process."""
    _reap()
    try:
        pid_s, start = (run_dir / ("%s.pid" % name)).read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_s)
    st = _stat(pid)
    if st is None or st[0] == "Z" or st[1] != start:
        return None
    return pid


def started_at(name: str, run_dir: Path) -> Optional[float]:
    """Wall-clock time service `name` was started (its pid file is written at spawn), None if not running."""
    if recorded(name, run_dir) is None:
        return None
    try:
        return (run_dir / ("%s.pid" % name)).stat().st_mtime
    except OSError:
        return None


def alive(name: str, run_dir: Path) -> bool:
    return recorded(name, run_dir) is not None


def _group_exists(pgid: int) -> bool:
    _reap()
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left in the group count as gone.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def group_pss_kib(pgid: int) -> int:
    """Proportional set size of a process group, KiB (memory reports)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            if int(raw[raw.rindex(")") + 2:].split()[2]) != pgid:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def stop(name: str, run_dir: Path, sig: int = signal.SIGTERM, grace: float = 15.0) -> bool:
    """Signal the recorded process group; KILL it after `grace` seconds. True if it was running."""
    pgid = recorded(name, run_dir)
    pidfile = run_dir / ("%s.pid" % name)
    if pgid is None:
        pidfile.unlink(missing_ok=True)
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while _group_exists(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_exists(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while _group_exists(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    return True


def http_status(url: str, timeout: float = 5.0) -> Optional[int]:
    """HTTP status of GET url, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll predicate until it returns a truthy value; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_http(url: str, timeout: float, ok=lambda code: code is not None and (200 <= code < 400)) -> None:
    wait_until(lambda: ok(http_status(url, timeout=3)), timeout, url)


def run(argv: Sequence[str], env: Mapping[str, str], log: Path, timeout: float,
        stdin_data: Optional[bytes] = None) -> None:
    """Run a one-shot command to completion, output appended to `log`; raise on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(("\n$ %s\n" % " ".join(argv)).encode())
        out.flush()
        res = subprocess.run(list(argv), env=dict(env), input=stdin_data,
                             stdin=None if stdin_data is not None else subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError("%s failed with exit code %d; see %s" % (argv[0], res.returncode, log))
