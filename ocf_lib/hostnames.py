"""Pacemaker node names <-> Nova compute host names.

Pacemaker may name a node `compute-0` while Nova calls it
`compute-0.example.com` (or the other way round), and one cloud can span
several DNS domains. The rules, in order:

1. an explicit map (`host_map`, pcmk_host_map syntax `node:novahost;node2:novahost2`);
2. the exact name, if Nova knows it;
3. with `domain` set: `<short>.<domain>`, then `<short>`;
4. otherwise every Nova host with the same short name: exactly one is the
   answer, several are an error naming them (never a silent guess).
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from .params import Kind, Param, ParamTable

_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


class HostMappingError(Exception):
    """No Nova host, or more than one, for a Pacemaker node name (one line)."""


def short(name: str) -> str:
    return name.split(".", 1)[0]


def parse_host_map(text: str) -> Dict[str, str]:
    """`node:host;node2:host2` (also `,` or whitespace between pairs, `=` for `:`); ValueError if malformed."""
    result: Dict[str, str] = {}
    for item in re.split(r"[;,\s]+", text.strip()):
        if not item:
            continue
        sep = ":" if ":" in item else "="
        node, found, host = item.partition(sep)
        node, host = node.strip(), host.strip()
        if not found or not node or not host or not _NAME.match(node) or not _NAME.match(host):
            raise ValueError(f"entry {item[:60]!r} is not node:novahost")
        if node in result and result[node] != host:
            raise ValueError(f"node {node} is mapped twice")
        result[node] = host
    return result


def _check_map(value: str) -> Optional[str]:
    try:
        mapping = parse_host_map(value)
    except ValueError as err:
        return str(err)
    hosts = list(mapping.values())
    dupes = sorted({h for h in hosts if hosts.count(h) > 1})
    if dupes:
        return f"Nova host {dupes[0]} is the target of more than one node"
    return None


def _check_domain(value: str) -> Optional[str]:
    text = value.strip().strip(".")
    if not text or not _NAME.match(text):
        return "is not a DNS domain"
    return None


HOSTNAME_PARAMS = ParamTable([
    Param("domain", Kind.STRING, "DNS domain of the Nova compute host names",
          "DNS domain that Nova appends to the Pacemaker node names (node compute-0 is Nova host "
          "compute-0.<domain>). Not needed when the names are equal or unambiguous.",
          aliases=("compute_domain",), short_opt="d", metavar="domain", check=_check_domain,
          fence_spellings=("compute-domain",)),
    Param("host_map", Kind.STRING, "Explicit Pacemaker node to Nova host map",
          "Pairs node:novahost separated by ';' (pcmk_host_map syntax), for names that no rule maps.",
          metavar="map", check=_check_map),
])


class HostMapper:
    """Maps names given the set of compute hosts Nova knows."""

    def __init__(self, nova_hosts: Iterable[str], domain: str = "", host_map: Optional[Mapping[str, str]] = None):
        self.nova_hosts = sorted(set(nova_hosts))
        self.domain = (domain or "").strip().strip(".")
        self.host_map = dict(host_map or {})
        self._reverse = {v: k for k, v in self.host_map.items()}

    @classmethod
    def from_values(cls, nova_hosts: Iterable[str], values: Mapping[str, object]) -> "HostMapper":
        text = str(values.get("host_map") or "")
        return cls(nova_hosts, str(values.get("domain") or ""), parse_host_map(text) if text else None)

    def to_nova(self, node: str) -> str:
        node = node.strip()
        if not node:
            raise HostMappingError("no node name given (plug/port or nodename)")
        known = set(self.nova_hosts)
        if node in self.host_map:
            target = self.host_map[node]
            if target not in known:
                raise HostMappingError(f"host_map maps {node} to {target}, which Nova does not know as a compute host")
            return target
        if node in known:
            return node
        base = short(node)
        if self.domain:
            for candidate in (f"{base}.{self.domain}", base):
                if candidate in known:
                    return candidate
            raise HostMappingError(f"Nova knows no compute host {base}.{self.domain} or {base} for node {node}")
        matches = [h for h in self.nova_hosts if short(h) == base]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise HostMappingError(f"Nova knows no compute host named {node} (nor any {base}.*)")
        raise HostMappingError(f"node {node} is ambiguous: Nova has {', '.join(matches)}; set domain or host_map")

    def to_pacemaker(self, host: str) -> str:
        """The node name Pacemaker most likely uses for a Nova host (inverse of to_nova)."""
        if host in self._reverse:
            return self._reverse[host]
        if self.domain and host.endswith("." + self.domain):
            return host[: -len(self.domain) - 1]
        return host

    def pairs(self) -> List[Tuple[str, str]]:
        """(pacemaker name, nova host) for every compute host."""
        return [(self.to_pacemaker(h), h) for h in self.nova_hosts]
