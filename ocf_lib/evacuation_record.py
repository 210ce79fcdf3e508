"""The cluster record that links fencing, evacuation and return to service.

One persistent node attribute per compute node (in the CIB, so it survives a
full cluster restart and shows in `crm_mon -A`), written on the Pacemaker node
name of the fenced compute:

    computeha-evacuate = "<state>;<unix time>;<detail>"

    requested  fence_compute `off` succeeded after the power fence (detail: who fenced)
    running    NovaEvacuate claimed the host (detail: the claiming node)
    done       every selected instance is back elsewhere (detail: "<ok>/<total>")
    failed     some instances failed for good (detail: "<ok>/<total> <reason>")
    (unset)    nothing to do

The legacy agents used the private attrd attribute `evacuate=yes|no`; we do
not write it (it vanishes on a full cluster restart and is invisible to
operators).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

ATTRIBUTE = "computeha-evacuate"
PROGRESS_ATTRIBUTE = "computeha-progress"  # transient, "<done>/<total>" for crm_mon -A

REQUESTED, RUNNING, DONE, FAILED = "requested", "running", "done", "failed"
STATES = (REQUESTED, RUNNING, DONE, FAILED)
FINISHED = (DONE, FAILED)


@dataclass(frozen=True)
class EvacuationRecord:
    state: str
    since: int
    detail: str = ""

    def format(self) -> str:
        return f"{self.state};{self.since};{self.detail}"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def parse(value: Optional[str]) -> Optional[EvacuationRecord]:
    """None for unset/empty; unknown shapes are treated as a request (fail safe: evacuate-side
    code still checks the fence evidence in Nova before acting)."""
    if not value:
        return None
    if value in ("yes", "no"):  # a legacy value written by an old fence_compute
        return EvacuationRecord(REQUESTED if value == "yes" else DONE, 0, "legacy")
    parts = value.split(";", 2)
    state = parts[0]
    try:
        since = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        since = 0
    detail = parts[2] if len(parts) > 2 else ""
    if state not in STATES:
        return EvacuationRecord(REQUESTED, since, f"unrecognised record {value[:40]!r}")
    return EvacuationRecord(state, since, detail)


def new(state: str, detail: str = "", now: Optional[float] = None) -> EvacuationRecord:
    return EvacuationRecord(state, int(now if now is not None else time.time()), detail)


# The durable record on the Nova side: the compute service's disabled_reason.
# fence_compute writes "computeha: fenced <ISO time> by <who>; evacuation requested";
# later writers keep the prefix so that an operator (and the agents) can tell
# a host disabled by Instance HA from one an administrator disabled.
DISABLED_REASON_PREFIX = "computeha:"


def disabled_reason(text: str) -> str:
    # Nova limits disabled_reason to 255 characters
    return (DISABLED_REASON_PREFIX + " " + " ".join(text.split()))[:255]


def is_ours(reason: Optional[str]) -> bool:
    return bool(reason) and str(reason).startswith(DISABLED_REASON_PREFIX)
