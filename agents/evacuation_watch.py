"""The background listings of a failed host, and what the main thread makes of them.

- confirmation: one migration listing per failed host with instances in flight (poll); a finished
  migration sends its instance to be confirmed with one GET (in the call slots the evacuate calls
  leave free, see Engine.dispatch), a failed or overdue one becomes a retry;
- renewal: a host whose server listing gets old while instances still wait for their first call is
  listed again in one call (relist_stale), so they keep being issued from a fresh listing instead
  of being inspected one by one.

The listings run in pool threads (under load they take longer than an evacuate call, and the main
thread must keep dispatching meanwhile) and come back through the event queue.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Set

from computeha.ocf_lib.nova import FAILED_MIGRATION, FINISHED_MIGRATION, Migration, Server, nova_time

from .evacuation_issue import host_migrations, under_way_or_done
from .evacuation_outcome import Kind, Outcome
from .evacuation_shared import HostRelisted, InstanceOutcome, MigrationsListed, Shared
from .evacuation_store import INFLIGHT, ISSUING, PENDING, HostProgress

RELIST_AT = 0.75  # share of the listing's trust (Shared.fresh_listing) after which it is renewed


def _num(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0


class Watcher:
    def __init__(self, shared: Shared) -> None:
        self.sh = shared
        self.polling: Set[str] = set()  # nodes whose migration listing is under way
        self.relisting: Set[str] = set()  # nodes whose new server listing is under way
        self.relist_next: Dict[str, float] = {}  # node -> monotonic time before which no new relist starts

    # --- confirmation ------------------------------------------------------------------------
    def poll(self) -> None:
        """Start one migration listing per failed host with instances in flight (one per host at a time)."""
        sh = self.sh
        for host in list(sh.hosts.values()):
            if host.node in self.polling:
                continue
            if not any(i.state == INFLIGHT and i.id not in sh.running for i in host.instances.values()):
                continue
            self.polling.add(host.node)
            sh.pool.submit(self._list_migrations, host)

    def _list_migrations(self, host: HostProgress) -> None:
        started = self.sh.clock()
        try:
            migs: Optional[List[Migration]] = host_migrations(self.sh.nova, host)
        except Exception as err:  # noqa: BLE001 - a failed listing is just tried again next cycle
            self.sh.log.debug("%s: cannot list migrations yet: %s", host.node, err)
            migs = None
        self.sh.events.put(MigrationsListed(host.node, started, migs))

    def polled(self, event: MigrationsListed) -> List[InstanceOutcome]:
        """Main thread: act on a finished migration listing of a failed host.

        Finished migrations are queued for confirmation (Shared.to_confirm); the outcomes of failed
        and overdue ones are returned, for the engine to apply in this order."""
        sh = self.sh
        self.polling.discard(event.node)
        host = sh.hosts.get(event.node)
        if host is None or event.migrations is None or sh.stop.is_set():  # stopping: the pool takes no new task
            return []
        now = sh.clock()
        latest: Dict[str, Migration] = {}
        for listed in event.migrations:  # the newest record per instance
            old = latest.get(listed.instance_uuid)
            if old is None or ((nova_time(listed.created_at), _num(listed.id))
                               >= (nova_time(old.created_at), _num(old.id))):
                latest[listed.instance_uuid] = listed
        # only instances already in flight when the listing started: a later one may not be in it yet
        waiting = [i for i in host.instances.values()
                   if i.state == INFLIGHT and i.id not in sh.running and i.inflight_since <= event.started]
        out: List[InstanceOutcome] = []
        for inst in waiting:
            mig = latest.get(inst.id)
            status = mig.status if mig else ""
            if status in FINISHED_MIGRATION:
                sh.to_confirm[inst.id] = host.node  # dispatch starts it when a call slot is free
            elif status in FAILED_MIGRATION:
                out.append(InstanceOutcome(host.node, inst.id, Outcome(Kind.RETRY, f"evacuation {status} in Nova")))
            elif now - inst.inflight_since > sh.s.evacuation_timeout:
                # the next attempt inspects Nova first: it waits again rather than re-issue over it
                with sh.lock:
                    inst.overdue = True
                out.append(InstanceOutcome(host.node, inst.id, Outcome(Kind.RETRY, self._overdue(mig))))
            elif mig is None and event.started - inst.inflight_since > sh.s.in_doubt_grace:
                out.append(InstanceOutcome(host.node, inst.id,
                                           Outcome(Kind.DEFER, "no migration record: inspecting", at=now)))
        return out

    def _overdue(self, mig: Optional[Migration]) -> str:
        """Why an evacuation is not back in time, in words an operator can act on."""
        text = f"not back after {self.sh.s.evacuation_timeout:.0f}s"
        if mig is not None and mig.status == "accepted":
            where = f", scheduled to {mig.dest_compute}" if mig.dest_compute else ""
            text += (f"; Nova still shows the evacuation `accepted`{where} and no compute has started it: a dead "
                     "target nova-compute, a busy scheduler, or a request lost in RabbitMQ (known limit: "
                     "the agent never issues a second one over it; operator: nova reset-state --active, evacuate)")
        return text

    # --- renewal ------------------------------------------------------------------------------
    def relist_stale(self) -> None:
        """List again, in the background, the servers of a host whose listing is getting old.

        A first evacuate call is made only from a listing that shows the instance idle on the
        failed host, and a listing is trusted for `fresh_listing` seconds. When a host still
        has instances to issue after that (slow or distant Nova, caps, a resumed run), one new
        listing of its servers and migrations renews it for all of them; without it each one
        would be inspected on its own (a server read and a migration listing per instance,
        before its evacuate call, in the same call slots).
        """
        sh = self.sh
        now = time.monotonic()
        for host in list(sh.hosts.values()):
            node = host.node
            if node in self.relisting or host.blocked or now < self.relist_next.get(node, 0.0):
                continue
            if now - sh.planned.get(node, 0.0) <= sh.fresh_listing * RELIST_AT:
                continue
            if not any(i.state == PENDING and i.id not in sh.running for i in host.instances.values()):
                continue
            self.relisting.add(node)
            sh.pool.submit(self._relist, host)

    def _relist(self, host: HostProgress) -> None:
        started = time.monotonic()
        try:
            # servers first, then migrations (as inspect does): an evacuation that ends its rebuild
            # between the two shows in the migration listing
            servers: Optional[List[Server]] = self.sh.nova.servers_on_host(host.nova_host)
            migs: Optional[List[Migration]] = host_migrations(self.sh.nova, host)
        except Exception as err:  # noqa: BLE001 - the instances are then inspected one by one
            self.sh.log.debug("%s: cannot list the host's servers again: %s", host.node, err)
            servers = migs = None
        self.sh.events.put(HostRelisted(host.node, started, servers, migs))

    def relisted(self, event: HostRelisted) -> None:
        """Main thread: renew the listing of a host, or send what changed since to be inspected one by one."""
        sh, node = self.sh, event.node
        self.relisting.discard(node)
        host = sh.hosts.get(node)
        if host is None or sh.stop.is_set():
            return
        if event.servers is None or event.migrations is None:
            self.relist_next[node] = time.monotonic() + sh.s.gate_recheck
            return
        idle = {s.id for s in event.servers if s.host == host.nova_host and s.task_state is None}
        busy = {m.instance_uuid for m in event.migrations if under_way_or_done(m)}
        changed = 0
        with sh.lock:
            for inst in host.instances.values():
                # only instances never issued by this run (PENDING); one issued since the listing
                # started is ISSUING or later and its own call decides
                if inst.state == PENDING and inst.id not in sh.running and (
                        inst.id not in idle or inst.id in busy):
                    inst.state = ISSUING  # inspected on its own before any call (done, moved, under way, gone)
                    changed += 1
            if changed:
                sh.store.save(host)
        if changed:
            sh.log.info("%s: %d instances changed since the last listing: inspected one by one", node, changed)
        sh.planned[node] = event.started


__all__ = ["Watcher", "RELIST_AT"]
