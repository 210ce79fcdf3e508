"""The Nova host name this node's nova-compute registers as, and its check against Nova.

nova-compute registers as `[DEFAULT] host` of its configuration (oslo.config:
later --config-file files override earlier ones, --config-dir files are read
in sorted order after them), and as socket.gethostname() when unset. We read
the same files the configured command reads, so the agent and nova-compute
cannot disagree silently.
"""
from __future__ import annotations

import configparser
import glob
import os
import socket
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

DEFAULT_CONFIG = ("/etc/nova/nova.conf", "/etc/nova/nova.conf.d")


@dataclass(frozen=True)
class HostName:
    name: str
    source: str  # where it came from, for messages: "parameter host", "/etc/nova/nova.conf", "hostname"


def config_sources(argv: Sequence[str]) -> List[str]:
    """--config-file / --config-dir values of a nova-compute command line, in order."""
    found: List[str] = []
    items = list(argv)
    for i, item in enumerate(items):
        for flag in ("--config-file", "--config-dir"):
            if item == flag and i + 1 < len(items):
                found.append(items[i + 1])
            elif item.startswith(flag + "="):
                found.append(item.split("=", 1)[1])
    return found


def _expand(sources: Iterable[str]) -> List[str]:
    files: List[str] = []
    for source in sources:
        if os.path.isdir(source):
            files.extend(sorted(glob.glob(os.path.join(source, "*.conf"))))
        elif os.path.exists(source):
            files.append(source)
    return files


def host_from_config(sources: Iterable[str]) -> Optional[Tuple[str, str]]:
    """(host, file that set it) from [DEFAULT] host; the last file setting it wins."""
    result: Optional[Tuple[str, str]] = None
    for path in _expand(sources):
        # oslo.config files are ini-like; interpolation and duplicate keys must not break parsing
        parser = configparser.RawConfigParser(strict=False, default_section="\0none")
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read {path}: {' '.join(str(err).split())[:200]}") from None
        if parser.has_option("DEFAULT", "host"):
            value = parser.get("DEFAULT", "host").strip()
            if value:
                result = (value, path)
    return result


def resolve(param_host: str, sources: Sequence[str], hostname: Optional[str] = None) -> HostName:
    """The Nova host name: the `host` parameter, else nova.conf, else the system host name."""
    if param_host:
        return HostName(param_host, "parameter host")
    found = host_from_config(sources)
    if found:
        return HostName(found[0], found[1])
    return HostName(hostname or socket.gethostname(), "the system host name (no [DEFAULT] host in "
                    + (", ".join(sources) or "any nova.conf") + ")")


def similar(name: str, known: Iterable[str]) -> List[str]:
    """Known host names that differ only by domain or case: the usual cause of a mismatch."""
    short = name.split(".")[0].lower()
    return sorted(h for h in known if h != name and (h.lower() == name.lower() or h.split(".")[0].lower() == short))


def mismatch_message(host: HostName, known: Sequence[str]) -> str:
    hint = similar(host.name, known)
    text = (f"Nova has no nova-compute service for host {host.name!r} (from {host.source}); "
            "this node's nova-compute must register under the name the agent checks, or instance "
            "recovery cannot work")
    if hint:
        text += f"; Nova knows {', '.join(repr(h) for h in hint)}: set host= (or [DEFAULT] host) to that name"
    elif known:
        shown = ", ".join(sorted(known)[:8]) + (" ..." if len(known) > 8 else "")
        text += f"; known compute hosts: {shown}"
    return text
