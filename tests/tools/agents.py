"""The project's agents, found by module: shared by the demo, the README generator and tests."""
from __future__ import annotations

import importlib
from typing import List, NamedTuple, Optional, Union

from computeha.ocf_lib import fence, ocf


class AgentRef(NamedTuple):
    name: str
    module: str
    protocol: str  # "ocf" | "fence"


AGENTS: List[AgentRef] = [
    AgentRef("NovaEvacuate", "computeha.agents.nova_evacuate", "ocf"),
    AgentRef("NovaCompute", "computeha.agents.nova_compute", "ocf"),
    AgentRef("fence_compute", "computeha.fence.fence_compute", "fence"),
    AgentRef("fence_ipmi", "computeha.fence.fence_ipmi", "fence"),
]


def load(ref: AgentRef) -> Optional[Union[ocf.OcfAgent, fence.FenceAgent]]:
    """An instance of the agent class defined in the module, or None when it is not there yet."""
    try:
        module = importlib.import_module(ref.module)
    except ImportError:
        return None
    base = ocf.OcfAgent if ref.protocol == "ocf" else fence.FenceAgent
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, base) and v.__module__ == module.__name__]
    return classes[-1]() if classes else None


def table_of(agent) -> "object":
    return agent.table if isinstance(agent, ocf.OcfAgent) else agent.full_table()
