"""A CIB configuration reduced to what it means, for comparing renderings.

pcs, crmsh and our XML writer choose different ids for nested elements, order
children differently and spell durations differently; none of that changes
what Pacemaker does. `canonical(xml)` keeps only what matters.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any, Dict, Optional, Set, Tuple

_UNITS = {"": 1, "s": 1, "sec": 1, "ms": 0.001, "msec": 0.001, "m": 60, "min": 60, "h": 3600, "hr": 3600}
_DUR = re.compile(r"^\s*(\d+)\s*([a-z]*)\s*$")


def seconds(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    match = _DUR.match(text.lower())
    if not match or match.group(2) not in _UNITS:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)]


def _nv(element: ET.Element, tag: str) -> Dict[str, str]:
    found: Dict[str, str] = {}
    for nvset in element.findall(tag):
        for nv in nvset.findall("nvpair"):
            found[nv.get("name", "")] = nv.get("value", "")
    return found


def _primitive(p: ET.Element, parent: str = "", parent_meta: Optional[Dict[str, str]] = None) -> Tuple[Any, ...]:
    ops = frozenset((op.get("name"), seconds(op.get("interval")), seconds(op.get("timeout")))
                    for op in p.iter("op"))
    return (p.get("class"), p.get("provider"), p.get("type"), tuple(sorted(_nv(p, "instance_attributes").items())),
            tuple(sorted(_nv(p, "meta_attributes").items())), ops, parent,
            tuple(sorted((parent_meta or {}).items())))


def canonical(root: ET.Element) -> Dict[str, Any]:
    """`root` is a <cib> or a <configuration> element."""
    conf = root if root.tag == "configuration" else root.find("configuration")
    assert conf is not None, "no <configuration> element"
    out: Dict[str, Any] = {}
    crm_config = conf.find("crm_config")
    out["properties"] = _nv(crm_config, "cluster_property_set") if crm_config is not None else {}
    defaults = conf.find("rsc_defaults")
    out["rsc_defaults"] = _nv(defaults, "meta_attributes") if defaults is not None else {}
    # keyed by the XML attributes as read: None when an element lacks one
    nodes: Dict[Optional[str], Tuple[Any, ...]] = {}
    for node in conf.iterfind("nodes/node"):
        remote = node.get("type") == "remote"
        nodes[node.get("uname")] = ("remote" if remote else node.get("id"),
                                    tuple(sorted(_nv(node, "instance_attributes").items())))
    out["nodes"] = nodes
    resources: Dict[Optional[str], Tuple[Any, ...]] = {}
    for rsc in conf.findall("resources/*"):
        if rsc.tag == "primitive":
            resources[rsc.get("id")] = _primitive(rsc)
        elif rsc.tag == "clone":
            child = rsc.find("primitive")
            assert child is not None
            resources[child.get("id")] = _primitive(child, rsc.get("id", ""), _nv(rsc, "meta_attributes"))
    out["resources"] = resources
    constraints: Set[Tuple[Any, ...]] = set()
    for con in conf.findall("constraints/*"):
        if con.tag == "rsc_location" and con.get("node"):
            constraints.add(("location", con.get("rsc"), con.get("node"), con.get("score")))
        elif con.tag == "rsc_location":
            for rule in con.findall("rule"):
                exprs = frozenset((e.get("attribute"), e.get("operation"), e.get("value"))
                                  for e in rule.iter("expression"))
                score = "-INFINITY" if rule.get("score") in ("-INFINITY", "-inf") else rule.get("score")
                constraints.add(("rule", con.get("rsc"), con.get("resource-discovery", "always"), score, exprs))
        elif con.tag == "rsc_order":
            constraints.add(("order", con.get("first"), con.get("first-action", "start"), con.get("then"),
                             con.get("then-action", "start"), con.get("kind", "Mandatory")))
        else:
            constraints.add((con.tag, tuple(sorted(con.attrib.items()))))
    out["constraints"] = constraints
    out["topology"] = {(lv.get("target"), int(lv.get("index", "0"))): tuple(re.split(r"[ ,]+", lv.get("devices", "")))
                       for lv in conf.iterfind("fencing-topology/fencing-level")}
    return out


def differences(a: Dict[str, Any], b: Dict[str, Any]) -> list:
    """Human-readable differences between two canonical forms (empty when equivalent)."""
    diffs = []
    for key in a.keys() | b.keys():
        left, right = a.get(key), b.get(key)
        if left == right:
            continue
        if isinstance(left, dict) and isinstance(right, dict):
            for k in left.keys() | right.keys():
                if left.get(k) != right.get(k):
                    diffs.append(f"{key}[{k}]: {left.get(k)!r} != {right.get(k)!r}")
        elif isinstance(left, set) and isinstance(right, set):
            diffs += [f"{key}: only in first: {x!r}" for x in left - right]
            diffs += [f"{key}: only in second: {x!r}" for x in right - left]
        else:
            diffs.append(f"{key}: {left!r} != {right!r}")
    return sorted(diffs)
