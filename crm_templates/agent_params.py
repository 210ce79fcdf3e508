"""Parameter names the templates give our agents, in one place.

The agents' ParamTables are the source of truth; `undeclared()` compares what
a rendering uses with what each agent declares (a unit test runs it), so a
renamed parameter breaks the build instead of a cluster.
"""
from __future__ import annotations

import importlib
from typing import Dict, Iterable, List, Optional, Tuple

# credentials (the shared fragment in ocf_lib/nova_auth.py)
CLOUD = "cloud"
AUTH_URL = "auth_url"
USERNAME = "username"
PASSWORD = "password"
PROJECT_NAME = "project_name"
USER_DOMAIN = "user_domain"
PROJECT_DOMAIN = "project_domain"
REGION_NAME = "region_name"
ENDPOINT_TYPE = "endpoint_type"
INSECURE = "insecure"

# fence_compute
RECORD_ONLY = "record_only"

# NovaEvacuate policy
SHARED_STORAGE = "shared_storage"
EVACUABLE_TAG = "evacuable_tag"
MAX_PARALLEL = "max_parallel"
MAX_PARALLEL_PER_HOST = "max_parallel_per_host"
EXCLUDE_PROJECTS = "exclude_projects"
PRIORITY_KEY = "priority_key"
EVACUATE_DELAY = "evacuate_delay"
RESERVED_HOSTS = "reserved_hosts"

# fence_ipmi
IPMI_IP = "ip"
IPMI_PORT = "ipport"
IPMI_USERNAME = "username"
IPMI_PASSWORD = "password"
IPMI_LANPLUS = "lanplus"
IPMI_CIPHER = "cipher"

# Pacemaker's own stonith parameters, valid for every fence device
PACEMAKER_STONITH = frozenset({"pcmk_host_list", "pcmk_host_map", "pcmk_host_check", "pcmk_delay_base",
                               "pcmk_delay_max", "priority"})

# the module holding each agent's class, and the attribute with its table
AGENT_MODULES: Dict[str, Tuple[str, str]] = {
    "fence_ipmi": ("computeha.fence.fence_ipmi", "TABLE"),
    "fence_compute": ("computeha.fence.fence_compute", "TABLE"),
    "NovaEvacuate": ("computeha.agents.nova_evacuate", "TABLE"),
    "NovaCompute": ("computeha.agents.nova_compute", "TABLE"),
}


def load_table(agent: str):
    """The agent's ParamTable, or None while the agent module does not exist yet.

    Looks for a module-level ParamTable (any name), else the `table` of an
    agent class or instance in the module.
    """
    from computeha.ocf_lib.params import ParamTable

    module_name, attribute = AGENT_MODULES[agent]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            return None
        raise
    table = getattr(module, attribute, None)
    if isinstance(table, ParamTable):
        return table
    for value in vars(module).values():
        if isinstance(value, ParamTable):
            return value
    for value in vars(module).values():
        candidate = getattr(value, "table", None)
        if isinstance(candidate, ParamTable) and getattr(value, "__module__", "") == module_name:
            return candidate
    return None


def undeclared(agent: str, names: Iterable[str], fence: bool) -> Optional[List[str]]:
    """Names the agent does not declare (None when the agent is not available)."""
    table = load_table(agent)
    if table is None:
        return None
    missing = []
    for name in names:
        if fence and (name in PACEMAKER_STONITH or name.startswith("pcmk_")):
            continue
        param = table.get(name)
        if param is None or (fence and not param.fence) or (not fence and not param.ocf):
            missing.append(name)
    return missing
