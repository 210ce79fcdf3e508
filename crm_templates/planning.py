"""`computeha plan HOST`: what NovaEvacuate would do if HOST failed now (read-only).

Uses NovaEvacuate's own selection (`agents.evacuation_select.decide`) with the
parameters the site model renders, so the dry run and the agent cannot
disagree. Capacity is summed from Placement (inventory x allocation ratio -
reserved - used) over the other enabled, up compute hosts, against the
allocations of the instances that would move. It is a sum, not a bin-packing:
"fits" means the cloud has the room in total, and the scheduler still decides.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .model import Site


class PlanUnavailable(Exception):
    """Nova, Placement or the agent code cannot be used; one line."""


@dataclass(frozen=True)
class Item:
    server_id: str
    name: str
    project_id: str
    status: str
    action: str  # evacuate | skip | report
    reason: str
    priority: int
    disk: str


@dataclass
class Plan:
    host: str
    nova_host: str
    service: str  # "up, enabled" ...
    items: List[Item] = field(default_factory=list)
    needed: Dict[str, int] = field(default_factory=dict)
    free: Dict[str, int] = field(default_factory=dict)
    capacity_note: str = ""

    @property
    def fits(self) -> Optional[bool]:
        if not self.free:
            return None
        return all(self.free.get(rc, 0) >= amount for rc, amount in self.needed.items())

    def as_dict(self) -> dict:
        out = asdict(self)
        out["fits"] = self.fits
        return out

    def lines(self) -> List[str]:
        moving = [i for i in self.items if i.action == "evacuate"]
        out = [f"host {self.host} (Nova host {self.nova_host}, service {self.service}): "
               f"{len(self.items)} instances, {len(moving)} would be evacuated"]
        for item in sorted(self.items, key=lambda i: (i.action != "evacuate", -i.priority, i.name)):
            out.append(f"  {item.action:<8} {item.name or item.server_id:<24} {item.status:<8} "
                       f"prio {item.priority:<3} disk {item.disk:<6} {item.reason}")
        if self.fits is None:
            out.append(f"capacity: not checked ({self.capacity_note or 'no Placement data'})")
        else:
            parts = ", ".join(f"{rc} {self.needed.get(rc, 0)}/{self.free.get(rc, 0)}" for rc in sorted(self.needed))
            out.append(f"capacity: {'fits' if self.fits else 'DOES NOT FIT'} (needed/free: {parts or 'nothing'})"
                       + (f"; {self.capacity_note}" if self.capacity_note else ""))
        return out


def _agent_values(site: Optional[Site]):
    """NovaEvacuate's parsed parameters as the site renders them (defaults without a site)."""
    try:
        from computeha.agents.nova_evacuate import TABLE
    except ImportError as err:
        raise PlanUnavailable(f"NovaEvacuate is not installed with this computeha ({err})") from None
    raw: Dict[str, str] = {}
    if site is not None:
        from .objects import NOVA_EVACUATE, build, primitives

        for p in primitives(build(site)):
            if p.id == NOVA_EVACUATE:
                raw = {nv.name: nv.value for nv in p.params}
    values, problems = TABLE.parse(raw)
    if problems:
        raise PlanUnavailable("; ".join(str(p) for p in problems))
    return values


def markers(nova: Any, settings: Any, servers: List[Any]):
    """The cloud-wide facts the selection needs, gathered and judged as NovaEvacuate does."""
    from computeha.agents import evacuation_select as sel
    from computeha.agents.evacuation_plan import flavor_marker_values

    excluded = set(settings.exclude_image_ids)
    for tag in settings.exclude_image_tags:
        excluded.update(img.id for img in nova.images_with_tag(tag))
    if settings.selection == "all":
        return sel.cloud_markers("all", settings.marker, servers, excluded)
    return sel.cloud_markers(settings.selection, settings.marker, servers, excluded,
                             nova.images_with_tag(settings.marker), nova.aggregates(),
                             lambda: flavor_marker_values(nova, settings.marker))


Placement = Callable[[str], Any]  # GET path -> decoded JSON


def capacity(placement: Placement, services: List[Any], failed_host: str,
             server_ids: List[str]) -> Tuple[Dict[str, int], Dict[str, int]]:
    """(needed, free) per resource class."""
    needed: Dict[str, int] = {}
    for server_id in server_ids:
        allocations = placement(f"/allocations/{server_id}").get("allocations", {})
        for alloc in allocations.values():
            for rc, amount in alloc.get("resources", {}).items():
                needed[rc] = needed.get(rc, 0) + int(amount)
    usable = {s.host for s in services if s.host != failed_host and s.state == "up" and s.status == "enabled"}
    free: Dict[str, int] = {}
    for rp in placement("/resource_providers").get("resource_providers", []):
        if rp.get("name") not in usable and rp.get("name", "").split(".")[0] not in usable:
            continue
        inventories = placement(f"/resource_providers/{rp['uuid']}/inventories").get("inventories", {})
        usages = placement(f"/resource_providers/{rp['uuid']}/usages").get("usages", {})
        for rc, inv in inventories.items():
            room = int((inv.get("total", 0) - inv.get("reserved", 0)) * float(inv.get("allocation_ratio", 1.0)))
            free[rc] = free.get(rc, 0) + max(0, room - int(usages.get(rc, 0)))
    return needed, free


def plan(host: str, site: Optional[Site], nova: Any = None, placement: Optional[Placement] = None) -> Plan:
    from computeha.agents import evacuation_select as sel
    from computeha.agents.evacuation_params import Settings
    from computeha.ocf_lib.nova import NovaError

    values = _agent_values(site)
    settings = Settings.from_values(values)
    nova_host = host
    if site is not None:
        nova_host = next((c.nova_host for c in site.computes if host in (c.name, c.nova_host)), host)
    note = ""
    try:
        if nova is None:
            nova, placement = _connect(values)
        services = nova.compute_services()
        service = next((s for s in services if s.host == nova_host), None)
        if service is None:
            short = {s.host.split(".")[0]: s for s in services}
            service = short.get(nova_host.split(".")[0])
        if service is None:
            raise PlanUnavailable(f"Nova has no compute service on host {nova_host}")
        nova_host = service.host
        servers = nova.servers_on_host(nova_host)
        found = markers(nova, settings, servers)
        items = []
        for server in servers:
            d = sel.decide(server, settings, found)
            items.append(Item(server.id, server.name, server.project_id, server.status, d.action, d.reason,
                              d.priority, d.disk))
        result = Plan(host, nova_host, f"{service.state}, {service.status}", items)
        if placement is not None:
            try:
                result.needed, result.free = capacity(placement, services, nova_host,
                                                      [i.server_id for i in items if i.action == sel.EVACUATE])
                note = "sum over the other up and enabled hosts; the scheduler places each instance"
            except (NovaError, KeyError, ValueError, OSError) as err:
                note = f"Placement not readable: {' '.join(str(err).split())[:200]}"
        result.capacity_note = note
        return result
    except NovaError as err:
        raise PlanUnavailable(f"Nova: {err}") from None


def _connect(values: Any):
    """The agents' own Nova adapter and a Placement reader on its session."""
    from computeha.ocf_lib.nova_auth import AuthConfig, AuthConfigError
    from computeha.ocf_lib.nova_client import NovaClient, translate

    try:
        config = AuthConfig.from_values(values)
    except AuthConfigError as err:
        raise PlanUnavailable(f"credentials: {err}") from None
    if not config.auth_url:
        raise PlanUnavailable("no credentials: pass --site SITE.yaml (or set up the cloud in clouds.yaml)")
    client = NovaClient.from_config(config)

    def placement(path: str) -> Any:
        try:
            response = client.session.get(path, endpoint_filter={"service_type": "placement",
                                                                 "interface": client.interface,
                                                                 "region_name": client.region_name},
                                          headers={"OpenStack-API-Version": "placement 1.9"},
                                          timeout=(client.connect_timeout, client.api_timeout))
        except Exception as err:  # keystoneauth exceptions, translated like every Nova call
            raise translate(err, f"GET placement {path}") from None
        return response.json()

    return client, placement


def nova_for(site: Optional[Site]):
    """A Nova adapter from the site's credentials (for `status --instances`)."""
    client, _placement = _connect(_agent_values(site))
    return client


def instance_progress(nova: Any, host_records: List[Any], site: Optional[Site]) -> Dict[str, List[dict]]:
    """Per failed host: each evacuation migration Nova recorded since the fence (newest state)."""
    from computeha.crm_templates.clusterview import iso
    from computeha.ocf_lib.nova import NovaError

    out: Dict[str, List[dict]] = {}
    names = {c.name: c.nova_host for c in site.computes} if site is not None else {}
    for record in host_records:
        nova_host = names.get(record.node, record.node)
        since = iso(record.since) if record.since else None
        try:
            migrations = nova.migrations(source_host=nova_host, migration_type="evacuation",
                                         changes_since=since if since != "-" else None)
        except NovaError as err:
            raise PlanUnavailable(f"Nova: {err}") from None
        latest: Dict[str, Any] = {}
        for mig in sorted(migrations, key=lambda m: (m.created_at, m.id)):
            latest[mig.instance_uuid] = mig  # a retried evacuation supersedes the earlier attempt
        out[record.node] = [{"instance": m.instance_uuid, "status": m.status, "dest": m.dest_compute}
                            for m in latest.values()]
    return out
