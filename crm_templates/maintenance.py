"""The operator's maintenance switch: pause and resume automatic evacuation.

The switch is NovaEvacuate's `paused` parameter, set with crm_resource like any
other instance attribute, so it lives in the CIB (it survives a full cluster
restart and shows in `pcs resource config`) and needs no new cluster property.
Pacemaker restarts NovaEvacuate on the change; the new worker reads the records
again and, when resumed, processes them in the order they were made.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import List

from computeha.agents.evacuation_params import EVACUATION_PARAMS
from computeha.ocf_lib.runner import RunError, Runner

from .clusterview import ClusterUnavailable

_PAUSED = EVACUATION_PARAMS["paused"]
PARAMETER = _PAUSED.name
AGENT_TYPE = "NovaEvacuate"


def _is_paused(value: str) -> bool:
    """The agent's own reading of the value (the parameter table); one it would reject does not pause it."""
    try:
        return bool(_PAUSED.convert(value)) if value.strip() else bool(_PAUSED.default)
    except ValueError:
        return False


@dataclass(frozen=True)
class Switch:
    resource: str  # the NovaEvacuate primitive's id
    paused: bool


def switches(cib_text: str) -> List[Switch]:
    """Every NovaEvacuate primitive of the CIB (whatever its provider) and whether it is paused."""
    try:
        root = ET.fromstring(cib_text)
    except ET.ParseError as err:
        raise ClusterUnavailable(f"the CIB is not XML: {err}") from None
    out = []
    for prim in root.iter("primitive"):
        if prim.get("class") != "ocf" or prim.get("type") != AGENT_TYPE:
            continue
        value = ""
        for attrs in prim.findall("instance_attributes"):
            for nv in attrs.findall("nvpair"):
                if nv.get("name") == PARAMETER:
                    value = nv.get("value") or ""
        out.append(Switch(prim.get("id") or "", _is_paused(value)))
    return out


def set_paused(runner: Runner, resource: str, paused: bool, timeout: float = 60.0) -> None:
    """Set (or, to resume, delete: the default is false) the parameter the way an operator would."""
    argv = ["crm_resource", "--resource", resource]
    argv += (["--set-parameter", PARAMETER, "--parameter-value", "true"] if paused
             else ["--delete-parameter", PARAMETER])
    try:
        result = runner.run(argv, timeout=timeout)
    except RunError as err:
        raise ClusterUnavailable(str(err)) from None
    if not result.ok and not (not paused and "not found" in result.stderr.lower()):
        line = " ".join(result.stderr.split())[:300] or f"exit status {result.returncode}"
        raise ClusterUnavailable(f"crm_resource could not change {PARAMETER} of {resource}: {line}")
