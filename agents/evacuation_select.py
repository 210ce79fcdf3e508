"""Which instances of a failed host to evacuate: pure functions, no I/O.

The cloud-wide facts (tagged images, marked aggregates, whether anything is
marked at all) are gathered once per host claim by the engine with a fixed
number of API calls (no call per server or per flavor: microversion 2.47+
embeds the flavor's extra specs in each server).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, FrozenSet, Iterable, Optional, Sequence, Set, TypedDict

from computeha.ocf_lib.nova import Aggregate, Image, Server

from .evacuation_params import Settings

# Nova accepts evacuate only for these vm states (compute/api.py check_instance_state).
EVACUABLE_STATUS = frozenset({"ACTIVE", "SHUTOFF", "ERROR"})
PRIORITY_KEY = "evacuation_priority"

EVACUATE, SKIP, REPORT = "evacuate", "skip", "report"


def truthy(value: object) -> bool:
    return str(value).strip().lower() in ("true", "yes", "1", "on")


def falsy(value: object) -> bool:
    return str(value).strip().lower() in ("false", "no", "0", "off")


@dataclass(frozen=True)
class CloudMarkers:
    marked_image_ids: FrozenSet[str] = frozenset()
    excluded_image_ids: FrozenSet[str] = frozenset()  # ids from exclude_images, tags resolved
    marked_aggregate_hosts: FrozenSet[str] = frozenset()
    anything_marked: bool = False  # the legacy rule: if nothing is marked, evacuate everything


@dataclass(frozen=True)
class Decision:
    server_id: str
    action: str  # evacuate | skip | report
    reason: str
    priority: int = 0
    disk: str = "shared"  # shared | volume | local
    expect_status: str = "ACTIVE"  # what "back" means: ACTIVE stays ACTIVE, SHUTOFF stays SHUTOFF


class _DecisionCommon(TypedDict):
    """The Decision fields that do not depend on the verdict."""

    server_id: str
    priority: int
    disk: str
    expect_status: str


def marked_aggregate_hosts(aggregates: Iterable[Aggregate], marker: str) -> FrozenSet[str]:
    hosts: Set[str] = set()
    for agg in aggregates:
        if truthy(agg.metadata.get(marker, "")):
            hosts.update(agg.hosts)
    return frozenset(hosts)


def cloud_markers(selection: str, marker: str, servers: Sequence[Server], excluded_image_ids: Iterable[str],
                  marked_images: Iterable[Image] = (), aggregates: Iterable[Aggregate] = (),
                  flavor_marker_values: Callable[[], Iterable[object]] = tuple) -> CloudMarkers:
    """The cloud-wide markers from the gathered facts. `flavor_marker_values` (the marker's value on every
    flavor of the cloud) is called only when nothing else is marked: it is the one costly fact."""
    excluded = frozenset(excluded_image_ids)
    if selection == "all":
        return CloudMarkers(excluded_image_ids=excluded)
    images = frozenset(img.id for img in marked_images)
    agg_hosts = marked_aggregate_hosts(aggregates, marker)
    anything = bool(images) or bool(agg_hosts) or any_server_marked(servers, marker) \
        or any(truthy(v) for v in flavor_marker_values())
    return CloudMarkers(marked_image_ids=images, excluded_image_ids=excluded, marked_aggregate_hosts=agg_hosts,
                        anything_marked=anything)


def server_marked(server: Server, markers: CloudMarkers, marker: str) -> Optional[str]:
    """The first marker that opts this server in, or None."""
    if truthy(server.flavor_extra_specs.get(marker, "")):
        return f"flavor {server.flavor_name or '?'} extra spec {marker}"
    if server.image_id and server.image_id in markers.marked_image_ids:
        return f"image tag {marker}"
    if server.host in markers.marked_aggregate_hosts:
        return f"aggregate metadata {marker}"
    if truthy(server.metadata.get(marker, "")):
        return f"server metadata {marker}"
    if marker in server.tags:
        return f"server tag {marker}"
    return None


def any_server_marked(servers: Sequence[Server], marker: str) -> bool:
    return any(truthy(s.flavor_extra_specs.get(marker, "")) or truthy(s.metadata.get(marker, ""))
               or marker in s.tags for s in servers)


def priority_of(server: Server) -> int:
    raw = server.metadata.get(PRIORITY_KEY) or server.flavor_extra_specs.get(PRIORITY_KEY) or "0"
    try:
        return int(str(raw).strip())
    except ValueError:
        return 0


def decide(server: Server, settings: Settings, markers: CloudMarkers) -> Decision:
    """One server's fate; `reason` is what the log says."""
    disk = "volume" if not server.image_id else ("local" if settings.no_shared_storage else "shared")
    expect = "SHUTOFF" if server.status == "SHUTOFF" else "ACTIVE"
    base = _DecisionCommon(server_id=server.id, priority=priority_of(server), disk=disk, expect_status=expect)
    if server.status not in EVACUABLE_STATUS:
        return Decision(action=REPORT, reason=f"status {server.status} must not be touched", **base)
    if server.project_id in settings.exclude_projects:
        return Decision(action=SKIP, reason=f"project {server.project_id} is excluded", **base)
    if server.image_id and server.image_id in markers.excluded_image_ids:
        return Decision(action=SKIP, reason=f"image {server.image_id} is excluded", **base)
    if falsy(server.metadata.get(settings.marker, "")):
        return Decision(action=SKIP, reason=f"server metadata {settings.marker}=false opts out", **base)
    why = server_marked(server, markers, settings.marker)
    if settings.selection == "marked" or (settings.selection == "auto" and markers.anything_marked):
        if why is None:
            return Decision(action=SKIP, reason="not marked (the cloud marks instances)", **base)
    else:
        why = why or ("selection=all" if settings.selection == "all" else "nothing in the cloud is marked")
    if disk == "local" and settings.local_disk_policy == "skip":
        return Decision(action=SKIP, reason="local disk would be lost (local_disk_policy=skip)", **base)
    return Decision(action=EVACUATE, reason=why, **base)
