"""The Nova adapter's interface: plain frozen dataclasses, typed errors, one Protocol.

The real implementation (keystoneauth1 session, microversions stated next to
each call) and an in-memory fake both satisfy `Nova`; agents depend only on
this module, which imports nothing heavy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Protocol, Sequence, Tuple

from .timefmt import parse_utc

# --- errors: client exceptions are translated into these at the boundary --------------


class NovaError(Exception):
    """Base: one line, no secrets. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(" ".join(str(message).split()))
        self.status = status


class NovaUnavailable(NovaError):
    """Connection refused/reset, timeout, or 5xx: worth retrying later."""


class NovaAuthError(NovaError):
    """401: the credentials are wrong (not worth retrying)."""


class NovaForbidden(NovaError):
    """403: the credentials lack the admin role."""


class NovaNotFound(NovaError):
    """404."""


class NovaConflict(NovaError):
    """409: the server is in a state that forbids the request."""


class NovaBadRequest(NovaError):
    """400: e.g. evacuate while the source service is still up, force-up with `done` migrations."""


# --- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    id: str  # UUID with 2.53+, integer text before
    host: str
    binary: str
    state: str  # "up" | "down"
    status: str  # "enabled" | "disabled"
    forced_down: bool
    disabled_reason: str = ""
    updated_at: str = ""

    @property
    def takes_instances(self) -> bool:
        """A nova-compute the scheduler may place an (evacuated) instance on: up, enabled, not forced down."""
        return self.binary == "nova-compute" and self.state == "up" and self.status == "enabled" \
            and not self.forced_down


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    status: str  # ACTIVE, SHUTOFF, ERROR, REBUILD, ...
    task_state: Optional[str]
    vm_state: str
    power_state: int
    host: str
    project_id: str
    image_id: str  # "" for boot-from-volume
    flavor_extra_specs: Dict[str, str] = field(default_factory=dict)
    flavor_name: str = ""
    metadata: Dict[str, str] = field(default_factory=dict)
    tags: Tuple[str, ...] = ()
    volumes_attached: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Migration:
    id: str
    instance_uuid: str
    source_compute: str
    dest_compute: str
    status: str  # accepted, pre-migrating, done, completed, failed, error
    migration_type: str
    created_at: str
    updated_at: str = ""


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    tags: Tuple[str, ...] = ()
    properties: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Aggregate:
    id: str
    name: str
    hosts: Tuple[str, ...]
    metadata: Dict[str, str] = field(default_factory=dict)


IN_PROGRESS_MIGRATION = frozenset({"accepted", "pre-migrating", "running", "migrating", "queued", "preparing"})
FINISHED_MIGRATION = frozenset({"done", "completed"})
FAILED_MIGRATION = frozenset({"failed", "error", "cancelled"})


class Nova(Protocol):
    """What the agents need from Nova. Implementations detect the max microversion once."""

    def max_microversion(self) -> str: ...

    def check(self) -> None:
        """Raise unless Keystone and Nova answer with these credentials (monitor)."""

    def compute_services(self, host: Optional[str] = None) -> List[Service]: ...

    def force_down(self, service: Service, down: bool) -> Service: ...

    def set_enabled(self, service: Service, enabled: bool, reason: str = "") -> Service: ...

    def force_down_and_disable(self, service: Service, reason: str) -> Service:
        """forced_down=true and disabled with reason: one PUT at 2.53+ (both saved together,
        so Nova does not try to reach the dead compute); force-down then disable before."""

    def servers_on_host(self, host: str) -> List[Server]:
        """Every server whose OS-EXT-SRV-ATTR:host is `host`, all projects, flavor extra specs embedded."""

    def server(self, server_id: str) -> Server: ...

    def evacuate(self, server_id: str, target_host: Optional[str] = None) -> None:
        """POST evacuate (2.68-2.94: keeps the server's power state); returns when accepted."""

    def migrations(self, source_host: Optional[str] = None, instance_uuid: Optional[str] = None,
                   migration_type: str = "evacuation", changes_since: Optional[str] = None,
                   created_after: Optional[float] = None) -> List[Migration]:
        """Migration records. `created_after` (epoch) lets an implementation leave out records created
        before it (Nova 2.59+ lists newest first, so paging can stop there); callers still filter."""

    def images_with_tag(self, tag: str) -> List[Image]: ...

    def flavors_with_extra_spec(self, key: str) -> Dict[str, str]:
        """Every flavor of the cloud (public and private) whose extra specs have `key`: name -> value."""

    def aggregates(self) -> List[Aggregate]: ...


def nova_time(text: Optional[str]) -> float:
    """Epoch seconds of a Nova timestamp, fraction kept; no zone = UTC, an offset is applied;
    0.0 if empty or unreadable."""
    epoch = parse_utc(text)
    return 0.0 if epoch is None else epoch


def in_progress(migrations: Sequence[Migration]) -> List[Migration]:
    return [m for m in migrations if m.status in IN_PROGRESS_MIGRATION]


def hosts_of(services: Sequence[Service]) -> FrozenSet[str]:
    return frozenset(s.host for s in services)
