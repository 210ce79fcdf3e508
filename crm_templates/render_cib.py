"""Config -> a complete CIB document (ElementTree; `crm_verify --xml-file` accepts it).

Ids of nested elements follow pcs's conventions (`<rsc>-instance_attributes-<name>`),
so a CIB built by the pcs script and one loaded from this XML look alike.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterable, Optional

from .objects import DEFAULTS_SET, PROPERTY_SET, Avoid, Clone, Config, Nv, Order, Primitive, RuleLocation

VALIDATE_WITH = "pacemaker-3.9"  # Pacemaker 2.1.5 (Debian 12); newer releases upgrade it in place
CRM_FEATURE_SET = "3.16.1"


def _nvset(parent: ET.Element, tag: str, set_id: str, pairs: Iterable[Nv]) -> Optional[ET.Element]:
    pairs = list(pairs)
    if not pairs:
        return None
    element = ET.SubElement(parent, tag, id=set_id)
    for nv in pairs:
        ET.SubElement(element, "nvpair", id=f"{set_id}-{nv.name}", name=nv.name, value=nv.value)
    return element


def _primitive(parent: ET.Element, p: Primitive) -> None:
    attrs = {"id": p.id, "class": p.cls}
    if p.provider:
        attrs["provider"] = p.provider
    attrs["type"] = p.type
    element = ET.SubElement(parent, "primitive", attrs)
    _nvset(element, "instance_attributes", f"{p.id}-instance_attributes", p.params)
    _nvset(element, "meta_attributes", f"{p.id}-meta_attributes", p.meta)
    if p.ops:
        ops = ET.SubElement(element, "operations")
        for op in p.ops:
            attrs = {"id": f"{p.id}-{op.name}-interval-{op.interval}", "name": op.name, "interval": op.interval}
            if op.timeout:
                attrs["timeout"] = op.timeout
            ET.SubElement(ops, "op", attrs)


def configuration(config: Config) -> ET.Element:
    """The <configuration> element alone (what the other renderings are compared with)."""
    conf = ET.Element("configuration")
    crm_config = ET.SubElement(conf, "crm_config")
    _nvset(crm_config, "cluster_property_set", PROPERTY_SET, config.properties)

    nodes = ET.SubElement(conf, "nodes")
    for node in config.nodes:
        attrs = {"id": node.nodeid, "uname": node.name}
        if node.remote:
            attrs["type"] = "remote"
        element = ET.SubElement(nodes, "node", attrs)
        _nvset(element, "instance_attributes", f"nodes-{node.nodeid}", node.attrs)

    resources = ET.SubElement(conf, "resources")
    for rsc in config.resources:
        if isinstance(rsc, Clone):
            clone = ET.SubElement(resources, "clone", id=rsc.id)
            _nvset(clone, "meta_attributes", f"{rsc.id}-meta_attributes", rsc.meta)
            _primitive(clone, rsc.child)
        else:
            _primitive(resources, rsc)

    constraints = ET.SubElement(conf, "constraints")
    for con in config.constraints:
        if isinstance(con, Avoid):
            ET.SubElement(constraints, "rsc_location", id=con.id, rsc=con.rsc, node=con.node, score="-INFINITY")
        elif isinstance(con, RuleLocation):
            loc = ET.SubElement(constraints, "rsc_location", {"id": con.id, "rsc": con.rsc,
                                                              "resource-discovery": con.discovery})
            rule = ET.SubElement(loc, "rule", id=con.rule_id, score="-INFINITY")
            ET.SubElement(rule, "expression", id=f"{con.rule_id}-expr", attribute=con.attribute,
                          operation="ne", value=con.value)
        elif isinstance(con, Order):
            ET.SubElement(constraints, "rsc_order", {"id": con.id, "first": con.first, "first-action": "start",
                                                     "then": con.then, "then-action": "start", "kind": con.kind})

    if config.levels:
        topology = ET.SubElement(conf, "fencing-topology")
        for level in config.levels:
            ET.SubElement(topology, "fencing-level", id=level.id, target=level.target, index=str(level.index),
                          devices=",".join(level.devices))

    rsc_defaults = ET.SubElement(conf, "rsc_defaults")
    _nvset(rsc_defaults, "meta_attributes", DEFAULTS_SET, config.rsc_defaults)
    return conf


def cib(config: Config) -> ET.Element:
    root = ET.Element("cib", {"crm_feature_set": CRM_FEATURE_SET, "validate-with": VALIDATE_WITH,
                              "epoch": "1", "num_updates": "0", "admin_epoch": "0"})
    root.append(configuration(config))
    ET.SubElement(root, "status")
    return root


def render(config: Config) -> str:
    root = cib(config)
    ET.indent(root, "  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def merge(base: ET.Element, config: Config) -> ET.Element:
    """Our objects written into an existing CIB (e.g. `cibadmin --query` of the live cluster).

    Objects with our ids replace the ones in `base`; node attributes and
    properties are merged; everything else in `base` is kept. The result is
    what `crm_verify --xml-file` should check before `cibadmin --replace`.
    """
    ours = configuration(config)
    conf = base.find("configuration")
    if conf is None:
        raise ValueError("the base CIB has no <configuration> element")

    def section(tag: str) -> ET.Element:
        found = conf.find(tag)
        return found if found is not None else ET.SubElement(conf, tag)

    def merge_nvset(parent: ET.Element, new_set: ET.Element) -> None:
        existing = parent.find(f"{new_set.tag}[@id='{new_set.get('id')}']")
        if existing is None:
            existing = parent.find(new_set.tag)
        if existing is None:
            parent.append(new_set)
            return
        for nv in new_set.findall("nvpair"):
            for old in existing.findall(f"nvpair[@name='{nv.get('name')}']"):
                existing.remove(old)
            existing.append(nv)

    for tag in ("crm_config", "rsc_defaults"):
        for nvset in ours.findall(f"{tag}/*"):
            merge_nvset(section(tag), nvset)
    nodes = section("nodes")
    for node in ours.findall("nodes/node"):
        existing = nodes.find(f"node[@uname='{node.get('uname')}']")
        if existing is None:
            nodes.append(node)
        else:
            for nvset in node.findall("instance_attributes"):
                merge_nvset(existing, nvset)
    for tag in ("resources", "constraints"):
        target = section(tag)
        for element in ours.findall(f"{tag}/*"):
            for old in target.findall(f"*[@id='{element.get('id')}']"):
                target.remove(old)
            target.append(element)
    levels = ours.findall("fencing-topology/fencing-level")
    if levels:
        topology = section("fencing-topology")
        for level in levels:
            xpath = f"fencing-level[@target='{level.get('target')}'][@index='{level.get('index')}']"
            for old in topology.findall(xpath):
                topology.remove(old)
            topology.append(level)
    # keep Pacemaker's section order: fencing-topology before rsc_defaults
    order = ["crm_config", "nodes", "resources", "constraints", "fencing-topology", "op_defaults", "rsc_defaults",
             "alerts", "tags", "acls"]
    children = list(conf)
    for child in children:
        conf.remove(child)
    for child in sorted(children, key=lambda c: order.index(c.tag) if c.tag in order else len(order)):
        conf.append(child)
    return base


def render_into(base_text: str, config: Config) -> str:
    root = merge(ET.fromstring(base_text), config)
    ET.indent(root, "  ")
    return ET.tostring(root, encoding="unicode") + "\n"
