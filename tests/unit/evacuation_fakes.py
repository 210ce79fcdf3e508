"""A small in-memory Nova for the evacuation unit tests (the shared fake may replace it).

It models what the engine depends on, as measured on nova 34: evacuate is
refused (400 "still in use") unless the source is forced down; it sets
task_state=rebuilding and creates an `accepted` migration before answering;
the host changes and the migration becomes `done` only at the end; a second
evacuate while the first runs is ACCEPTED and breaks the server (ERROR), so
the tests can count calls and see any double issue.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Dict, List, Optional

from computeha.ocf_lib.nova import (
    Aggregate,
    Image,
    Migration,
    NovaBadRequest,
    NovaNotFound,
    NovaUnavailable,
    Server,
    Service,
    nova_time,
)


def _now_iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000", time.gmtime(t))


class MiniNova:
    def __init__(self, hosts=("compute-0", "compute-1", "compute-2"), duration: float = 0.05) -> None:
        self.lock = threading.Lock()
        self.services: Dict[str, Service] = {
            h: Service(id=f"svc-{h}", host=h, binary="nova-compute", state="up", status="enabled",
                       forced_down=False) for h in hosts}
        self.servers: Dict[str, Server] = {}
        self.migs: List[Migration] = []
        self.images: List[Image] = []
        self.aggs: List[Aggregate] = []
        self.flavor_specs: Dict[str, Dict[str, str]] = {}  # flavor name -> extra specs
        self.duration = duration
        self.calls: List[tuple] = []  # (method, args)
        self.evacuations: Dict[str, int] = {}  # server id -> evacuate calls accepted
        self.broken: List[str] = []  # servers hit by a second evacuation while the first ran
        self._finish_at: Dict[str, tuple] = {}  # server id -> (time, dest, migration index)
        self.fail_evacuate: List[str] = []  # scripted evacuate faults: "unavailable", "lost", "fail", "queued-lost"
        self.fail_reads = 0  # next N read calls raise NovaUnavailable
        self.doomed: set = set()
        self.answer_delay = 0.0
        self.finish_lag = 0.0  # seconds between the end of the rebuild and finish_evacuation
        self.evac_times: Dict[str, float] = {}
        self.still_in_use: set = set()  # hosts Nova does not yet consider down (400 on evacuate)
        self.inflight_max: Dict[str, int] = {}  # source host -> most evacuations in flight at once
        self._n = 0

    # --- test helpers -----------------------------------------------------------------
    def add_server(self, host: str, status: str = "ACTIVE", **kw) -> Server:
        self._n += 1
        sid = kw.pop("id", f"srv-{self._n:03d}")
        server = Server(id=sid, name=kw.pop("name", sid), status=status, task_state=None,
                        vm_state={"SHUTOFF": "stopped"}.get(status, status.lower()), power_state=1,
                        host=host, project_id=kw.pop("project_id", "p1"), image_id=kw.pop("image_id", "img-1"),
                        **kw)
        self.servers[sid] = server
        return server

    def fence(self, host: str, forced: bool = True) -> None:
        self.services[host] = replace(self.services[host], state="down", forced_down=forced,
                                      status="disabled", disabled_reason="computeha: fenced")

    def _advance(self) -> None:
        now = time.time()
        for sid, (at, dest, idx, status) in list(self._finish_at.items()):
            if now >= at - self.finish_lag and self.migs[idx].status == "accepted":
                # the rebuild is over: task_state None, power state back, host NOT moved yet
                self.migs[idx] = replace(self.migs[idx], status="pre-migrating", updated_at=_now_iso(now))
                if sid not in self.broken and sid not in self.doomed:
                    self.servers[sid] = replace(self.servers[sid], task_state=None, status=status)
            if now >= at:
                del self._finish_at[sid]
                srv = self.servers[sid]
                if sid in self.broken or sid in self.doomed:
                    self.doomed.discard(sid)
                    self.servers[sid] = replace(srv, task_state=None, status="ERROR", vm_state="error")
                    self.migs[idx] = replace(self.migs[idx], status="failed")
                    continue
                self.servers[sid] = replace(srv, task_state=None, host=dest, status=status)
                self.migs[idx] = replace(self.migs[idx], status="done", dest_compute=dest, updated_at=_now_iso(now))

    def _read(self, name: str, *args) -> None:
        self.calls.append((name, args))
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise NovaUnavailable("503 fake outage", 503)
        self._advance()

    # --- the Protocol ------------------------------------------------------------------
    def max_microversion(self) -> str:
        return "2.94"

    def check(self) -> None:
        pass

    def compute_services(self, host: Optional[str] = None) -> List[Service]:
        with self.lock:
            self._read("compute_services", host)
            return [s for s in self.services.values() if host is None or s.host == host]

    def force_down(self, service: Service, down: bool) -> Service:
        with self.lock:
            self.services[service.host] = replace(self.services[service.host], forced_down=down)
            return self.services[service.host]

    def set_enabled(self, service: Service, enabled: bool, reason: str = "") -> Service:
        with self.lock:
            self.calls.append(("set_enabled", (service.host, enabled, reason)))
            self.services[service.host] = replace(self.services[service.host],
                                                  status="enabled" if enabled else "disabled",
                                                  disabled_reason="" if enabled else reason)
            return self.services[service.host]

    def servers_on_host(self, host: str) -> List[Server]:
        with self.lock:
            self._read("servers_on_host", host)
            return [s for s in self.servers.values() if s.host == host]

    def server(self, server_id: str) -> Server:
        with self.lock:
            self._read("server", server_id)
            if server_id not in self.servers:
                raise NovaNotFound(f"server {server_id} not found", 404)
            return self.servers[server_id]

    def evacuate(self, server_id: str, target_host: Optional[str] = None) -> None:
        self._evacuate(server_id, target_host)
        if self.answer_delay:  # Nova acted; the answer is still on its way
            time.sleep(self.answer_delay)

    def _evacuate(self, server_id: str, target_host: Optional[str] = None) -> None:
        with self.lock:
            self.calls.append(("evacuate", (server_id, target_host)))
            self._advance()
            fault = self.fail_evacuate.pop(0) if self.fail_evacuate else ""
            if fault == "unavailable":
                raise NovaUnavailable("connection refused", None)
            srv = self.servers[server_id]
            svc = self.services[srv.host]
            if (not svc.forced_down and svc.state == "up") or srv.host in self.still_in_use:
                raise NovaBadRequest(f"Compute service of {srv.host} is still in use.", 400)
            running = any(m.instance_uuid == server_id and m.status in ("accepted", "pre-migrating")
                          for m in self.migs)
            if srv.task_state is not None or running:
                self.broken.append(server_id)  # real Nova accepts it and the server ends in ERROR
            self.evacuations[server_id] = self.evacuations.get(server_id, 0) + 1
            self.evac_times[server_id] = time.time()
            dests = sorted(h for h, s in self.services.items()
                           if h != srv.host and s.state == "up" and not s.forced_down)
            if not dests and not target_host:
                # as Nova: accepted (202), then the conductor finds no valid host: the migration goes to
                # `error`, the server stays idle on its host
                self.migs.append(Migration(id=str(len(self.migs) + 1), instance_uuid=server_id,
                                           source_compute=srv.host, dest_compute="", status="error",
                                           migration_type="evacuation", created_at=_now_iso(time.time())))
                return
            dest = target_host or dests[self.evacuations[server_id] % len(dests)]
            self.servers[server_id] = replace(srv, task_state="rebuilding", status="REBUILD")
            now = time.time()
            self.migs.append(Migration(id=str(len(self.migs) + 1), instance_uuid=server_id, source_compute=srv.host,
                                       dest_compute="", status="accepted", migration_type="evacuation",
                                       created_at=_now_iso(now)))
            idx = len(self.migs) - 1
            running = sum(1 for m in self.migs if m.source_compute == srv.host and m.status == "accepted")
            self.inflight_max[srv.host] = max(self.inflight_max.get(srv.host, 0), running)
            if fault == "fail":
                self.doomed.add(server_id)  # this attempt ends in ERROR / migration failed
            if fault == "queued-lost":  # accepted, then dropped by the message queue: never goes on
                return
            # the original status comes back at the end, as with 2.68-2.94 (power state kept)
            self._finish_at[server_id] = (now + self.duration, dest, idx,
                                          "ACTIVE" if srv.status == "ERROR" else srv.status)
            if fault == "lost":
                raise NovaUnavailable("read timed out", None)

    def migrations(self, source_host: Optional[str] = None, instance_uuid: Optional[str] = None,
                   migration_type: str = "evacuation", changes_since: Optional[str] = None,
                   created_after: Optional[float] = None) -> List[Migration]:
        with self.lock:
            self._read("migrations", source_host, instance_uuid, created_after)
            # like Nova: changes-since compares updated_at, which is unset while `accepted`;
            # created_after: Nova's newest-first paging may leave out anything older, so leave it all out
            return [m for m in self.migs if (source_host is None or m.source_compute == source_host)
                    and (instance_uuid is None or m.instance_uuid == instance_uuid)
                    and m.migration_type == migration_type
                    and (changes_since is None or (m.updated_at and m.updated_at[:19] >= changes_since[:19]))
                    and (created_after is None or nova_time(m.created_at) >= created_after)]

    def images_with_tag(self, tag: str) -> List[Image]:
        with self.lock:
            self._read("images_with_tag", tag)
            return [i for i in self.images if tag in i.tags]

    def flavors_with_extra_spec(self, key: str) -> Dict[str, str]:
        with self.lock:
            self._read("flavors_with_extra_spec", key)
            return {name: specs[key] for name, specs in self.flavor_specs.items() if key in specs}

    def aggregates(self) -> List[Aggregate]:
        with self.lock:
            self._read("aggregates")
            return list(self.aggs)
