"""How NovaCompute reaches Nova: the shared credential parameters and the adapter factory.

The credential fragment and the adapter belong to the shared Nova adapter
(ocf_lib/nova_auth.py, ocf_lib/nova_client.py); this module is the one place
NovaCompute binds to them. keystoneauth1 is imported only when a Nova call is
really made, so meta-data and a level-0 monitor stay light.
"""
from __future__ import annotations

import shlex
from typing import Any

from computeha.ocf_lib import log as ocflog
from computeha.ocf_lib.exitcodes import AgentError, ConfigError, Ocf
from computeha.ocf_lib.nova_auth import AUTH_PARAMS, AuthConfig, AuthConfigError, secrets_of
from computeha.ocf_lib.runner import RunError, Runner

CREDENTIALS = AUTH_PARAMS


def child_runner(ctx: Any) -> Runner:
    """The runner for every program the agent starts: without OCF_RESKEY_* (the password is one of them)."""
    if "runner" not in ctx.extra:
        ctx.extra["runner"] = Runner({k: v for k, v in ctx.env.items() if not k.startswith("OCF_RESKEY_")})
    return ctx.extra["runner"]


def _password_from_script(ctx: Any) -> str:
    """password_script: run it (list argv, no shell); its first output line is the password."""
    try:
        argv = shlex.split(ctx.values.password_script)
        result = child_runner(ctx).run(argv, timeout=ctx.deadline.cap(30))
    except (ValueError, RunError) as err:
        raise ConfigError(f"password_script: {err}") from None
    if not result.ok:
        raise AgentError(f"password_script exited with status {result.returncode}", Ocf.ERR_CONFIGURED)
    lines = result.stdout.splitlines()
    if not lines or not lines[0]:
        raise ConfigError("password_script printed no password")
    ocflog.add_secret(lines[0])
    return lines[0]


def nova_factory(ctx: Any) -> Any:
    """A Nova adapter (computeha.ocf_lib.nova.Nova) for the action's parameters, bounded by its deadline."""
    from computeha.ocf_lib.nova_client import NovaClient

    values = ctx.values
    if values.get("password_script") and not values.get("password"):
        values = values.replace(password=_password_from_script(ctx))
    try:
        config = AuthConfig.from_values(values)
    except AuthConfigError as err:
        raise ConfigError(str(err)) from None
    problems = config.problems()
    if problems:
        raise ConfigError("; ".join(str(p) for p in problems))
    ocflog.add_secrets(secrets_of(config))
    return NovaClient.from_config(config, ctx.deadline)
