"""Metadata rendered from the parameter table: OCF XML, fence XML, Markdown.

OCF output stays inside what resource-agents' ra-api-1.dtd (used by
ocf-tester), resource-agents' metadata.rng and pcs's OCF 1.1 schema all
accept: one longdesc/shortdesc, content types string/integer/boolean only, no
reload-agent. Select parameters are therefore rendered as strings with the
choices spelled out in the long description.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterable, Optional, Sequence

from .params import ActionSpec, AgentInfo, Kind, Param, ParamTable

_OCF_TYPE = {Kind.STRING: "string", Kind.INTEGER: "integer", Kind.BOOLEAN: "boolean",
             Kind.SECONDS: "integer", Kind.SELECT: "string"}
_FENCE_TYPE = {Kind.STRING: "string", Kind.INTEGER: "integer", Kind.BOOLEAN: "boolean",
               Kind.SECONDS: "second", Kind.SELECT: "select"}


def _bool(flag: bool) -> str:
    return "1" if flag else "0"


def _serialize(root: ET.Element, doctype: Optional[str]) -> str:
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    head = '<?xml version="1.0"?>\n'
    if doctype:
        head += doctype + "\n"
    return head + body + "\n"


def _long_text(param: Param) -> str:
    text = (param.longdesc or param.shortdesc).rstrip()
    if text and text[-1] not in ".!?:)":
        text += "."
    if param.kind is Kind.SELECT:
        text += " One of: " + ", ".join(param.choices) + "."
    if param.kind is Kind.SECONDS:
        text += " In seconds."
    if param.secret:
        text += " Secret: never logged."
    return text


def ocf_metadata(info: AgentInfo, table: ParamTable) -> str:
    """The OCF 1.1 meta-data document, with ocf-tester's DOCTYPE."""
    root = ET.Element("resource-agent", {"name": info.name, "version": info.version})
    ET.SubElement(root, "version").text = "1.1"
    ET.SubElement(root, "longdesc", {"lang": "en"}).text = info.longdesc
    ET.SubElement(root, "shortdesc", {"lang": "en"}).text = info.shortdesc
    params = ET.SubElement(root, "parameters")
    for param in table.for_ocf():
        _ocf_param(params, param.name, param, _long_text(param), param.shortdesc, param.required)
        for alias in param.aliases:
            text = f"Deprecated alias of {param.name}, accepted so that existing configurations keep working."
            _ocf_param(params, alias, param, text, f"Alias of {param.name}", False, with_default=False)
    actions = ET.SubElement(root, "actions")
    for action in info.actions:
        attrs = {"name": action.name, "timeout": f"{action.timeout}s"}
        if action.interval:
            attrs["interval"] = f"{action.interval}s"
        if action.depth is not None:
            attrs["depth"] = str(action.depth)
        ET.SubElement(actions, "action", attrs)
    return _serialize(root, '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">')


def _ocf_param(parent: ET.Element, name: str, param: Param, longdesc: str, shortdesc: str,
               required: bool, with_default: bool = True) -> None:
    node = ET.SubElement(parent, "parameter", {"name": name, "unique": _bool(param.unique),
                                                "required": _bool(required)})
    ET.SubElement(node, "longdesc", {"lang": "en"}).text = longdesc
    ET.SubElement(node, "shortdesc", {"lang": "en"}).text = shortdesc
    content = {"type": _OCF_TYPE[param.kind]}
    default = param.default_text() if with_default else None
    if default is not None:
        content["default"] = default
    ET.SubElement(node, "content", content)


def getopt_mixed(param: Param, name: Optional[str] = None) -> str:
    """fence-agents' `getopt mixed` text, e.g. "-l, --username=[name]"."""
    long = "--" + (name or param.name).replace("_", "-")
    if param.kind is not Kind.BOOLEAN:
        long += f"=[{param.metavar or param.name}]"
    return f"-{param.short_opt}, {long}" if param.short_opt else long


def fence_metadata(name: str, shortdesc: str, longdesc: str, table: ParamTable,
                   actions: Sequence[tuple[str, dict[str, str]]], vendor_url: str = "",
                   symlinks: Iterable[tuple[str, str]] = ()) -> str:
    """The fence-agents metadata document (lib/metadata.rng)."""
    root = ET.Element("resource-agent", {"name": name, "shortdesc": shortdesc})
    for link, desc in symlinks:
        ET.SubElement(root, "symlink", {"name": link, "shortdesc": desc})
    ET.SubElement(root, "longdesc").text = longdesc
    ET.SubElement(root, "vendor-url").text = vendor_url
    params = ET.SubElement(root, "parameters")
    entries: list[tuple[str, Param, bool]] = []
    for param in table.for_fence():
        entries.append((param.name, param, False))
        entries.extend((alias, param, True) for alias in param.aliases + param.fence_spellings)
    for entry_name, param, is_alias in sorted(entries, key=lambda e: e[0]):
        attrs = {"name": entry_name, "unique": _bool(param.unique),
                 "required": _bool(param.required and not is_alias)}
        if is_alias:
            attrs["deprecated"] = "1"
        elif param.aliases or param.fence_spellings:
            attrs["obsoletes"] = (param.aliases + param.fence_spellings)[0]
        node = ET.SubElement(params, "parameter", attrs)
        ET.SubElement(node, "getopt", {"mixed": getopt_mixed(param)})
        content = ET.SubElement(node, "content", {"type": _FENCE_TYPE[param.kind]})
        default = param.default_text()
        if default is not None:
            content.set("default", default)
        if param.kind is Kind.SELECT:
            for choice in param.choices:
                ET.SubElement(content, "option", {"value": choice})
        ET.SubElement(node, "shortdesc", {"lang": "en"}).text = (
            f"Deprecated alias of {param.name}" if is_alias else param.shortdesc)
    acts = ET.SubElement(root, "actions")
    for action, attrs in actions:
        ET.SubElement(acts, "action", {"name": action, **attrs})
    return _serialize(root, None)


def markdown_table(table: ParamTable, protocol: str) -> str:
    """The README parameter table for one agent (`protocol` is "ocf" or "fence")."""
    params = table.for_ocf() if protocol == "ocf" else table.for_fence()
    lines = ["| parameter | type | default | required | description |", "|---|---|---|---|---|"]
    for param in params:
        names = f"`{param.name}`"
        if param.aliases:
            names += " (alias " + ", ".join(f"`{a}`" for a in param.aliases) + ")"
        kind = param.kind.value
        if param.kind is Kind.SELECT:
            kind += ": " + "/".join(param.choices)
        default = param.default_text()
        desc = param.shortdesc + (" (secret)" if param.secret else "")
        lines.append(f"| {names} | {kind} | {'`' + default + '`' if default not in (None, '') else ''} | "
                     f"{'yes' if param.required else ''} | {desc} |")
    return "\n".join(lines) + "\n"


__all__ = ["ActionSpec", "fence_metadata", "getopt_mixed", "markdown_table", "ocf_metadata"]
