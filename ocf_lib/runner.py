"""The one way agents run other programs: list argv, C locale, bounded, captured.

Secrets never go on a command line: a child that needs one gets it on stdin or
through an environment variable named in `secret_env`; both are masked in
anything logged.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from .log import get_logger, redact


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class RunError(Exception):
    """The program could not be run or did not finish in time."""


class Runner:
    """Runs programs; `env` is the base environment handed to every child."""

    def __init__(self, env: Optional[Mapping[str, str]] = None) -> None:
        # Children never inherit the agent's instance parameters: OCF_RESKEY_password
        # and its kin would otherwise sit in every child's /proc/<pid>/environ.
        base = {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("OCF_RESKEY_")}
        base["LC_ALL"] = "C"
        base.pop("LANG", None)
        base.pop("LANGUAGE", None)
        self._env = base

    def which(self, program: str) -> Optional[str]:
        return shutil.which(program, path=self._env.get("PATH"))

    def run(self, argv: Sequence[str], timeout: float, stdin: Optional[str] = None,
            extra_env: Optional[Mapping[str, str]] = None) -> Result:
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv must be a list, never a shell string")
        argv = tuple(str(a) for a in argv)
        env = dict(self._env)
        if extra_env:
            env.update(extra_env)
        log = get_logger()
        log.debug("running %s", redact(" ".join(argv)))
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                                  timeout=max(0.1, timeout), check=False, close_fds=True)
        except subprocess.TimeoutExpired:
            raise RunError(f"{os.path.basename(argv[0])} timed out after {timeout:.1f}s") from None
        except OSError as err:
            raise RunError(f"cannot run {os.path.basename(argv[0])}: {err.strerror or err}") from None
        return Result(argv, proc.returncode, proc.stdout or "", proc.stderr or "")
