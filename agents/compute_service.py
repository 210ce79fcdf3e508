"""Running nova-compute: as a child we supervise, or through the host's service manager.

Child mode starts the command in its own session (PID == PGID) and records
"<pid> <start time>" in the instance's StateDir; a PID reused by another
process never matches the recorded start time, so we can never signal a
stranger. Stopping sends TERM to the whole group, then KILL, both bounded.
nova-compute's own shutdown leaves the guests running: nothing here touches
instances.

Service mode runs operator-given argv lists (e.g. systemctl start/stop/is-active
of a unit that is NOT enabled at boot), bounded by the action deadline.

Nothing here imports novaclient: monitor at level 0 stays cheap.
"""
from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from computeha.ocf_lib.deadline import Deadline
from computeha.ocf_lib.exitcodes import AgentError, Ocf
from computeha.ocf_lib.runner import RunError, Runner
from computeha.ocf_lib.state import StateDir

PID_FILE = "nova-compute.pid"


class ComputeService(Protocol):
    def running(self) -> bool: ...

    def start(self, deadline: Deadline) -> None: ...

    def stop(self, deadline: Deadline) -> None: ...

    def describe(self) -> str: ...


def _proc_stat(pid: int) -> Optional[Tuple[str, str, int]]:
    """(state, start time in clock ticks, pgid) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            raw = handle.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], fields[19], int(fields[2])


def _group_members(pgid: int) -> List[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(int(entry))
        if stat and stat[2] == pgid and stat[0] != "Z":
            members.append(int(entry))
    return members


@dataclass
class ChildProcess:
    """nova-compute as a process group we started and recorded."""

    argv: Sequence[str]
    state: StateDir
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    output: str = os.devnull
    term_grace: float = 60.0
    settle: float = 1.0  # a child that dies within this time of spawning is reported as a failed start

    def describe(self) -> str:
        return f"nova-compute child ({os.path.basename(self.argv[0]) if self.argv else '?'})"

    # -- the PID file ----------------------------------------------------------------------
    def recorded(self) -> Optional[int]:
        """The PGID of our child if the PID file names a process that is still the one we started."""
        text = self.state.read_text(PID_FILE)
        if not text:
            return None
        try:
            pid_text, start = text.split()
            pid = int(pid_text)
        except ValueError:
            return None
        stat = _proc_stat(pid)
        if stat is None or stat[0] == "Z" or stat[1] != start:
            return None
        return pid

    def running(self) -> bool:
        pgid = self.recorded()
        if pgid is not None:
            return True
        # the leader may have exited while the rest of its group lives on (a wrapper script)
        text = self.state.read_text(PID_FILE)
        if text and text.split()[0].isdigit():
            return self._leaderless_group(int(text.split()[0]))
        return False

    def _leaderless_group(self, pgid: int) -> bool:
        return _proc_stat(pgid) is None and bool(_group_members(pgid))

    # -- actions -----------------------------------------------------------------------------
    def start(self, deadline: Deadline) -> None:
        if self.running():
            return
        if not self.argv:
            raise AgentError("no nova-compute command configured", Ocf.ERR_CONFIGURED)
        # None: Popen's defaults, the agent's own user and groups
        user: Optional[int] = None
        group: Optional[int] = None
        extra_groups: Optional[List[int]] = None
        env = dict(self.env)
        if self.user:
            try:
                entry = pwd.getpwnam(self.user)
            except KeyError:
                raise AgentError(f"user {self.user!r} does not exist on this node", Ocf.ERR_INSTALLED) from None
            if entry.pw_uid != os.getuid():
                user, group = entry.pw_uid, entry.pw_gid
                extra_groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
                env.setdefault("HOME", entry.pw_dir)
                if env.get("HOME") == os.path.expanduser("~"):  # the agent's own HOME is not the user's
                    env["HOME"] = entry.pw_dir
        try:
            with open(self.output, "ab") as out:
                proc = subprocess.Popen(list(self.argv), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                        cwd="/", user=user, group=group, extra_groups=extra_groups)
        except OSError as err:
            raise AgentError(f"cannot start {self.argv[0]}: {err.strerror or err}", Ocf.ERR_INSTALLED) from None
        stat = _proc_stat(proc.pid)
        self.state.write_text(PID_FILE, f"{proc.pid} {stat[1] if stat else '?'}\n")
        # An immediate exit (bad config, missing module) is a start failure, not a later monitor failure.
        end = time.monotonic() + min(self.settle, deadline.remaining())
        while time.monotonic() < end:
            code = proc.poll()
            if code is not None:
                self.state.remove(PID_FILE)
                raise AgentError(f"{os.path.basename(self.argv[0])} exited with status {code} right after "
                                 f"start (see {self.output})")
            time.sleep(0.05)

    def stop(self, deadline: Deadline) -> None:
        text = self.state.read_text(PID_FILE)
        if not text or not text.split()[0].isdigit():
            self.state.remove(PID_FILE)
            return
        pgid = int(text.split()[0])
        if self.recorded() is None and not self._leaderless_group(pgid):
            self.state.remove(PID_FILE)  # stale: the process we started is gone
            return
        self._signal(pgid, signal.SIGTERM)
        grace = deadline.sub(min(self.term_grace, max(0.0, deadline.remaining() - 5.0)))
        if not self._wait_gone(pgid, grace):
            self._signal(pgid, signal.SIGKILL)
            if not self._wait_gone(pgid, deadline):
                raise AgentError(f"nova-compute (process group {pgid}) survived SIGKILL")
        self.state.remove(PID_FILE)

    @staticmethod
    def _signal(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass

    @staticmethod
    def _wait_gone(pgid: int, deadline: Deadline) -> bool:
        delay = 0.05
        while True:
            _reap(pgid)
            if not _group_members(pgid):
                return True
            if deadline.expired():
                return False
            deadline.sleep(delay)
            delay = min(0.5, delay * 1.5)


def _reap(pid: int) -> None:
    """Collect our own exited child (only ever the case inside one agent process, e.g. tests)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@dataclass
class ManagedService:
    """nova-compute run by the host's service manager through operator-given commands."""

    start_cmd: Sequence[str]
    stop_cmd: Sequence[str]
    status_cmd: Sequence[str]
    runner: Runner

    def describe(self) -> str:
        return "nova-compute service (" + " ".join(self.start_cmd) + ")"

    def _run(self, argv: Sequence[str], deadline: Deadline, what: str):
        try:
            return self.runner.run(list(argv), timeout=max(0.5, deadline.remaining()))
        except RunError as err:
            raise AgentError(f"{what} of nova-compute failed: {err}") from None

    def running(self) -> bool:
        # LSB/systemctl: 0 = running; anything else (3 = stopped, 1 = dead with pid file) is not running
        result = self._run(self.status_cmd, Deadline(30.0), "status check")
        return result.returncode == 0

    def start(self, deadline: Deadline) -> None:
        result = self._run(self.start_cmd, deadline, "start")
        if not result.ok:
            raise AgentError(f"{' '.join(self.start_cmd)} exited {result.returncode}: "
                             f"{' '.join(result.stderr.split())[:200]}")

    def stop(self, deadline: Deadline) -> None:
        result = self._run(self.stop_cmd, deadline, "stop")
        if not result.ok and self.running():
            raise AgentError(f"{' '.join(self.stop_cmd)} exited {result.returncode} and nova-compute still runs")


def child_env(base: Mapping[str, str], assignments: Sequence[str]) -> Dict[str, str]:
    """The child's environment: a minimal base (PATH, LANG-free C locale) plus KEY=VALUE items."""
    env = {k: v for k, v in base.items() if k in ("PATH", "HOME", "TZ", "TMPDIR")}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"environment item {item!r} is not KEY=VALUE")
        env[key] = value
    return env
