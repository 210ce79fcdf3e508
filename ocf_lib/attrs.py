"""Cluster node attributes behind a small interface.

Two stores exist: pacemaker-attrd (`attrd_updater`, transient: gone after a
full cluster restart) and the CIB's persistent node attributes
(`crm_attribute --lifetime forever`). Output is always read with
`--output-as=xml`, never by splitting text.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Dict, Optional, Protocol

from .deadline import Deadline
from .runner import RunError, Runner


class ClusterAttributeError(Exception):
    """A cluster attribute could not be read or written (one-line reason)."""


class NodeAttributes(Protocol):
    def get(self, node: str, name: str) -> Optional[str]: ...

    def get_all(self, name: str) -> Dict[str, str]: ...

    def set(self, node: str, name: str, value: str) -> None: ...

    def delete(self, node: str, name: str) -> None: ...


def _parse_attributes(xml_text: str, default_node: str = "") -> Dict[str, str]:
    """node -> value from the XML of attrd_updater/crm_attribute queries."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as err:
        raise ClusterAttributeError(f"unreadable attribute query output: {err}") from None
    found: Dict[str, str] = {}
    for elem in root.iter("attribute"):
        node = elem.get("host") or elem.get("node") or default_node
        found[node] = elem.get("value", "")
    return found


def parse_nodes_section(xml_text: str, name: str) -> Dict[str, str]:
    """node name -> value of the persistent attribute `name` from a CIB nodes query."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as err:
        raise ClusterAttributeError(f"unreadable CIB nodes section: {err}") from None
    found: Dict[str, str] = {}
    for node in root.iter("node"):
        uname = node.get("uname") or node.get("id") or ""
        for attrs in node.findall("instance_attributes"):
            for nvpair in attrs.findall("nvpair"):
                if nvpair.get("name") == name and nvpair.get("value"):
                    found[uname] = nvpair.get("value", "")
    return found


def _failed(result_stderr: str, what: str, result_stdout: str = "") -> ClusterAttributeError:
    """One line from stderr, or from the <error> elements that --output-as=xml puts on stdout."""
    text = result_stderr
    if not text.strip() and result_stdout.strip():
        try:
            root = ET.fromstring(result_stdout)
            text = "; ".join((e.text or "").strip() for e in root.iter("error")) or \
                " ".join((s.get("message") or "") for s in root.iter("status"))
        except ET.ParseError:
            text = result_stdout
    line = " ".join(text.split())[:300] or "no error text"
    return ClusterAttributeError(f"{what} failed: {line}")


class AttrdAttributes:
    """Transient node attributes in pacemaker-attrd.

    `private` keeps them out of the CIB (as the legacy `evacuate` attribute);
    public ones appear in `crm_mon -A`.
    """

    def __init__(self, runner: Runner, timeout: float = 10.0, private: bool = False) -> None:
        self._runner = runner
        self._timeout = timeout
        self._private = private

    def _run(self, args: list[str], what: str) -> str:
        try:
            result = self._runner.run(["attrd_updater", *args], timeout=self._timeout)
        except RunError as err:
            raise ClusterAttributeError(str(err)) from None
        if not result.ok:
            raise _failed(result.stderr, what, result.stdout)
        return result.stdout

    def get(self, node: str, name: str) -> Optional[str]:
        try:
            out = self._run(["--output-as=xml", "-Q", "-n", name, "-N", node], f"query of {name} on {node}")
        except ClusterAttributeError as err:
            if "not found" in str(err).lower() or "no such" in str(err).lower():
                return None
            raise
        value = _parse_attributes(out, node).get(node)
        return value or None

    def get_all(self, name: str) -> Dict[str, str]:
        try:
            out = self._run(["--output-as=xml", "-Q", "-A", "-n", name], f"query of {name}")
        except ClusterAttributeError as err:
            if "not found" in str(err).lower() or "no such" in str(err).lower():
                return {}
            raise
        return {node: value for node, value in _parse_attributes(out).items() if value}

    def set(self, node: str, name: str, value: str) -> None:
        args = ["-n", name, "-N", node, "-U", value]
        if self._private:
            args.append("-p")
        self._run(args, f"update of {name} on {node}")

    def delete(self, node: str, name: str) -> None:
        self._run(["-n", name, "-N", node, "-D"], f"delete of {name} on {node}")


class CibAttributes:
    """Persistent node attributes in the CIB (survive a full cluster restart)."""

    def __init__(self, runner: Runner, timeout: float = 10.0) -> None:
        self._runner = runner
        self._timeout = timeout

    def _run(self, args: list[str], what: str, missing_ok: bool = False) -> Optional[str]:
        try:
            result = self._runner.run(["crm_attribute", "--type", "nodes", *args], timeout=self._timeout)
        except RunError as err:
            raise ClusterAttributeError(str(err)) from None
        if result.ok:
            return result.stdout
        # crm_attribute exits 105 (ENXIO-style "no such object") when the attribute is absent
        if missing_ok and (result.returncode == 105 or "not found" in result.stderr.lower()
                           or "no such" in result.stderr.lower()):
            return None
        raise _failed(result.stderr, what, result.stdout)

    def get(self, node: str, name: str) -> Optional[str]:
        out = self._run(["--output-as=xml", "--node", node, "--name", name, "--query"],
                        f"query of {name} on {node}", missing_ok=True)
        if out is None:
            return None
        return _parse_attributes(out, node).get(node) or None

    def get_all(self, name: str) -> Dict[str, str]:
        """Every node's value with one `cibadmin --query --scope nodes` (not one call per node)."""
        try:
            result = self._runner.run(["cibadmin", "--query", "--scope", "nodes"], timeout=self._timeout)
        except RunError as err:
            raise ClusterAttributeError(str(err)) from None
        if result.returncode == 105:  # no nodes section yet
            return {}
        if not result.ok:
            raise _failed(result.stderr, "CIB query of the nodes section", result.stdout)
        return parse_nodes_section(result.stdout, name)

    def set(self, node: str, name: str, value: str) -> None:
        self._run(["--node", node, "--name", name, "--update", value, "--lifetime", "forever"],
                  f"update of {name} on {node}")

    def delete(self, node: str, name: str) -> None:
        self._run(["--node", node, "--name", name, "--delete", "--lifetime", "forever"],
                  f"delete of {name} on {node}", missing_ok=True)


def set_and_confirm(store: NodeAttributes, node: str, name: str, value: str, deadline: Deadline) -> None:
    """Write an attribute and read it back until the store shows it, bounded by the deadline."""
    store.set(node, name, value)
    deadline.poll(lambda: True if store.get(node, name) == value else None, interval=0.1,
                  max_interval=0.5, what=f"attribute {name}={value} on {node} to be visible")
