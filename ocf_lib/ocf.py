"""OCF resource-agent protocol: dispatch, context, exit codes, exit reasons.

An agent is a subclass of OcfAgent that declares `info` and `table` and
implements start/stop/monitor (and optionally validate) taking an OcfContext
and returning an exit code. Only `main()` touches sys.exit.
"""
from __future__ import annotations

import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Sequence, TextIO, Tuple

from . import log as ocflog
from .deadline import Deadline, DeadlineExceeded, ocf_timeout
from .exitcodes import AgentError, Ocf, one_line
from .metadata import ocf_metadata
from .params import AgentInfo, Param, ParamTable, Problem, Values, agent_checks
from .runner import Runner
from .state import StateDir, rsctmp

PROBLEM_SEVERITY = (Ocf.ERR_CONFIGURED, Ocf.ERR_INSTALLED, Ocf.ERR_PERM, Ocf.ERR_ARGS, Ocf.ERR_GENERIC)
CORE_ACTIONS = ("start", "stop", "monitor", "validate-all")
UNSUPPORTED = ("notify", "promote", "demote", "migrate_to", "migrate_from", "reload", "reload-agent", "recover")


def worst_code(problems: Sequence[Problem]) -> Ocf:
    """The exit code a list of problems implies: the most severe one wins."""
    codes = {p.code for p in problems}
    for code in PROBLEM_SEVERITY:
        if code in codes:
            return code
    return Ocf.SUCCESS


@dataclass
class OcfContext:
    """Everything an action needs; agents never read os.environ themselves."""

    agent: str
    instance: str
    action: str
    values: Values
    problems: List[Problem]
    env: Mapping[str, str]
    interval_ms: int
    check_level: int
    deadline: Deadline
    state: StateDir
    log: logging.Logger
    runner: Runner
    node: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_probe(self) -> bool:
        return self.action == "monitor" and self.interval_ms == 0

    def meta(self, name: str, default: str = "") -> str:
        return self.env.get("OCF_RESKEY_CRM_meta_" + name.replace("-", "_"), default)


class OcfAgent:
    """Base class: subclasses set `info` and `table` and implement the actions."""

    info: AgentInfo
    table: ParamTable
    default_check_level = 0

    # --- hooks for subclasses -------------------------------------------------
    def validate(self, ctx: OcfContext) -> List[Problem]:
        """Checks beyond the per-parameter ones (cross-field, environment at level >= 10)."""
        return []

    def start(self, ctx: OcfContext) -> int:
        raise NotImplementedError

    def stop(self, ctx: OcfContext) -> int:
        raise NotImplementedError

    def monitor(self, ctx: OcfContext) -> int:
        raise NotImplementedError

    def recorded_active(self, ctx: OcfContext) -> bool:
        """Whether this node believes the resource is running, without using parameters.

        Used when the configuration is broken: a probe of a resource that is
        not recorded as active reports 7 rather than a configuration error.
        """
        return ctx.state.exists("active")

    # --- protocol ---------------------------------------------------------------
    def actions(self) -> Tuple[str, ...]:
        return CORE_ACTIONS

    def usage(self) -> str:
        return f"usage: {self.info.name} {{{'|'.join(self.actions() + ('meta-data', 'usage'))}}}"

    def metadata(self) -> str:
        return ocf_metadata(self.info, self.table)

    def action_timeout(self, action: str) -> float:
        for spec in self.info.actions:
            if spec.name == action:
                return float(spec.timeout)
        return 20.0


def run(agent: OcfAgent, argv: Sequence[str], env: Mapping[str, str],
        stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr,
        runner_factory: Callable[[Mapping[str, str]], Runner] = Runner) -> int:
    """Run one OCF action and return its exit code; never raises."""
    action = argv[1] if len(argv) > 1 else ""
    try:
        return _dispatch(agent, action, env, stdout, stderr, runner_factory)
    except Exception as err:  # last resort: one line, never a traceback
        _exit_reason(stderr, env, f"internal error in {action or 'agent'}: {type(err).__name__}: {err}")
        ocflog.get_logger().debug("%s", traceback.format_exc())
        return int(Ocf.ERR_GENERIC)


def _exit_reason(stderr: TextIO, env: Mapping[str, str], reason: str) -> None:
    prefix = env.get("OCF_EXIT_REASON_PREFIX") or "ocf-exit-reason:"
    stderr.write(prefix + ocflog.redact(one_line(reason)) + "\n")
    stderr.flush()


def _dispatch(agent: OcfAgent, action: str, env: Mapping[str, str], stdout: TextIO, stderr: TextIO,
              runner_factory: Callable[[Mapping[str, str]], Runner]) -> int:
    if action == "meta-data":
        stdout.write(agent.metadata())
        stdout.flush()
        return int(Ocf.SUCCESS)
    if action in ("usage", "help", "-h", "--help"):
        stdout.write(agent.usage() + "\n")
        return int(Ocf.SUCCESS)
    if action not in agent.actions():
        stderr.write(agent.usage() + "\n")
        if action and action not in UNSUPPORTED:
            stderr.write(f"{agent.info.name}: unsupported action '{one_line(action)[:40]}'\n")
        return int(Ocf.ERR_UNIMPLEMENTED)

    major = env.get("OCF_RA_VERSION_MAJOR", "")
    if major and major != "1":
        _exit_reason(stderr, env, f"OCF API version {major} is not supported (this agent speaks 1.1)")
        return int(Ocf.ERR_INSTALLED)

    instance = env.get("OCF_RESOURCE_INSTANCE", "")
    if not instance and action != "validate-all":
        _exit_reason(stderr, env, "OCF_RESOURCE_INSTANCE is not set")
        return int(Ocf.ERR_ARGS)

    logger = ocflog.setup_ocf(agent.info.name, instance, env, stderr)
    raw = {p_name: env.get("OCF_RESKEY_" + p_name, "")
           for p in agent.table.for_ocf() for p_name in p.names}
    values, problems = agent.table.parse(raw, agent.table.for_ocf())
    ocflog.add_secrets(values.secrets())

    try:
        interval_ms = int(env.get("OCF_RESKEY_CRM_meta_interval", "0") or "0")
    except ValueError:
        interval_ms = 0
    try:
        check_level = int(env.get("OCF_CHECK_LEVEL", "") or agent.default_check_level)
    except ValueError:
        check_level = agent.default_check_level
    check_level = 20 if check_level >= 20 else 10 if check_level >= 10 else 0

    timeout = ocf_timeout(env, agent.action_timeout(action))
    ctx = OcfContext(
        agent=agent.info.name, instance=instance, action=action, values=values, problems=problems,
        env=env, interval_ms=interval_ms, check_level=check_level, deadline=Deadline.for_action(timeout),
        state=StateDir(rsctmp(env), agent.info.name, instance), log=logger, runner=runner_factory(env),
        node=env.get("OCF_RESKEY_CRM_meta_on_node", ""))

    try:
        return _run_action(agent, ctx, stderr)
    except AgentError as err:
        if not ctx.is_probe:
            logger.error("%s: %s", action, err.reason)
        _exit_reason(stderr, env, err.reason)
        return int(err.code)
    except DeadlineExceeded as err:
        logger.error("%s: %s", action, err)
        _exit_reason(stderr, env, f"{action} {err}")
        return int(Ocf.ERR_GENERIC)


def _run_action(agent: OcfAgent, ctx: OcfContext, stderr: TextIO) -> int:
    action = ctx.action
    if action == "validate-all":
        problems = list(ctx.problems) + agent_checks(agent.validate, bool(ctx.problems), ctx)
        for problem in problems:
            stderr.write(f"{ctx.agent}: {ocflog.redact(str(problem))}\n")
        code = worst_code(problems)
        if problems:
            _exit_reason(stderr, ctx.env, "; ".join(str(p) for p in problems))
        return int(code)

    if action == "stop":
        # stop must succeed when nothing runs, even with a broken configuration
        return int(agent.stop(ctx))

    if ctx.problems:
        if action == "monitor" and not agent.recorded_active(ctx):
            return int(Ocf.NOT_RUNNING)
        code = worst_code(ctx.problems)
        ctx.log.error("invalid configuration: %s", "; ".join(str(p) for p in ctx.problems))
        _exit_reason(stderr, ctx.env, "invalid configuration: " + "; ".join(str(p) for p in ctx.problems))
        return int(code)

    if action == "start":
        extra = agent.validate(ctx)
        if extra:
            ctx.log.error("invalid configuration: %s", "; ".join(str(p) for p in extra))
            _exit_reason(stderr, ctx.env, "; ".join(str(p) for p in extra))
            return int(worst_code(extra))
        return int(agent.start(ctx))
    return int(agent.monitor(ctx))


def main(agent: OcfAgent) -> None:
    """Entry point for an installed agent wrapper."""
    code = run(agent, sys.argv, dict(os.environ))
    try:
        sys.stdout.flush()
    except Exception:
        code = code or 1
    sys.exit(code)


__all__ = ["OcfAgent", "OcfContext", "Param", "main", "run", "worst_code"]
