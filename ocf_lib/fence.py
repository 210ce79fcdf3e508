"""Fence-agent protocol: the verified power state machine and its output (input: fence_input).

An agent subclasses FenceAgent, declares its parameters (the common fence
options are added here) and supplies device primitives: connect, get_power,
set_power, and optionally list_targets and check (monitor). The library owns
the semantics: read the state first ("Success: Already OFF"), set it, verify by
polling under a deadline, reboot = off then on (a failed on is only logged),
status prints "Status: ON|OFF" and exits 0/2, and only exit codes 0/1/2 exist.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import shlex
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, TextIO, Tuple

from . import log as ocflog
from .deadline import Deadline, DeadlineExceeded
from .exitcodes import Fence, one_line
from .fence_input import ACTION_ALIASES as ACTION_ALIASES
from .fence_input import COMMON_PARAMS as COMMON_PARAMS
from .fence_input import COMPAT_PARAMS as COMPAT_PARAMS
from .fence_input import PLUG_PARAM
from .fence_input import FenceInput as FenceInput
from .fence_input import parse_argv as parse_argv
from .fence_input import parse_stdin as parse_stdin
from .metadata import fence_metadata, getopt_mixed
from .params import ParamTable, Problem, Values, agent_checks
from .runner import RunError, Runner

ON, OFF = "on", "off"

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class FenceError(Exception):
    """A failure to report: one line, no secrets."""


@dataclass
class FenceContext:
    agent: str
    action: str
    values: Values
    plug: str
    nodename: str
    env: Mapping[str, str]
    deadline: Deadline
    log: logging.Logger
    runner: Runner
    extra: Dict[str, Any] = field(default_factory=dict)


class FenceAgent:
    """Base class of fence agents."""

    name: str = "fence_unknown"
    shortdesc: str = ""
    longdesc: str = ""
    vendor_url: str = ""
    version: str = "0.1.0"
    table: ParamTable = ParamTable([])
    fabric: bool = False  # fabric fencing: no reboot, default action off, automatic unfencing
    has_plug: bool = False
    has_list: bool = False

    # --- device primitives (override) -------------------------------------------
    @contextmanager
    def connect(self, ctx: FenceContext) -> Iterator[Any]:
        yield None

    def get_power(self, ctx: FenceContext, conn: Any) -> str:
        raise NotImplementedError

    def set_power(self, ctx: FenceContext, conn: Any, state: str) -> None:
        raise NotImplementedError

    def list_targets(self, ctx: FenceContext, conn: Any) -> Dict[str, str]:
        """target -> alias (or status text for list-status)."""
        return {}

    def check(self, ctx: FenceContext, conn: Any) -> None:
        """monitor: raise FenceError if the device does not really answer."""
        self.get_power(ctx, conn)

    def validate(self, values: Values, plug: str) -> List[Problem]:
        """Cross-field checks beyond the table (no network)."""
        return []

    def wait_before_on(self, ctx: FenceContext, conn: Any) -> None:
        """Hook for fabric agents whose unfencing must wait for something first."""

    # --- derived ------------------------------------------------------------------
    def full_table(self) -> ParamTable:
        table = COMMON_PARAMS + self.table
        if self.has_plug and table.get("plug") is None:
            table = table + ParamTable([PLUG_PARAM])
        missing = [p for p in COMPAT_PARAMS if table.get(p.name) is None]
        return table + ParamTable(missing) if missing else table

    def actions(self) -> List[str]:
        acts = [ON, OFF]
        if not self.fabric:
            acts.append("reboot")
        acts += ["status", "monitor"]
        if self.has_list:
            acts += ["list", "list-status"]
        return acts + ["metadata", "manpage", "validate-all"]

    def default_action(self) -> str:
        return OFF if self.fabric else "reboot"

    def metadata(self) -> str:
        table = self.full_table()
        action_param = table["action"]
        # the metadata states the default action, which depends on fabric/power fencing
        table = ParamTable([dataclasses.replace(action_param, default=self.default_action())]
                           + [p for p in table if p.name != "action"])
        acts: List[Tuple[str, Dict[str, str]]] = []
        for act in self.actions():
            attrs: Dict[str, str] = {}
            if act == ON:
                attrs["automatic"] = "1" if self.fabric else "0"
            acts.append((act, attrs))
        return fence_metadata(self.name, self.shortdesc, self.longdesc, table, acts, self.vendor_url)

    def usage(self) -> str:
        lines = [f"Usage: {self.name} [options]  (or options as name=value lines on stdin)", "Options:"]
        for param in self.full_table().for_fence():
            lines.append(f"   {getopt_mixed(param):<36} {param.shortdesc}"
                         + (f" (default {param.default_text()})" if param.default_text() not in (None, "") else ""))
        lines.append("   -V, --version                        Display version information and exit")
        lines.append("   -h, --help                           Display this help and exit")
        return "\n".join(lines) + "\n"


# --- running ----------------------------------------------------------------------

def run(agent: FenceAgent, argv: Sequence[str], env: Mapping[str, str], stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr,
        runner_factory: Callable[[Mapping[str, str]], Runner] = Runner, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep) -> int:
    """Run one fence action; returns 0, 1 or 2 and never raises. clock/sleep time every wait (tests: fake)."""
    try:
        return _run(agent, argv, env, stdin, stdout, stderr, runner_factory, clock, sleep)
    except Exception as err:
        stderr.write(f"{agent.name}: Failed: internal error: {type(err).__name__}: "
                     f"{ocflog.redact(one_line(str(err)))}\n")
        ocflog.get_logger().debug("%s", traceback.format_exc())
        return int(Fence.ERROR)


def _fail(log: logging.Logger, message: str) -> int:
    """Report a failure: syslog, and stderr (which the fencer logs) unless quiet."""
    log.error("Failed: %s", ocflog.redact(one_line(message)))
    return int(Fence.ERROR)


def _run(agent: FenceAgent, argv: Sequence[str], env: Mapping[str, str], stdin: TextIO, stdout: TextIO,
         stderr: TextIO, runner_factory: Callable[[Mapping[str, str]], Runner], clock: Callable[[], float],
         sleep: Callable[[float], None]) -> int:
    table = agent.full_table()
    if len(argv) > 1:
        inp = parse_argv(argv[1:], table)
    else:
        try:
            text = stdin.read()
        except UnicodeDecodeError:
            stderr.write(f"{agent.name}: Failed: standard input is not readable text in this locale\n")
            return int(Fence.ERROR)
        inp = parse_stdin(text, table)
    if inp.want_help:
        stdout.write(agent.usage())
        return int(Fence.SUCCESS)
    if inp.want_version:
        stdout.write(agent.version + "\n")
        return int(Fence.SUCCESS)

    action = (inp.raw.get("action") or agent.default_action()).strip().lower()
    action = ACTION_ALIASES.get(action, action)
    if action in ("metadata", "manpage"):  # fence-agents builds its man pages from this same XML
        stdout.write(agent.metadata())
        return int(Fence.SUCCESS)

    values, problems = table.parse(inp.raw, table.for_fence())
    ocflog.add_secrets(values.secrets())
    log = ocflog.setup_fence(agent.name, 1 if values.verbose else 0, values.debug_file or "", values.quiet, stderr)
    for name in inp.unknown:
        shown = name if _IDENTIFIER.match(name) else "(a line that is not name=value, not shown)"
        log.warning("ignoring unknown option %s", shown)
    if inp.stray:  # never echoed: a stray word may be a password after a quoting slip
        log.warning("ignoring %d unexpected positional argument(s) (not shown)", inp.stray)
    for error in inp.errors:
        problems.append(Problem("", error))

    if action not in agent.actions():
        return _fail(log, f"Unrecognised action '{one_line(action)[:40]}'")

    plug = (values.get("plug") or inp.nodename or "") if agent.has_plug else ""
    runner = runner_factory(env)
    if not problems:
        values, script_problem = _resolve_password_script(values, runner, log)
        if script_problem:
            problems.append(script_problem)
    problems += agent_checks(agent.validate, bool(problems), values, plug)
    if action == "validate-all":
        for problem in problems:
            stderr.write(f"{agent.name}: {ocflog.redact(str(problem))}\n")
        return int(Fence.ERROR if problems else Fence.SUCCESS)
    if problems:
        return _fail(log, "; ".join(str(p) for p in problems))

    if env.get("PCMK_service") == "pacemaker-fenced":
        values = values.replace(disable_timeout=True)
    deadline = Deadline(_budget(values, action), clock=clock, sleep=sleep)
    ctx = FenceContext(agent=agent.name, action=action, values=values, plug=plug, nodename=inp.nodename,
                       env=env, deadline=deadline, log=log, runner=runner)
    try:
        return _act(agent, ctx, stdout, stderr, clock, sleep)
    except DeadlineExceeded as err:
        return _fail(log, f"{action} {err}")
    except FenceError as err:
        return _fail(log, str(err))


def _budget(values: Values, action: str) -> float:
    """Overall time for an action: connection + power changes (+ delay)."""
    per_change = float(values.power_timeout) + float(values.power_wait)
    changes = 2 if action == "reboot" else 1
    return float(values.login_timeout) + changes * per_change + 5.0


def _resolve_password_script(values: Values, runner: Runner, log: logging.Logger) -> Tuple[Values, Optional[Problem]]:
    """password_script: run it (list argv, no shell) and use its first line as the password."""
    script = values.get("password_script")
    if not script or values.get("password"):
        return values, None
    try:
        argv = shlex.split(script)
    except ValueError as err:
        return values, Problem("password_script", f"cannot be parsed: {err}")
    if not argv:
        return values, Problem("password_script", "is empty")
    try:
        result = runner.run(argv, timeout=float(values.login_timeout) + 10.0)
    except RunError as err:
        return values, Problem("password_script", str(err))
    if not result.ok:
        return values, Problem("password_script", f"exited with status {result.returncode}")
    password = (result.stdout.splitlines() or [""])[0].strip()
    if not password:
        return values, Problem("password_script", "printed no password")
    ocflog.add_secret(password)
    log.debug("password obtained from password_script")
    return values.replace(password=password), None


def _act(agent: FenceAgent, ctx: FenceContext, stdout: TextIO, stderr: TextIO, clock: Callable[[], float],
         sleep: Callable[[float], None]) -> int:
    action = ctx.action
    if action in (OFF, "reboot") and float(ctx.values.delay) > 0:
        ctx.log.info("delaying %s by %ss", action, ctx.values.delay)
        sleep(float(ctx.values.delay))  # the operator asked for exactly this delay
        ctx.deadline = Deadline(_budget(ctx.values, action), clock=clock, sleep=sleep)
    with agent.connect(ctx) as conn:
        if action == "monitor":
            agent.check(ctx, conn)
            return int(Fence.SUCCESS)
        if action in ("list", "list-status"):
            for target, alias in sorted(agent.list_targets(ctx, conn).items()):
                stdout.write(f"{target},{alias}\n")
            return int(Fence.SUCCESS)
        if action == "status":
            state = agent.get_power(ctx, conn)
            stdout.write(f"Status: {state.upper()}\n")
            return int(Fence.SUCCESS if state == ON else Fence.OFF)
        if action in (ON, OFF):
            _set_verified(agent, ctx, conn, action, stdout)
            return int(Fence.SUCCESS)
        # reboot: only the off part decides success
        _set_verified(agent, ctx, conn, OFF, stdout, quiet=True)
        try:
            _set_verified(agent, ctx, conn, ON, stdout, quiet=True)
        except (FenceError, DeadlineExceeded) as err:
            ctx.log.warning("power on after reboot failed (the node is off, fencing succeeded): %s", err)
        stdout.write("Success: Rebooted\n")
        return int(Fence.SUCCESS)


def _set_verified(agent: FenceAgent, ctx: FenceContext, conn: Any, target: str, stdout: TextIO,
                  quiet: bool = False) -> None:
    current = agent.get_power(ctx, conn)
    if current == target:
        if not quiet:
            stdout.write(f"Success: Already {target.upper()}\n")
        return
    if target == ON:
        agent.wait_before_on(ctx, conn)
    ctx.log.info("setting power %s for %s", target.upper(), ctx.plug or "device")
    agent.set_power(ctx, conn, target)
    if float(ctx.values.power_wait) > 0:
        ctx.deadline.sleep(float(ctx.values.power_wait))
    poll = ctx.deadline.sub(float(ctx.values.power_timeout))
    seen = [current]

    def reached() -> Optional[bool]:
        seen.append(agent.get_power(ctx, conn))
        return True if seen[-1] == target else None

    try:
        poll.poll(reached, interval=0.2, max_interval=1.0, what=f"power {target.upper()}")
    except DeadlineExceeded:
        raise FenceError(f"timed out waiting for power {target.upper()} after {poll.total:.0f}s "
                         f"(device still reports {seen[-1].upper()})") from None
    if not quiet:
        stdout.write(f"Success: Powered {target.upper()}\n")


def answer_to(agent: FenceAgent, argv0: str) -> FenceAgent:
    """Like fence-agents, an agent answers to the name it is installed under (make install
    FENCE_COMPUTE_NAME=fence_computeha ...), so that its metadata, usage and log tags match it."""
    called = os.path.basename(argv0)
    if re.fullmatch(r"fence_[A-Za-z0-9_]+", called):
        agent.name = called
    return agent


def main(agent: FenceAgent) -> None:
    answer_to(agent, sys.argv[0] if sys.argv else "")
    # Bytes that are not UTF-8 (a Latin-1 password, say) must not end in a decode error:
    # they are kept as surrogates and compared, masked and passed on as they came.
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
    code = run(agent, sys.argv, dict(os.environ), stdin=stdin)
    try:
        sys.stdout.flush()
        sys.stdout.close()
    except Exception:
        code = int(Fence.ERROR)
    sys.exit(code)
