"""NovaEvacuate parameters: the declarative table and the typed settings the engine uses.

The credential parameters come from the shared fragment
(`computeha.ocf_lib.nova_auth.AUTH_PARAMS`), which accepts the legacy
NovaEvacuate names (auth_url, username, password, tenant_name, user_domain,
project_domain, region_name, endpoint_type, insecure) so an existing CIB can
switch agent type unchanged; host naming comes from ocf_lib.hostnames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Mapping, Optional, Tuple

from computeha.ocf_lib.hostnames import HOSTNAME_PARAMS, parse_host_map
from computeha.ocf_lib.nova_auth import AUTH_PARAMS
from computeha.ocf_lib.params import Kind, Param, ParamTable, Values

EVACUATION_PARAMS = ParamTable([
    Param("no_shared_storage", Kind.BOOLEAN, "Instance disks are on local storage",
          "Set when instance disks are NOT on shared storage: an evacuated instance that does not boot from a "
          "volume is then rebuilt from its image and its local disk content is lost (see local_disk_policy). "
          "Legacy name kept.", default=False),
    Param("local_disk_policy", Kind.SELECT, "What to do with local-disk instances",
          "When no_shared_storage is set: 'rebuild' evacuates them anyway (rebuilt from image, as the legacy "
          "agent did), 'skip' leaves them on the failed host and reports them.",
          choices=("rebuild", "skip"), default="rebuild"),
    Param("evacuate_delay", Kind.SECONDS, "Delay before evacuating a host",
          "Seconds to wait after the fence before the first evacuate call of that host (e.g. for a storage "
          "array to release locks). Other hosts are not held up. Legacy name kept.", default=0, minimum=0),
    Param("selection", Kind.SELECT, "Which instances to evacuate",
          "'auto': only marked instances if anything in the cloud is marked, else all (the legacy rule); "
          "'marked': only marked instances; 'all': every instance in an evacuable state. Markers (key "
          "given by 'marker'): flavor extra spec, image tag, host aggregate metadata, server metadata "
          "(value true) or server tag. Server metadata '<marker>=false' always opts out.",
          choices=("auto", "marked", "all"), default="auto"),
    Param("marker", Kind.STRING, "Opt-in marker name", "Tag / metadata key / extra spec that marks an "
          "instance as protected.", default="evacuable"),
    Param("exclude_projects", Kind.STRING, "Projects never evacuated",
          "Comma separated project IDs whose instances are left alone.", default=""),
    Param("exclude_images", Kind.STRING, "Images never evacuated",
          "Comma separated image IDs, or 'tag:<tag>' for every image with that tag "
          "(e.g. tag:amphora for load-balancer amphorae).", default=""),
    Param("max_parallel", Kind.INTEGER, "Evacuations in flight, all hosts",
          "Global cap of evacuations issued and not yet confirmed. Confirmation (migration record "
          "finished, server back) trails the rebuild by a poll, so a few more in flight than the control "
          "plane's best plain concurrency keep it busy; 8 measured best on a small control plane, large "
          "clouds can go higher.", default=8, minimum=1, maximum=256),
    Param("api_concurrency", Kind.INTEGER, "Nova API calls in parallel",
          "How many evacuate calls (and confirmation reads) the agent has open at once. Confirmation "
          "is one migration listing per failed host per cycle, not one poll per instance.",
          default=8, minimum=1, maximum=64),
    Param("max_parallel_per_host", Kind.INTEGER, "Evacuations in flight per failed host",
          "0 means only the global cap applies.", default=0, minimum=0, maximum=256),
    Param("stagger", Kind.SECONDS, "Pause between two evacuate calls", default=0, minimum=0),
    Param("max_attempts", Kind.INTEGER, "Attempts per instance",
          "Failed evacuations are retried with exponential backoff up to this many attempts, then reported "
          "as failed.", default=3, minimum=1, maximum=20),
    Param("evacuation_timeout", Kind.SECONDS, "Time allowed for one evacuation",
          "From the accepted evacuate call until the server runs elsewhere; then the attempt counts as "
          "failed. An evacuation Nova still shows under way is never issued again, only waited for again; "
          "each such wait counts as an attempt too.", default=300, minimum=10),
    Param("mass_failure_share", Kind.INTEGER, "Mass-failure guard, percent of compute hosts down at once",
          "A host is down from its fence until it is back in service (nova-compute up and enabled, its "
          "evacuation record cleared), however long ago it failed; a host that came back no longer counts. "
          "When more than this share of the compute hosts (and at least two) is down at once (a partition more "
          "often than real failures), no further host is evacuated until an operator acts. 0 disables it.",
          default=50, minimum=0, maximum=100),
    Param("mass_failure_max_hosts", Kind.INTEGER, "Mass-failure guard, compute hosts down at once",
          "Absolute cap beside mass_failure_share, for large clouds: with more hosts down at once than this, "
          "no further host is evacuated until an operator acts. Host aggregates can set their own budget with "
          "the metadata computeha:max_failures=N. 0 means no cap.", default=0, minimum=0, maximum=100000),
    Param("stale_cloud_share", Kind.INTEGER, "Stale-cloud breaker, percent of computes reported down",
          "When Nova reports more than this share of the compute services that are not fenced as down (a "
          "control-plane or message-bus outage: Nova cannot see its computes), evacuation waits until Nova "
          "sees them again: an evacuation then would find no target. 0 disables the breaker.",
          default=50, minimum=0, maximum=100),
    Param("paused", Kind.BOOLEAN, "Maintenance switch: evacuation paused",
          "While true, fencing goes on and every evacuation request stays recorded in the cluster, but nothing "
          "is evacuated (the hosts show 'paused' in computeha status). Set back to false (or deleted), the "
          "recorded requests are processed in the order they were made. `computeha pause` and `computeha "
          "resume` set it.", default=False),
    Param("mass_failure_window", Kind.SECONDS, "Deprecated: ignored",
          "Older releases counted every host flagged within this window, recovered ones included. The guard "
          "now counts the hosts down at once (see mass_failure_share); the value is still accepted so that "
          "existing configurations keep working.", default=300, minimum=1),
    Param("target_aggregate", Kind.STRING, "Reserved target hosts",
          "Name of a host aggregate whose hosts receive the evacuated instances; empty lets the scheduler "
          "choose.", default=""),
    Param("poll_interval", Kind.SECONDS, "How often the worker reads the evacuation requests",
          default=1, minimum=0.2, maximum=10),
])


# the table is the one source of every default: Settings reads them from it
_DEFAULT = {p.name: p.default for p in EVACUATION_PARAMS}


@dataclass(frozen=True)
class Settings:
    """The engine's view of the parameters (no credentials)."""

    no_shared_storage: bool = bool(_DEFAULT["no_shared_storage"])
    local_disk_policy: str = str(_DEFAULT["local_disk_policy"])
    evacuate_delay: float = float(_DEFAULT["evacuate_delay"])
    selection: str = str(_DEFAULT["selection"])
    marker: str = str(_DEFAULT["marker"])
    exclude_projects: FrozenSet[str] = frozenset()
    exclude_image_ids: FrozenSet[str] = frozenset()
    exclude_image_tags: Tuple[str, ...] = ()
    max_parallel: int = int(_DEFAULT["max_parallel"])
    max_parallel_per_host: int = int(_DEFAULT["max_parallel_per_host"])
    api_concurrency: int = int(_DEFAULT["api_concurrency"])
    stagger: float = float(_DEFAULT["stagger"])
    max_attempts: int = int(_DEFAULT["max_attempts"])
    evacuation_timeout: float = float(_DEFAULT["evacuation_timeout"])
    mass_failure_share: int = int(_DEFAULT["mass_failure_share"])
    mass_failure_max_hosts: int = int(_DEFAULT["mass_failure_max_hosts"])
    stale_cloud_share: int = int(_DEFAULT["stale_cloud_share"])
    paused: bool = bool(_DEFAULT["paused"])
    target_aggregate: str = str(_DEFAULT["target_aggregate"])
    poll_interval: float = float(_DEFAULT["poll_interval"])
    domain: str = ""  # Pacemaker node -> Nova host name rules (ocf_lib.hostnames)
    host_map: Optional[Mapping[str, str]] = None
    # in-doubt evacuate calls (no answer) are re-checked in Nova after this long before any re-issue
    in_doubt_grace: float = 20.0
    gate_recheck: float = 5.0  # seconds between two judgements of a host left alone (evidence, guard)
    confirm_interval: float = 0.3  # seconds between two migration listings of a failed host
    retry_backoff: float = 2.0  # first retry delay; doubles per attempt, at most 60 s

    @classmethod
    def from_values(cls, values: Values) -> "Settings":
        items = [x.strip() for x in str(values.exclude_images or "").split(",") if x.strip()]
        return cls(
            no_shared_storage=bool(values.no_shared_storage),
            local_disk_policy=values.local_disk_policy,
            evacuate_delay=float(values.evacuate_delay),
            selection=values.selection,
            marker=(values.marker or "evacuable").strip(),
            exclude_projects=frozenset(x.strip() for x in str(values.exclude_projects or "").split(",")
                                       if x.strip()),
            exclude_image_ids=frozenset(x for x in items if not x.startswith("tag:")),
            exclude_image_tags=tuple(x[4:] for x in items if x.startswith("tag:") and x[4:]),
            max_parallel=int(values.max_parallel),
            max_parallel_per_host=int(values.max_parallel_per_host),
            api_concurrency=int(values.api_concurrency),
            stagger=float(values.stagger),
            max_attempts=int(values.max_attempts),
            evacuation_timeout=float(values.evacuation_timeout),
            mass_failure_share=int(values.mass_failure_share),
            mass_failure_max_hosts=int(values.mass_failure_max_hosts),
            stale_cloud_share=int(values.stale_cloud_share),
            paused=bool(values.paused),
            target_aggregate=(values.target_aggregate or "").strip(),
            poll_interval=float(values.poll_interval),
            domain=str(values.get("domain") or ""),
            host_map=parse_host_map(str(values.get("host_map") or "")) if values.get("host_map") else None,
        )


TABLE = AUTH_PARAMS + HOSTNAME_PARAMS + EVACUATION_PARAMS
