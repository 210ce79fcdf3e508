"""The cluster objects one site needs, independent of any output syntax.

`build(site)` is the single place that decides WHAT goes into the CIB; the
three renderers (CIB XML, pcs, crmsh) only decide HOW to write it. Ids are
chosen here too, so every rendering names objects the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from . import agent_params as ap
from .model import Secret, Site

CIB_SECRET = "lrm://"  # what Pacemaker's cibsecret leaves in the CIB


@dataclass(frozen=True)
class Nv:
    name: str
    value: str
    secret: bool = False  # inline secret: renderers keep it off command lines


@dataclass(frozen=True)
class Op:
    name: str
    interval: str
    timeout: Optional[str] = None


@dataclass(frozen=True)
class Primitive:
    id: str
    cls: str  # ocf | stonith
    type: str
    provider: Optional[str] = None
    params: Tuple[Nv, ...] = ()
    meta: Tuple[Nv, ...] = ()
    ops: Tuple[Op, ...] = ()

    @property
    def agent(self) -> str:
        return f"{self.cls}:{self.provider}:{self.type}" if self.provider else f"{self.cls}:{self.type}"


@dataclass(frozen=True)
class Clone:
    id: str
    child: Primitive
    meta: Tuple[Nv, ...] = ()


@dataclass(frozen=True)
class Avoid:
    """Ban a resource from one node (a fence device never runs on the node it fences)."""

    id: str
    rsc: str
    node: str


@dataclass(frozen=True)
class RuleLocation:
    """Keep `rsc` off every node whose role attribute is not `role` (and do not probe there)."""

    id: str
    rule_id: str
    rsc: str
    attribute: str
    value: str
    discovery: str = "never"


@dataclass(frozen=True)
class Order:
    id: str
    first: str
    then: str
    kind: str = "Mandatory"


@dataclass(frozen=True)
class Level:
    id: str
    target: str
    index: int
    devices: Tuple[str, ...]


@dataclass(frozen=True)
class Node:
    name: str
    nodeid: str  # corosync id for cluster nodes, the name for remote nodes
    remote: bool
    attrs: Tuple[Nv, ...]


Resource = Union[Primitive, Clone]
Constraint = Union[Avoid, RuleLocation, Order]


@dataclass(frozen=True)
class Config:
    properties: Tuple[Nv, ...]
    rsc_defaults: Tuple[Nv, ...]
    nodes: Tuple[Node, ...]
    resources: Tuple[Resource, ...]
    constraints: Tuple[Constraint, ...]
    levels: Tuple[Level, ...]
    inline_secrets: bool = False


# Stable ids, shared by all renderings (and what operators see in crm_mon).
FENCE_NOVA = "fence-nova"
FENCE_KDUMP = "fence-kdump"
NOVA_EVACUATE = "nova-evacuate"
NOVA_COMPUTE = "nova-compute"
NOVA_COMPUTE_CLONE = "nova-compute-clone"
PROPERTY_SET = "cib-bootstrap-options"
DEFAULTS_SET = "rsc_defaults-meta_attributes"
NOVA_HOST_ATTRIBUTE = "computeha-nova-host"
CONTROLLER, COMPUTE = "controller", "compute"


def ipmi_id(node: str) -> str:
    return f"fence-ipmi-{node}"


def _secret_nv(name: str, secret: Secret) -> Nv:
    if secret.script is not None:
        return Nv(f"{name}_script", secret.script)
    if secret.cib_secret:
        return Nv(name, CIB_SECRET)
    return Nv(name, str(secret.inline), secret=True)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _credentials(site: Site) -> List[Nv]:
    c = site.cloud
    out: List[Nv] = []
    if c.cloud is not None:
        out.append(Nv(ap.CLOUD, c.cloud))
        if c.clouds_yaml:
            out.append(Nv(ap.CLOUDS_YAML, c.clouds_yaml))
    else:
        out += [Nv(ap.AUTH_URL, str(c.auth_url)), Nv(ap.USERNAME, str(c.username))]
        if c.password is not None:
            out.append(_secret_nv(ap.PASSWORD, c.password))
        out += [Nv(ap.PROJECT_NAME, str(c.project_name)), Nv(ap.USER_DOMAIN, str(c.user_domain)),
                Nv(ap.PROJECT_DOMAIN, str(c.project_domain))]
    if c.region_name:
        out.append(Nv(ap.REGION_NAME, c.region_name))
    if c.endpoint_type:
        out.append(Nv(ap.ENDPOINT_TYPE, c.endpoint_type))
    if c.insecure:
        out.append(Nv(ap.INSECURE, "true"))
    return out


def _ipmi(site: Site, node: str, bmc) -> Primitive:
    params = [Nv(ap.IPMI_IP, bmc.address), Nv(ap.IPMI_PORT, str(bmc.port)), Nv(ap.IPMI_USERNAME, bmc.username),
              _secret_nv(ap.IPMI_PASSWORD, bmc.password), Nv(ap.IPMI_LANPLUS, _bool(bmc.lanplus))]
    if bmc.cipher is not None:
        params.append(Nv(ap.IPMI_CIPHER, str(bmc.cipher)))
    params.append(Nv("pcmk_host_list", node))
    return Primitive(ipmi_id(node), "stonith", site.agents.fence_ipmi, params=tuple(params),
                     ops=(Op("monitor", "60s"),))


def _evacuation_params(site: Site) -> List[Nv]:
    e = site.evacuation
    out = [Nv(ap.NO_SHARED_STORAGE, _bool(not e.shared_storage))]
    optional = [(ap.LOCAL_DISK_POLICY, e.local_disk_policy), (ap.SELECTION, e.selection), (ap.MARKER, e.marker),
                (ap.EXCLUDE_PROJECTS, ",".join(e.exclude_projects)), (ap.EXCLUDE_IMAGES, ",".join(e.exclude_images)),
                (ap.MAX_PARALLEL, e.max_parallel), (ap.MAX_PARALLEL_PER_HOST, e.max_parallel_per_host),
                (ap.STAGGER, e.stagger), (ap.EVACUATE_DELAY, e.delay),
                (ap.TARGET_AGGREGATE, site.reserved.aggregate if site.reserved else None)]
    out += [Nv(name, str(value)) for name, value in optional if value not in (None, "")]
    return out


def _host_map(site: Site) -> List[Nv]:
    """Only when some Pacemaker node name differs from its Nova host name."""
    pairs = [f"{c.name}:{c.nova_host}" for c in site.computes if c.nova_host != c.name]
    return [Nv(ap.HOST_MAP, ";".join(pairs))] if pairs else []


def build(site: Site) -> Config:
    role = site.role_attribute
    computes = [c.name for c in site.computes]

    nodes = [Node(c.name, str(c.nodeid), False, (Nv(role, CONTROLLER),)) for c in site.controllers]
    nodes += [Node(c.name, c.name, True, (Nv(role, COMPUTE), Nv(NOVA_HOST_ATTRIBUTE, c.nova_host)))
              for c in site.computes]

    resources: List[Resource] = []
    constraints: List[Constraint] = []
    levels: List[Level] = []

    for ctl in site.controllers:
        if ctl.bmc is not None:
            resources.append(_ipmi(site, ctl.name, ctl.bmc))
            constraints.append(Avoid(f"l-{ipmi_id(ctl.name)}-avoids-self", ipmi_id(ctl.name), ctl.name))

    # fence_compute: only ever for computes (it needs Keystone/Nova, which run on the controllers).
    # Pacemaker hands it the node name; the agent maps that to the Nova host itself (host_map),
    # so the same node name reaches the cluster record that NovaEvacuate reads.
    resources.append(Primitive(FENCE_NOVA, "stonith", site.agents.fence_compute,
                               params=tuple(_credentials(site) + _host_map(site) +
                                            [Nv(ap.RECORD_ONLY, "1"), Nv("pcmk_host_list", " ".join(computes))]),
                               meta=(Nv("provides", "unfencing"),), ops=(Op("monitor", "60s", "180s"),)))
    if site.kdump is not None:
        all_nodes = [c.name for c in site.controllers] + computes
        resources.append(Primitive(FENCE_KDUMP, "stonith", "fence_kdump",
                                   params=(Nv("timeout", str(site.kdump.timeout)),
                                           Nv("pcmk_host_list", " ".join(all_nodes))),
                                   ops=(Op("monitor", "60s"),)))

    for comp in site.computes:
        resources.append(Primitive(comp.name, "ocf", "remote", "pacemaker",
                                   params=(Nv("server", comp.address), Nv("port", str(site.remote_port)),
                                           Nv("reconnect_interval", site.reconnect_interval)),
                                   ops=(Op("monitor", site.remote_monitor_interval, site.remote_monitor_timeout),)))
        resources.append(_ipmi(site, comp.name, comp.bmc))

    resources.append(Primitive(NOVA_EVACUATE, "ocf", "NovaEvacuate", site.agents.provider,
                               params=tuple(_credentials(site) + _host_map(site) + _evacuation_params(site)),
                               ops=(Op("start", "0s", "60s"), Op("stop", "0s", "60s"),
                                    Op("monitor", "10s", "600s"))))
    constraints.append(RuleLocation(f"l-{NOVA_EVACUATE}-on-controllers", f"l-{NOVA_EVACUATE}-on-controllers-rule",
                                    NOVA_EVACUATE, role, CONTROLLER))
    # requires=unfencing: Pacemaker runs fence_compute `on` for a compute before NovaCompute starts there
    nova_compute = Primitive(NOVA_COMPUTE, "ocf", "NovaCompute", site.agents.provider,
                             params=tuple(_credentials(site)), meta=(Nv("requires", "unfencing"),),
                             ops=(Op("start", "0s", "600s"), Op("stop", "0s", "300s"),
                                  Op("monitor", "10s", "20s")))
    resources.append(Clone(NOVA_COMPUTE_CLONE, nova_compute, (Nv("interleave", "true"),)))
    constraints.append(RuleLocation(f"l-{NOVA_COMPUTE_CLONE}-on-computes", f"l-{NOVA_COMPUTE_CLONE}-on-computes-rule",
                                    NOVA_COMPUTE_CLONE, role, COMPUTE))
    for service in site.control_plane_services:
        constraints.append(Order(f"o-{service}-then-{NOVA_EVACUATE}", service, NOVA_EVACUATE))

    for ctl in site.controllers:
        if site.kdump is not None:
            levels.append(Level(f"fl-{ctl.name}-1", ctl.name, 1, (FENCE_KDUMP,)))
        if ctl.bmc is not None:
            index = 2 if site.kdump is not None else 1
            levels.append(Level(f"fl-{ctl.name}-{index}", ctl.name, index, (ipmi_id(ctl.name),)))
    for comp in site.computes:
        # every level that fences a compute ends with fence_compute, so Nova learns of every fence
        if site.kdump is not None:
            levels.append(Level(f"fl-{comp.name}-1", comp.name, 1, (FENCE_KDUMP, FENCE_NOVA)))
            levels.append(Level(f"fl-{comp.name}-2", comp.name, 2, (ipmi_id(comp.name), FENCE_NOVA)))
        else:
            levels.append(Level(f"fl-{comp.name}-1", comp.name, 1, (ipmi_id(comp.name), FENCE_NOVA)))

    # concurrent-fencing: unfencing a compute (fence_compute `on`) waits for its evacuation; fenced one at a
    # time (Pacemaker 2.1's default), that wait holds back the fence of a lost controller, and with it the
    # restart of NovaEvacuate that the evacuation needs: seen on the rig as a deadlock, transition after transition
    properties = (Nv("stonith-enabled", "true"), Nv("concurrent-fencing", "true"),
                  Nv("cluster-recheck-interval", site.recheck_interval))
    # requires=fencing: with a device that provides unfencing, the default would become `unfencing`
    # everywhere. resource-stickiness=1: without it the scheduler rebalances remote connections
    # after a compute fails (crm_simulate showed another compute's connection migrating).
    rsc_defaults = (Nv("requires", "fencing"), Nv("resource-stickiness", "1"))
    has_inline = any(nv.secret for r in resources for nv in (r.child if isinstance(r, Clone) else r).params)
    return Config(properties, rsc_defaults, tuple(nodes), tuple(resources), tuple(constraints), tuple(levels),
                  has_inline)


def primitives(config: Config) -> List[Primitive]:
    return [r.child if isinstance(r, Clone) else r for r in config.resources]
