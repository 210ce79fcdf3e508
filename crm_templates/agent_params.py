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
CLOUDS_YAML = "clouds_yaml"
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

# Pacemaker node name -> Nova host name (fence_compute and NovaEvacuate)
HOST_MAP = "host_map"

# NovaEvacuate policy
NO_SHARED_STORAGE = "no_shared_storage"
LOCAL_DISK_POLICY = "local_disk_policy"
SELECTION = "selection"
MARKER = "marker"
EXCLUDE_PROJECTS = "exclude_projects"
EXCLUDE_IMAGES = "exclude_images"
MAX_PARALLEL = "max_parallel"
MAX_PARALLEL_PER_HOST = "max_parallel_per_host"
STAGGER = "stagger"
EVACUATE_DELAY = "evacuate_delay"
TARGET_AGGREGATE = "target_aggregate"

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
# the module holding each agent and its agent class (fence agents: the full table, with the
# options the fence library adds, comes from the instance's full_table())
AGENT_MODULES: Dict[str, Tuple[str, str]] = {
    "fence_ipmi": ("computeha.fence.fence_ipmi", "IpmiFence"),
    "fence_compute": ("computeha.fence.fence_compute", "FenceCompute"),
    "NovaEvacuate": ("computeha.agents.nova_evacuate", "NovaEvacuate"),
    "NovaCompute": ("computeha.agents.nova_compute", "NovaCompute"),
}


def load_table(agent: str):
    """The agent's complete ParamTable, or None while the agent module does not exist."""
    module_name, class_name = AGENT_MODULES[agent]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            return None
        raise
    cls = getattr(module, class_name, None)
    if cls is None:
        return None
    full = getattr(cls, "full_table", None)
    if callable(full):
        return cls().full_table()
    return cls.table


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
