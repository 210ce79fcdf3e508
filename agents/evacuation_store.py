"""Where evacuation progress lives.

- `CibRecords` (= ocf_lib.attrs.CibAttributes): reads the persistent node attribute of EVERY node with one
  `cibadmin --query --scope nodes` (XML parsed, never text split) and writes
  through `crm_attribute --lifetime forever` (ocf_lib.attrs.CibAttributes).
- `HostProgress`: per-host, per-instance state under the instance StateDir,
  written atomically on every transition, so a SIGKILL at any line leaves the
  previous or the next state. Nova itself (task_state, migration records) is
  the final truth; this file only avoids re-asking and remembers in-doubt calls.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from computeha.ocf_lib.attrs import CibAttributes, parse_nodes_section  # noqa: F401 (re-exported)
from computeha.ocf_lib.state import StateDir

# The all-nodes read now lives in the library; the old names stay for the engine and tests.
CibRecords = CibAttributes


# --- per-instance progress ------------------------------------------------------------

PENDING, ISSUING, INFLIGHT, DONE, FAILED, SKIPPED, REPORTED = (
    "pending", "issuing", "inflight", "done", "failed", "skipped", "reported")
TERMINAL = frozenset({DONE, FAILED, SKIPPED, REPORTED})


@dataclass
class InstanceProgress:
    id: str
    name: str = ""
    state: str = PENDING
    priority: int = 0
    expect_status: str = "ACTIVE"
    disk: str = "shared"
    attempts: int = 0
    # evacuation_timeout periods spent waiting again for an evacuation Nova showed under way after the
    # first period ran out: they count against max_attempts like calls, or a request Nova never carries
    # out would be waited for forever
    waits: int = 0
    overdue: bool = False  # the last wait ran out; the next inspection that finds it under way is a wait
    issued_at: float = 0.0  # wall clock of the last evacuate call (in doubt until Nova shows it)
    next_at: float = 0.0  # earliest time of the next attempt (backoff)
    inflight_since: float = 0.0  # when Nova accepted it (or it was found under way)
    reason: str = ""
    dest: str = ""

    @property
    def tries(self) -> int:
        """What max_attempts bounds: evacuate calls plus further waits for one under way."""
        return self.attempts + self.waits


@dataclass
class HostProgress:
    node: str  # Pacemaker node name (where the record lives)
    nova_host: str
    epoch: int  # time of the evacuation request: migrations older than this are not ours
    claimed_by: str = ""
    instances: Dict[str, InstanceProgress] = field(default_factory=dict)
    blocked: str = ""  # why nothing is issued right now (fence evidence gone, ...)

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for inst in self.instances.values():
            out[inst.state] = out.get(inst.state, 0) + 1
        return out

    @property
    def selected(self) -> List[InstanceProgress]:
        return [i for i in self.instances.values() if i.state not in (SKIPPED, REPORTED)]

    @property
    def finished(self) -> bool:
        return all(i.state in TERMINAL for i in self.instances.values())

    def summary(self) -> str:
        sel = self.selected
        ok = sum(1 for i in sel if i.state == DONE)
        return f"{ok}/{len(sel)}"

    def to_json(self) -> dict:
        data = asdict(self)
        data["instances"] = [asdict(i) for i in self.instances.values()]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "HostProgress":
        insts = {}
        for raw in data.get("instances", []):
            known = {k: raw[k] for k in InstanceProgress.__dataclass_fields__ if k in raw}
            inst = InstanceProgress(**known)
            insts[inst.id] = inst
        return cls(node=data["node"], nova_host=data["nova_host"], epoch=int(data["epoch"]),
                   claimed_by=data.get("claimed_by", ""), instances=insts, blocked=data.get("blocked", ""))


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class ProgressStore:
    """One JSON file per failed host in the instance StateDir."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    @staticmethod
    def _name(node: str) -> str:
        return "host-" + _SAFE.sub("_", node)

    def load(self, node: str) -> Optional[HostProgress]:
        data = self.state.read_json(self._name(node))
        if not isinstance(data, dict):
            return None
        try:
            return HostProgress.from_json(data)
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, host: HostProgress) -> None:
        self.state.write_json(self._name(host.node), host.to_json())

    def remove(self, node: str) -> None:
        self.state.remove(self._name(node))
