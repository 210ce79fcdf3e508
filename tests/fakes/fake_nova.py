"""An in-memory Nova that behaves like the real one where the agents care.

Modelled on what nova 34 does (checked by tests/integration/test_nova_parity.py,
which runs the same scenarios against this fake and the real rig):

- one nova-compute service per host; `state` is "down" when forced down, or
  when the process is gone AND Nova noticed (`kill_compute(..., noticed=True)`
  or `notice_down()`), else "up";
- evacuate is refused with 400 while the source service is up, 400 for the
  same host as target, 404 for an unknown target or server, 409 for a
  vm_state other than active/stopped/error;
- an evacuation creates a migration record that moves accepted ->
  pre-migrating -> done (one step per `advance()`, or one step every
  `auto_progress` API calls); at `done` the server is ACTIVE (or SHUTOFF, as it was)
  on the destination;
- `done` records become `completed` when the source nova-compute starts;
  until then forced_down=false is refused with 400 (`refuse_force_up`, as since
  nova 2023.1; set False to model older clouds that accept it);
- microversion: `max_mv` below 2.53 gives integer service ids.

Fault injection: `inject(method, error, times)` makes the next `times` calls of
`method` ("*" for any) raise `error`; `inject_5xx`/`inject_timeout` are the
usual cases. `calls` records every call as (method, args); `writes()` lists
the mutating ones.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from computeha.ocf_lib.nova import (
    Aggregate,
    Image,
    Migration,
    NovaAuthError,
    NovaBadRequest,
    NovaConflict,
    NovaError,
    NovaNotFound,
    NovaUnavailable,
    Server,
    Service,
    nova_time,
)

WRITE_METHODS = frozenset({"force_down", "set_enabled", "force_down_and_disable", "evacuate"})
_STEPS = ("accepted", "pre-migrating", "done")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000", time.gmtime())


@dataclasses.dataclass
class _Svc:
    id: str
    host: str
    alive: bool = True
    noticed_down: bool = False
    status: str = "enabled"
    forced_down: bool = False
    disabled_reason: str = ""
    updated_at: str = ""

    def view(self) -> Service:
        down = self.forced_down or (not self.alive and self.noticed_down)
        return Service(id=self.id, host=self.host, binary="nova-compute", state="down" if down else "up",
                       status=self.status, forced_down=self.forced_down,
                       disabled_reason=self.disabled_reason if self.status == "disabled" else "",
                       updated_at=self.updated_at)


@dataclasses.dataclass
class _Mig:
    id: str
    instance_uuid: str
    source: str
    dest: str
    status: str
    created_at: str
    updated_at: str
    final_status: str = "ACTIVE"


class FakeNova:
    def __init__(self, hosts: Tuple[str, ...] = ("compute-0", "compute-1", "compute-2"), max_mv: str = "2.100",
                 refuse_force_up: bool = True, auto_progress: int = 0) -> None:
        self.max_mv = max_mv
        self.refuse_force_up = refuse_force_up
        self.auto_progress = auto_progress
        self.auth_ok = True
        self.forbidden = False
        self.reachable = True
        self.calls: List[Tuple[str, tuple]] = []
        self._faults: List[List[Any]] = []  # [method, error, remaining]
        self._ids = itertools.count(1)
        self.services: Dict[str, _Svc] = {}
        self.servers: Dict[str, Dict[str, Any]] = {}
        self.migration_records: List[_Mig] = []
        self.images: List[Image] = []
        self.aggregate_list: List[Aggregate] = []
        self.flavor_specs: Dict[str, Dict[str, str]] = {}  # flavor name -> extra specs (cloud-wide listing)
        self.delay: Callable[[str], None] = lambda method: None
        for host in hosts:
            self.add_compute(host)

    # --- world control (what the rig does with processes) --------------------------
    def _by_id(self) -> bool:
        major, minor = (int(x) for x in self.max_mv.split("."))
        return (major, minor) >= (2, 53)

    def add_compute(self, host: str) -> None:
        sid = str(uuid.uuid4()) if self._by_id() else str(next(self._ids))
        self.services[host] = _Svc(id=sid, host=host, updated_at=_now())

    def kill_compute(self, host: str, noticed: bool = False) -> None:
        """nova-compute dies; Nova notices only after service_down_time (`notice_down`)."""
        svc = self.services[host]
        svc.alive = False
        svc.noticed_down = noticed

    def notice_down(self, host: str) -> None:
        self.services[host].noticed_down = True

    def start_compute(self, host: str) -> None:
        """nova-compute starts: init_host completes the `done` evacuations from this host."""
        svc = self.services[host]
        svc.alive = True
        svc.noticed_down = False
        svc.updated_at = _now()
        for mig in self.migration_records:
            if mig.source == host and mig.status == "done":
                mig.status = "completed"
                mig.updated_at = _now()

    def add_server(self, host: str, name: str = "", status: str = "ACTIVE", flavor_extra_specs=None,
                   image_id: str = "image-1", metadata=None, tags=(), project_id: str = "project-1",
                   server_id: str = "") -> str:
        if host not in self.services:
            raise KeyError(host)
        sid = server_id or str(uuid.uuid4())
        vm_state = {"ACTIVE": "active", "SHUTOFF": "stopped", "ERROR": "error"}.get(status, status.lower())
        self.servers[sid] = dict(id=sid, name=name or f"server-{len(self.servers)}", status=status,
                                 task_state=None, vm_state=vm_state, power_state=1 if status == "ACTIVE" else 4,
                                 host=host, project_id=project_id, image_id=image_id,
                                 flavor_extra_specs=dict(flavor_extra_specs or {}), flavor_name="m1.tiny",
                                 metadata=dict(metadata or {}), tags=tuple(tags))
        return sid

    def advance(self, steps: int = 1) -> None:
        """Move every in-flight evacuation one state on (accepted -> pre-migrating -> done)."""
        for _ in range(steps):
            for mig in self.migration_records:
                if mig.status in ("accepted", "pre-migrating"):
                    mig.status = _STEPS[_STEPS.index(mig.status) + 1]
                    mig.updated_at = _now()
                    if mig.status == "done":
                        srv = self.servers[mig.instance_uuid]
                        srv.update(host=mig.dest, status=mig.final_status, task_state=None,
                                   vm_state="active" if mig.final_status == "ACTIVE" else "stopped")

    def finish_evacuations(self) -> None:
        self.advance(len(_STEPS))

    def fail_evacuation(self, instance_uuid: str) -> None:
        for mig in self.migration_records:
            if mig.instance_uuid == instance_uuid and mig.status in ("accepted", "pre-migrating"):
                mig.status = "failed"
                self.servers[instance_uuid].update(status="ERROR", task_state=None, vm_state="error")

    # --- fault injection -------------------------------------------------------------
    def inject(self, method: str, error: Exception, times: int = 1) -> None:
        self._faults.append([method, error, times])

    def inject_5xx(self, method: str = "*", times: int = 1, status: int = 503) -> None:
        self.inject(method, NovaUnavailable(f"{method}: HTTP {status}: injected server error", status), times)

    def inject_timeout(self, method: str = "*", times: int = 1) -> None:
        self.inject(method, NovaUnavailable(f"{method}: timed out (injected)"), times)

    def writes(self) -> List[Tuple[str, tuple]]:
        return [c for c in self.calls if c[0] in WRITE_METHODS]

    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        self.delay(method)
        if not self.reachable:
            raise NovaUnavailable(f"{method}: cannot connect: connection refused")
        if not self.auth_ok:
            raise NovaAuthError(f"{method}: authentication refused (HTTP 401): check the credentials", 401)
        for fault in self._faults:
            if fault[2] > 0 and fault[0] in (method, "*"):
                fault[2] -= 1
                raise fault[1]
        if self.forbidden and method != "max_microversion":
            from computeha.ocf_lib.nova import NovaForbidden
            raise NovaForbidden(f"{method}: forbidden (HTTP 403): the user needs the admin role", 403)
        if self.auto_progress and len(self.calls) % self.auto_progress == 0:
            self.advance()

    def _svc(self, service: Service) -> _Svc:
        for svc in self.services.values():
            if svc.id == service.id or (not self._by_id() and svc.host == service.host):
                return svc
        raise NovaNotFound(f"service {service.id} not found", 404)

    # --- the Nova protocol ------------------------------------------------------------
    def max_microversion(self) -> str:
        self._enter("max_microversion")
        return self.max_mv

    def check(self) -> None:
        self._enter("check")

    def compute_services(self, host: Optional[str] = None) -> List[Service]:
        self._enter("compute_services", host)
        return [s.view() for h, s in sorted(self.services.items()) if host is None or h == host]

    def force_down(self, service: Service, down: bool) -> Service:
        self._enter("force_down", service.host, down)
        svc = self._svc(service)
        if not down and self.refuse_force_up:
            if any(m.source == svc.host and m.status == "done" for m in self.migration_records):
                raise NovaBadRequest(f"Unable to force up host {svc.host} as `done` evacuation migration records "
                                     "remain associated with the host. Ensure the compute service has been "
                                     "restarted, allowing these records to move to `completed` before retrying "
                                     "this request.", 400)
        svc.forced_down = bool(down)
        svc.updated_at = _now()
        return svc.view()

    def force_down_and_disable(self, service: Service, reason: str) -> Service:
        """One PUT at 2.53+ (both fields saved together); force-down then disable before."""
        if not self._by_id():
            return self.set_enabled(self.force_down(service, True), False, reason)
        self._enter("force_down_and_disable", service.host, reason)
        svc = self._svc(service)
        svc.forced_down = True
        svc.status = "disabled"
        svc.disabled_reason = reason[:255]
        svc.updated_at = _now()
        return svc.view()

    def set_enabled(self, service: Service, enabled: bool, reason: str = "") -> Service:
        self._enter("set_enabled", service.host, enabled, reason)
        svc = self._svc(service)
        svc.status = "enabled" if enabled else "disabled"
        svc.disabled_reason = "" if enabled else reason[:255]
        svc.updated_at = _now()
        return svc.view()

    def _server_view(self, rec: Dict[str, Any]) -> Server:
        return Server(**{k: rec[k] for k in ("id", "name", "status", "task_state", "vm_state", "power_state", "host",
                                             "project_id", "image_id", "flavor_extra_specs", "flavor_name",
                                             "metadata", "tags")})

    def servers_on_host(self, host: str) -> List[Server]:
        self._enter("servers_on_host", host)
        return [self._server_view(r) for r in self.servers.values() if r["host"] == host]

    def server(self, server_id: str) -> Server:
        self._enter("server", server_id)
        if server_id not in self.servers:
            raise NovaNotFound(f"reading server {server_id}: HTTP 404: Instance {server_id} could not be found.", 404)
        return self._server_view(self.servers[server_id])

    def evacuate(self, server_id: str, target_host: Optional[str] = None) -> None:
        self._enter("evacuate", server_id, target_host)
        rec = self.servers.get(server_id)
        if rec is None:
            raise NovaNotFound(f"evacuating server {server_id}: HTTP 404: Instance could not be found.", 404)
        if rec["vm_state"] not in ("active", "stopped", "error"):
            raise NovaConflict(f"evacuating server {server_id}: HTTP 409: Cannot 'evacuate' instance while it is "
                               f"in vm_state {rec['vm_state']}", 409)
        source = rec["host"]
        if self.services[source].view().state == "up":
            raise NovaBadRequest(f"evacuating server {server_id}: HTTP 400: Compute service of {source} is still "
                                 "in use.", 400)
        if target_host == source:
            raise NovaBadRequest(f"evacuating server {server_id}: HTTP 400: The target host can't be the same one.",
                                 400)
        if target_host and target_host not in self.services:
            raise NovaNotFound(f"evacuating server {server_id}: HTTP 404: Compute host {target_host} not found.", 404)
        dest = target_host or self._schedule(source)
        mid = str(next(self._ids))
        final = "SHUTOFF" if rec["vm_state"] == "stopped" else "ACTIVE"
        if dest is None:  # NoValidHost: the API accepted, the conductor fails it
            self.migration_records.append(_Mig(mid, server_id, source, "", "error", _now(), _now()))
            rec.update(status="ERROR", vm_state="error", task_state=None)
            return
        self.migration_records.append(_Mig(mid, server_id, source, dest, "accepted", _now(), _now(), final))
        rec.update(status="REBUILD", task_state="rebuilding")

    def _schedule(self, source: str) -> Optional[str]:
        for host, svc in sorted(self.services.items()):
            if host != source and svc.status == "enabled" and svc.view().state == "up":
                return host
        return None

    def migrations(self, source_host: Optional[str] = None, instance_uuid: Optional[str] = None,
                   migration_type: str = "evacuation", changes_since: Optional[str] = None,
                   created_after: Optional[float] = None) -> List[Migration]:
        self._enter("migrations", source_host, instance_uuid)
        found = []
        for mig in self.migration_records:
            if source_host and mig.source != source_host:
                continue
            if instance_uuid and mig.instance_uuid != instance_uuid:
                continue
            if changes_since and mig.updated_at < changes_since:
                continue
            if created_after is not None and nova_time(mig.created_at) < created_after:
                continue  # what Nova's newest-first paging may leave out
            found.append(Migration(id=mig.id, instance_uuid=mig.instance_uuid, source_compute=mig.source,
                                   dest_compute=mig.dest, status=mig.status, migration_type="evacuation",
                                   created_at=mig.created_at, updated_at=mig.updated_at))
        if migration_type and migration_type != "evacuation":
            return []
        return found

    def images_with_tag(self, tag: str) -> List[Image]:
        self._enter("images_with_tag", tag)
        return [i for i in self.images if tag in i.tags]

    def flavors_with_extra_spec(self, key: str) -> Dict[str, str]:
        self._enter("flavors_with_extra_spec", key)
        return {name: specs[key] for name, specs in self.flavor_specs.items() if key in specs}

    def aggregates(self) -> List[Aggregate]:
        self._enter("aggregates")
        return list(self.aggregate_list)


__all__ = ["FakeNova", "NovaError", "WRITE_METHODS"]
