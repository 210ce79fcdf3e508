"""Claiming a failed host: list its servers once, decide each one, adopt evacuations already under way.

The gate (evacuation_gate) decides THAT a host is claimed; this module does the claim: a new
request is planned from one server listing and one migration listing (prefetched by the gate in
the same round trip as the fence evidence), a request this node already holds is resumed from
its stored progress. It also keeps the target aggregate's hosts, least loaded first.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Dict, List, Optional, Sequence, Tuple

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.nova import (
    FINISHED_MIGRATION,
    IN_PROGRESS_MIGRATION,
    Migration,
    Nova,
    NovaError,
    NovaForbidden,
    Server,
    Service,
)
from computeha.ocf_lib.timefmt import format_utc

from . import evacuation_select as sel
from .evacuation_issue import CLOCK_SLACK, our_migrations
from .evacuation_records import RecordWriter
from .evacuation_shared import Shared
from .evacuation_store import DONE, INFLIGHT, ISSUING, PENDING, REPORTED, SKIPPED, HostProgress, InstanceProgress

Prefetched = Tuple["Future[List[Server]]", "Future[List[Migration]]"]  # a host's servers, its migrations


def flavor_marker_values(nova: Nova, marker: str, log: Optional[logging.Logger] = None) -> List[object]:
    """The marker's value on every flavor of the cloud that has it (the legacy rule looks at all flavors).

    A listing Nova refuses by policy (403) falls back to the flavors of the failed host's servers (their
    specs come with the servers) and says so; any other error propagates, so the plan waits and retries
    rather than judge "nothing marked" and evacuate what the operator left unmarked.
    """
    try:
        return list(nova.flavors_with_extra_spec(marker).values())
    except NovaForbidden as err:
        if log is not None:
            log.warning("cannot list the cloud's flavors (%s): flavor markers are judged from the failed host's "
                        "servers only", err)
        return []


class Planner:
    def __init__(self, shared: Shared, out: RecordWriter) -> None:
        self.sh = shared
        self.out = out
        self._targets: List[str] = []
        self._target_load: Dict[str, int] = {}

    def prefetch_host(self, nova_host: str, epoch: int) -> Prefetched:
        # no changes-since: Nova filters it on updated_at, which stays NULL while a migration is
        # `accepted`; the records are filtered on created_at here instead
        return (self.sh.pool.submit(self.sh.nova.servers_on_host, nova_host),
                self.sh.pool.submit(self.sh.nova.migrations, source_host=nova_host,
                                    created_after=epoch - CLOCK_SLACK))

    def prefetch_facts(self) -> dict:
        """Futures of the cloud-wide selection facts (images by tag, aggregates), one call each."""
        sh = self.sh
        out = {"exclude": [sh.pool.submit(sh.nova.images_with_tag, t) for t in sh.s.exclude_image_tags],
               "aggregates": sh.pool.submit(sh.nova.aggregates)}  # the failure budgets need them too
        if sh.s.selection != "all":
            out["images"] = sh.pool.submit(sh.nova.images_with_tag, sh.s.marker)
        return out

    def claim(self, node: str, record: rec.EvacuationRecord, service: Service, services: Sequence[Service],
              prefetched: Optional[Prefetched] = None, facts: Optional[dict] = None) -> None:
        sh = self.sh
        epoch = int(record.since or sh.clock())
        host = sh.store.load(node)
        if host is None or host.epoch != epoch or host.nova_host != service.host:
            if prefetched is None:
                prefetched = self.prefetch_host(service.host, epoch)
            host = self.plan(node, service.host, epoch, prefetched, facts or self.prefetch_facts())
            resumed = False
        else:
            resumed = True
            for inst in host.instances.values():
                if inst.state == PENDING and inst.attempts:
                    inst.state = ISSUING  # attempted before: inspect Nova before any new call
                if inst.state == INFLIGHT:
                    inst.inflight_since = sh.clock()  # its timeout starts again with this run
        host.claimed_by = sh.node
        host.blocked = ""
        sh.refused.discard(node)
        sh.planned[node] = time.monotonic() if not resumed else 0.0
        claim_value = rec.EvacuationRecord(rec.RUNNING, epoch, sh.node).format()
        if record.format() != claim_value:
            self.out.claim(node, claim_value)
        sh.store.save(host)
        sh.hosts[node] = host
        sh.unsay(node)
        counts = host.counts()
        sh.log.info("%s %s (Nova host %s, requested %s): %d instances: %s", "resumed" if resumed else "claimed",
                    node, service.host, format_utc(epoch), len(host.instances),
                    ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none")
        if sh.s.target_aggregate:
            self.load_targets(services)
        self.out.reason(node, f"evacuation by {sh.node} since {format_utc(sh.clock())}")
        self.out.set_progress(node, host.summary())
        if host.finished:
            self.out.finish(host)

    def plan(self, node: str, nova_host: str, epoch: int, prefetched: Prefetched, facts: dict) -> HostProgress:
        """List the host's servers once and decide each one; adopt evacuations already under way."""
        sh = self.sh
        f_servers, f_migs = prefetched
        servers = f_servers.result()
        migrations = our_migrations(f_migs.result(), nova_host, epoch)
        markers = self._markers(servers, facts)
        host = HostProgress(node=node, nova_host=nova_host, epoch=epoch)
        by_instance: Dict[str, List[Migration]] = {}
        for mig in migrations:
            by_instance.setdefault(mig.instance_uuid, []).append(mig)
        for server in servers:
            decision = sel.decide(server, sh.s, markers)
            inst = InstanceProgress(id=server.id, name=server.name, priority=decision.priority,
                                    expect_status=decision.expect_status, disk=decision.disk,
                                    reason=decision.reason)
            migs = by_instance.get(server.id, [])
            if any(m.status in IN_PROGRESS_MIGRATION for m in migs) or server.task_state is not None:
                if any(m.status in IN_PROGRESS_MIGRATION for m in migs):
                    inst.state, inst.reason = INFLIGHT, "evacuation already under way"
                    inst.expect_status, inst.inflight_since = "ANY", sh.clock()
                else:
                    inst.state, inst.reason = REPORTED, f"task {server.task_state} in progress, not ours"
            elif decision.action == sel.EVACUATE:
                inst.state = PENDING
            elif decision.action == sel.SKIP:
                inst.state = SKIPPED
            else:
                inst.state = REPORTED
            if inst.state in (SKIPPED, REPORTED):
                sh.log.info("%s: instance %s (%s) not evacuated: %s", node, server.id, server.name, inst.reason)
            host.instances[server.id] = inst
        # instances already moved since the request (by an earlier run or by hand) count as done
        for uuid, migs in by_instance.items():
            if uuid not in host.instances and any(m.status in FINISHED_MIGRATION for m in migs):
                done = [m for m in migs if m.status in FINISHED_MIGRATION][0]
                host.instances[uuid] = InstanceProgress(id=uuid, state=DONE, dest=done.dest_compute or "",
                                                        reason="evacuated before this claim", expect_status="ANY")
        return host

    def _markers(self, servers: Sequence[Server], facts: dict) -> sel.CloudMarkers:
        s = self.sh.s
        excluded = set(s.exclude_image_ids)
        for future in facts["exclude"]:
            excluded.update(img.id for img in future.result())
        if s.selection == "all":
            return sel.cloud_markers("all", s.marker, servers, excluded)
        return sel.cloud_markers(s.selection, s.marker, servers, excluded, facts["images"].result(),
                                 facts["aggregates"].result(),
                                 lambda: flavor_marker_values(self.sh.nova, s.marker, self.sh.log))

    # --- target aggregate -------------------------------------------------------------------
    def load_targets(self, services: Sequence[Service]) -> None:
        """The usable hosts of the target aggregate (none: the scheduler chooses)."""
        sh = self.sh
        try:
            aggs = [a for a in sh.nova.aggregates() if a.name == sh.s.target_aggregate]
        except NovaError as err:
            sh.log.warning("cannot read aggregate %s, the scheduler chooses: %s", sh.s.target_aggregate, err)
            return
        hosts = {h for a in aggs for h in a.hosts}
        usable = [s.host for s in services if s.host in hosts and s.takes_instances]
        if not usable:
            sh.log.warning("aggregate %s has no usable host, the scheduler chooses", sh.s.target_aggregate)
        self._targets = sorted(usable)
        for h in self._targets:
            self._target_load.setdefault(h, 0)

    def pick_target(self) -> Optional[str]:
        """The least loaded target host (each pick counts), or None: the scheduler chooses."""
        if not self._targets:
            return None
        best = min(self._targets, key=lambda h: (self._target_load.get(h, 0), h))
        self._target_load[best] = self._target_load.get(best, 0) + 1
        return best


__all__ = ["Planner", "Prefetched", "flavor_marker_values"]
