"""Fence-agent input: the parameter tables every fence agent shares, and the name=value lines on
stdin or the getopt-style command line parsed against an agent's table into a FenceInput.

Split from fence.py (which re-exports these names); the action semantics stay there.
"""
from __future__ import annotations

import getopt
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

from .params import Kind, Param, ParamTable, fold

COMMON_PARAMS = ParamTable([
    Param("action", Kind.STRING, "Fencing action", default=None, short_opt="o", metavar="action"),
    Param("verbose", Kind.BOOLEAN, "Verbose mode: debug output on stderr", short_opt="v", default=False),
    Param("debug_file", Kind.STRING, "Write debug information to this file", short_opt="D", metavar="debugfile",
          aliases=("debug",)),
    Param("quiet", Kind.BOOLEAN, "Disable logging to stderr (syslog only)", short_opt="q", default=False),
    Param("delay", Kind.SECONDS, "Wait this many seconds before fencing (off and reboot only)",
          default=0, minimum=0, metavar="seconds"),
    Param("power_timeout", Kind.SECONDS, "Test for the new power state for this many seconds after a change",
          default=20, minimum=1, metavar="seconds"),
    Param("power_wait", Kind.SECONDS, "Wait this many seconds after a power change before polling (0: poll at once)",
          default=0, minimum=0, metavar="seconds"),
    Param("login_timeout", Kind.SECONDS, "Wait this many seconds for the device to answer a connection",
          default=5, minimum=1, metavar="seconds"),
    Param("disable_timeout", Kind.BOOLEAN,
          "Leave timeouts to Pacemaker (set automatically under pacemaker-fenced); waits stay bounded by "
          "power_timeout", default=False),
])

# Options that fence-agents' fencing.py offers every agent and that ours accept and ignore, so that pcs, which
# checks a device's options against the metadata, takes an existing device when only its type changes.
_COMPAT = "Accepted for compatibility with fence-agents and ignored"
COMPAT_PARAMS = ParamTable([
    Param("verbose_level", Kind.INTEGER, f"Verbose level. {_COMPAT} (use verbose)", minimum=0, metavar="level"),
    Param("version", Kind.BOOLEAN, f"Display version information and exit. {_COMPAT} as an option (use -V)",
          default=False),
    Param("help", Kind.BOOLEAN, f"Display help and exit. {_COMPAT} as an option (use -h)", default=False),
    Param("plug_separator", Kind.STRING, f"Separator for plug parameter when specifying more than 1 plug. {_COMPAT}",
          metavar="char"),
    Param("separator", Kind.STRING, f"Separator for CSV created by 'list' operation. {_COMPAT}", metavar="char"),
    Param("shell_timeout", Kind.SECONDS, f"Wait X seconds for cmd prompt after issuing command. {_COMPAT}",
          minimum=0, metavar="seconds"),
    Param("stonith_status_sleep", Kind.SECONDS, f"Sleep X seconds between status calls during a STONITH action. "
          f"{_COMPAT} (power_timeout bounds the polling)", minimum=0, metavar="seconds"),
    Param("retry_on", Kind.STRING, f"Count of attempts to retry power on. {_COMPAT} (retries are bounded by the "
          f"deadline)", metavar="attempts"),
])

PLUG_PARAM = Param("plug", Kind.STRING, "Physical plug number on device, UUID or identification of machine",
                   aliases=("port",), short_opt="n", metavar="id")

ACTION_ALIASES = {"meta-data": "metadata", "enable": "on", "disable": "off", "list_status": "list-status"}


@dataclass
class FenceInput:
    raw: Dict[str, str]
    nodename: str = ""
    unknown: List[str] = field(default_factory=list)
    want_help: bool = False
    want_version: bool = False
    errors: List[str] = field(default_factory=list)
    stray: int = 0  # positional arguments: warned about and ignored, as fence-agents' fencing.py does


def parse_stdin(text: str, table: ParamTable) -> FenceInput:
    """name=value lines: '#' comments and blanks skipped, first '=' splits,
    quotes stripped, '-'/'_' folded, last value wins, unknown keys collected."""
    result = FenceInput(raw={})
    # split on newlines only: str.splitlines() also breaks on \x0b, \x1c, U+2028...,
    # which can occur inside a password and would cut it in two
    for line in text.split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        key = fold(name)
        if key == "nodename":
            result.nodename = value
            continue
        if key == "option":  # deprecated spelling of action
            key = "action"
        param = table.get(key)
        if param is None:
            result.unknown.append(name)
            continue
        if not sep and param.kind is Kind.BOOLEAN:
            value = "1"
        result.raw[key] = value
    return result


def parse_argv(args: Sequence[str], table: ParamTable) -> FenceInput:
    """getopt-style command line built from the same table."""
    shorts = "hV"
    longs = ["help", "version", "nodename="]
    by_opt: Dict[str, Param] = {}
    for param in table.for_fence():
        flag = param.kind is Kind.BOOLEAN
        if param.short_opt:
            shorts += param.short_opt + ("" if flag else ":")
            by_opt["-" + param.short_opt] = param
        for name in param.names:
            opt = name.replace("_", "-")
            longs.append(opt if flag else opt + "=")
            by_opt["--" + opt] = param
    result = FenceInput(raw={})
    try:
        opts, rest = getopt.gnu_getopt(list(args), shorts, longs)
    except getopt.GetoptError as err:
        result.errors.append(str(err))
        return result
    result.stray = len(rest)  # e.g. the "1" of fence-agents' harness in `-P 1`, where -P takes no value
    for opt, value in opts:
        if opt in ("-h", "--help"):
            result.want_help = True
        elif opt in ("-V", "--version"):
            result.want_version = True
        elif opt == "--nodename":
            result.nodename = value
        else:
            param = by_opt[opt]
            result.raw[param.name] = "1" if param.kind is Kind.BOOLEAN else value
    return result
