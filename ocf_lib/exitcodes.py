"""Exit codes of the two protocols and the typed error that carries one.

Agent logic never calls sys.exit: it raises AgentError (or returns a code) and
the entry point turns that into the process exit status.
"""
from __future__ import annotations

import enum


class Ocf(enum.IntEnum):
    """OCF return codes (OCF 1.1, Pacemaker Administration "OCF Return Codes")."""

    SUCCESS = 0
    ERR_GENERIC = 1  # soft: restart in place
    ERR_ARGS = 2  # hard: parameters invalid on this node
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5  # hard: a component is missing on this node
    ERR_CONFIGURED = 6  # fatal: parameters invalid in themselves
    NOT_RUNNING = 7
    DEGRADED = 190


class Fence(enum.IntEnum):
    """Fence-agent exit codes: only these three exist (status uses 2 for OFF)."""

    SUCCESS = 0
    ERROR = 1
    OFF = 2


class AgentError(Exception):
    """A failure with the OCF code it implies and a one-line, secret-free reason."""

    def __init__(self, reason: str, code: Ocf = Ocf.ERR_GENERIC) -> None:
        super().__init__(one_line(reason))
        self.code = code

    @property
    def reason(self) -> str:
        return str(self)


class ConfigError(AgentError):
    """Parameters are invalid in themselves (OCF_ERR_CONFIGURED)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, Ocf.ERR_CONFIGURED)


def one_line(text: str) -> str:
    """Collapse any text to one line: Pacemaker keeps only the first line of a reason."""
    return " ".join(str(text).split())
