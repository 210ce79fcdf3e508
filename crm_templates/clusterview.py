"""What the operator CLI reads from the cluster: the evacuation records and the fence history.

Parsing is pure (XML text in, dataclasses out) so it is tested on real tool
output; `read_*` run the tools (`cibadmin`, `stonith_admin`) through the
project runner. `CIB_file` in the environment makes cibadmin read a file, as
everywhere in Pacemaker.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Dict, List, Optional

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.runner import RunError, Runner
from computeha.ocf_lib.timefmt import format_utc


class ClusterUnavailable(Exception):
    """The cluster (or the CIB file) could not be read; one line."""


@dataclass(frozen=True)
class HostStatus:
    node: str
    state: str  # requested | running | done | failed
    since: int
    detail: str
    done: Optional[int] = None  # from the transient progress attribute
    total: Optional[int] = None
    role: str = ""
    note: str = ""  # a progress text that is not a count, e.g. "blocked: mass failure"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    when: int  # unix time, 0 when unknown
    kind: str  # fence | evacuation
    target: str
    what: str  # the action or record state
    result: str  # success | failed | pending | ...
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _parse(xml_text: str, what: str) -> ET.Element:
    try:
        return ET.fromstring(xml_text)
    except ET.ParseError as err:
        raise ClusterUnavailable(f"unreadable {what}: {err}") from None


def _progress(text: str) -> tuple:
    try:
        done, total = text.split("/", 1)
        return int(done), int(total.split()[0])
    except (ValueError, IndexError):
        return None, None


def hosts_from_cib(cib_text: str, role_attribute: str = "computeha-role") -> List[HostStatus]:
    """Every node that carries an evacuation record, with its transient progress."""
    root = _parse(cib_text, "CIB")
    roles: Dict[str, str] = {}
    records: Dict[str, rec.EvacuationRecord] = {}
    ids: Dict[str, str] = {}
    for node in root.iterfind("configuration/nodes/node"):
        name = node.get("uname") or node.get("id") or ""
        ids[node.get("id", "")] = name
        for nv in node.iterfind("instance_attributes/nvpair"):
            if nv.get("name") == rec.ATTRIBUTE:
                parsed = rec.parse(nv.get("value"))
                if parsed is not None:
                    records[name] = parsed
            elif nv.get("name") == role_attribute:
                roles[name] = nv.get("value", "")
    progress: Dict[str, tuple] = {}
    notes: Dict[str, str] = {}
    for state in root.iterfind("status/node_state"):
        name = state.get("uname") or ids.get(state.get("id", ""), state.get("id", ""))
        for nv in state.iterfind("transient_attributes/instance_attributes/nvpair"):
            if nv.get("name") == rec.PROGRESS_ATTRIBUTE:
                progress[name] = _progress(nv.get("value", ""))
                if progress[name][0] is None:
                    notes[name] = nv.get("value", "")
    out = []
    for name in sorted(records):
        r = records[name]
        done, total = progress.get(name, (None, None))
        if done is None and r.state in rec.FINISHED:
            done, total = _progress(r.detail)
        out.append(HostStatus(name, r.state, r.since, r.detail, done, total, roles.get(name, ""),
                              notes.get(name, "")))
    return out


def _when(text: Optional[str]) -> int:
    if not text:
        return 0
    if text.isdigit():
        return int(text)
    for fmt in ("%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S", "%a %b %d %H:%M:%S %Y", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            parsed = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()
        return int(parsed.timestamp())
    return 0


def fence_events(history_xml: str) -> List[Event]:
    """`stonith_admin --history '*' --output-as=xml` -> events."""
    root = _parse(history_xml, "fence history")
    events = []
    for item in root.iter("fence_event"):
        status = item.get("status", "")
        detail = " ".join(x for x in (f"by {item.get('delegate')}" if item.get("delegate") else "",
                                      f"for {item.get('client')}" if item.get("client") else "",
                                      item.get("exit-reason") or item.get("extended-status") or "") if x)
        events.append(Event(_when(item.get("completed") or item.get("completed-time")), "fence",
                            item.get("target", ""), item.get("action", ""), status, detail))
    return events


def record_events(hosts: List[HostStatus]) -> List[Event]:
    result = {rec.DONE: "success", rec.FAILED: "failed"}
    return [Event(h.since, "evacuation", h.node, h.state, result.get(h.state, "pending"), h.detail) for h in hosts]


def read_cib(runner: Runner, timeout: float = 15.0) -> str:
    try:
        result = runner.run(["cibadmin", "--query"], timeout=timeout)
    except RunError as err:
        raise ClusterUnavailable(str(err)) from None
    if not result.ok:
        line = " ".join(result.stderr.split())[:300] or f"exit status {result.returncode}"
        raise ClusterUnavailable(f"cannot read the CIB: {line}")
    return result.stdout


def read_fence_history(runner: Runner, timeout: float = 15.0) -> str:
    try:
        result = runner.run(["stonith_admin", "--history", "*", "--output-as=xml"], timeout=timeout)
    except RunError as err:
        raise ClusterUnavailable(str(err)) from None
    if not result.ok and not result.stdout.strip().startswith("<"):
        line = " ".join(result.stderr.split())[:300] or f"exit status {result.returncode}"
        raise ClusterUnavailable(f"cannot read the fence history: {line}")
    return result.stdout


def iso(when: int) -> str:
    """A record's time for the operator; "-" when unset (0)."""
    return format_utc(when) if when else "-"
