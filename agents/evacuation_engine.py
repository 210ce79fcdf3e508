"""The evacuation engine: claim host -> check fence evidence -> select -> evacuate with confirmation -> record.

One engine runs in the NovaEvacuate worker process. Each loop it reads the
`computeha-evacuate` record of every node (one CIB query), and for every host
whose record is requested/running it:

1. checks the fence evidence in Nova (compute service forced down, or down and
   disabled with our `computeha:` reason); anything else is logged and left alone
   (evacuation_gate, with the maintenance switch and the mass-failure guard);
2. claims it (record `running;<request time>;<this node>`), lists its servers
   once (flavor extra specs embedded) and its evacuation migrations once, and
   decides per server (evacuation_plan, evacuation_select);
3. hands instances to a bounded pool of evacuate-and-confirm workers, highest
   priority first across all failed hosts, within a global and a per-host cap
   (this module; the calls are evacuation_issue, the confirming and renewing
   listings evacuation_watch);
4. records the outcome per instance (StateDir, atomic; evacuation_outcome) and,
   when every instance is done or failed for good, marks the host `done`/`failed`
   (evacuation_records).

Never two evacuations of one instance: the first attempt of an instance is
issued only from a fresh listing showing it idle on the failed host (a host's
listing is renewed in one call, in the background, before it gets old); every
later attempt (retry, in-doubt call, resume after a kill) first inspects Nova
(task_state, evacuation migrations since the request) and only waits if an
evacuation is in flight. A call whose answer was lost is re-inspected only
after `in_doubt_grace`, so that a request still inside nova-api lands first.
"""
from __future__ import annotations

import logging
import queue
import time
from typing import Callable, Dict, List, Optional, Tuple

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.attrs import ClusterAttributeError, NodeAttributes
from computeha.ocf_lib.nova import Nova, NovaError, nova_time

from .evacuation_gate import PROGRESS_PAUSED, Gate, fence_evidence, match_service
from .evacuation_issue import CLOCK_SLACK, Issuer
from .evacuation_outcome import transition
from .evacuation_params import Settings
from .evacuation_plan import Planner, flavor_marker_values
from .evacuation_records import PROGRESS_INTERVAL, RecordWriter
from .evacuation_shared import FRESH_LISTING, Event, HostRelisted, InstanceOutcome, MigrationsListed, Shared
from .evacuation_store import INFLIGHT, ISSUING, PENDING, HostProgress, InstanceProgress, ProgressStore
from .evacuation_watch import RELIST_AT, Watcher

WARM_INTERVAL = 120.0  # seconds between keep-warm reads while nothing is being evacuated


class Engine:
    """The main loop: timers, dispatch within the caps, and the events coming back from the pool threads.

    What each step does lives in its own module; they all work on one `Shared` (self.sh)."""

    def __init__(self, nova: Nova, records: NodeAttributes, settings: Settings, store: ProgressStore,
                 log: logging.Logger, node: str, progress: Optional[NodeAttributes] = None,
                 clock: Callable[[], float] = time.time, warm: bool = False) -> None:
        self.sh = sh = Shared(nova, records, progress, settings, store, log, node or "unknown", clock,
                              lambda n, services: match_service(n, services, settings.domain, settings.host_map))
        self.out = RecordWriter(sh)
        self.planner = Planner(sh, self.out)
        self.gate = Gate(sh, self.out, self.planner)
        self.issue = Issuer(sh)
        self.watch = Watcher(sh)
        # the names other modules and tests use
        self.nova, self.records, self.progress, self.s, self.store, self.log = nova, records, progress, settings, \
            store, log
        self.node, self.clock, self.limits = sh.node, clock, self.gate.limits
        self.hosts, self.running, self.refused = sh.hosts, sh.running, sh.refused
        self.events, self.stop, self.pool, self.lock = sh.events, sh.stop, sh.pool, sh.lock
        self._last_issue = 0.0
        self._next_scan = 0.0
        self._next_poll = 0.0
        self._next_warm = 0.0 if warm else float("inf")

    @property
    def fresh_listing(self) -> float:
        """Seconds a server listing is trusted for an instance's first evacuate call (tests shorten it)."""
        return self.sh.fresh_listing

    @fresh_listing.setter
    def fresh_listing(self, seconds: float) -> None:
        self.sh.fresh_listing = seconds

    @property
    def first_issue_at(self) -> Optional[float]:
        return self.issue.first_issue_at

    # --- the loop -----------------------------------------------------------------------
    def run(self, should_continue: Callable[[], bool]) -> None:
        """The worker's loop; returns when should_continue() is false or stop is set."""
        while not self.stop.is_set() and should_continue():
            self.step()

    def run_until_idle(self, timeout: float) -> bool:
        """Tests and benchmark: loop until no flagged host is left to handle; True if that happened in time."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.step()
            if self.idle():
                return True
        return False

    def idle(self) -> bool:
        if self.running or self.out.finish_pending or any(not h.finished for h in self.hosts.values()):
            return False
        try:
            values = self.records.get_all(rec.ATTRIBUTE)
        except ClusterAttributeError:
            return False
        for node, value in values.items():
            record = rec.parse(value)
            if record and record.state in (rec.REQUESTED, rec.RUNNING) and node not in self.refused:
                return False
        return True

    def keep_warm(self) -> None:
        """An authenticated read of Nova (and Glance) now and then while idle.

        Every API service validates a new token with Keystone on its first use and caches
        the answer for minutes; under load that first validation took 3-4 s on the test rig.
        Keeping the token validated keeps it off the path of the first evacuate call.
        """
        self._next_warm = time.monotonic() + WARM_INTERVAL
        if self.hosts or self.running:
            return
        self.pool.submit(self._warm_calls)

    def _warm_calls(self) -> None:
        try:
            self.nova.compute_services()
            if self.s.selection != "all":
                self.nova.images_with_tag(self.s.marker)
        except NovaError as err:
            self.log.debug("keep-warm call failed: %s", err)

    def step(self) -> None:
        now = time.monotonic()
        if now >= self._next_warm:
            self.keep_warm()
        if now >= self._next_scan:
            self._next_scan = now + self.s.poll_interval
            self.gate.scan()
        if now >= self._next_poll:
            self._next_poll = now + self.s.confirm_interval
            self.watch.poll()
        self.dispatch()
        self.out.flush()
        self.out.publish_progress_if_due()
        wait = max(0.0, min(self._next_scan, self._next_poll) - time.monotonic())
        if self.s.stagger and self._has_ready():
            wait = min(wait, max(0.0, self._last_issue + self.s.stagger - time.monotonic()))
        self.process_events(wait)

    def close(self, wait: bool = True) -> None:
        self.stop.set()
        self.pool.shutdown(wait=wait)
        self.process_events(0)

    # --- dispatch ---------------------------------------------------------------------------
    def _ready(self) -> List[Tuple[HostProgress, InstanceProgress]]:
        now = self.clock()
        out = []
        for host in self.hosts.values():
            if host.blocked or now < host.epoch + self.s.evacuate_delay:
                continue
            for inst in host.instances.values():
                if inst.state in (PENDING, ISSUING) and inst.id not in self.running and inst.next_at <= now:
                    out.append((host, inst))
        # highest priority first across every failed host; then oldest request; then name
        out.sort(key=lambda hi: (-hi[1].priority, hi[0].epoch, hi[1].name, hi[1].id))
        return out

    def _has_ready(self) -> bool:
        return bool(self._ready())

    def in_flight(self) -> Dict[str, int]:
        """Evacuations issued (or being issued) and not yet confirmed, per host node."""
        counts: Dict[str, int] = {}
        for node, host in self.hosts.items():
            n = sum(1 for i in host.instances.values() if i.state == INFLIGHT or
                    (i.state == ISSUING and i.id in self.running))
            if n:
                counts[node] = n
        return counts

    def dispatch(self) -> None:
        """Evacuate calls first, confirmations in the call slots they leave free.

        An evacuate call made sooner makes a recovery sooner; a confirmation made sooner only
        finishes the record sooner. Confirmations do not wait forever: once every ready instance
        is issued, or the caps hold the rest back (in-flight instances count until confirmed),
        the slots are theirs.
        """
        self._dispatch_evacuations()
        self._dispatch_confirmations()

    def _dispatch_confirmations(self) -> None:
        to_confirm = self.sh.to_confirm
        for inst_id, node in list(to_confirm.items()):
            if len(self.running) >= self.s.api_concurrency:
                return
            del to_confirm[inst_id]
            host = self.hosts.get(node)
            inst = host.instances.get(inst_id) if host is not None else None
            if host is None or inst is None or inst.state != INFLIGHT or inst_id in self.running:
                continue  # finished or handed back meanwhile
            self.running[inst_id] = node
            self.pool.submit(self.issue.task, host, inst, "confirm", None)

    def _dispatch_evacuations(self) -> None:
        self.watch.relist_stale()
        per_host = self.in_flight()
        total = sum(per_host.values())
        for host, inst in self._ready():
            if total >= self.s.max_parallel or len(self.running) >= self.s.api_concurrency:
                return
            cap = self.s.max_parallel_per_host
            if cap and per_host.get(host.node, 0) >= cap:
                continue
            if self.s.stagger and time.monotonic() - self._last_issue < self.s.stagger:
                return
            mode = "issue" if inst.state == PENDING else "recheck"
            if mode == "issue" and time.monotonic() - self.sh.planned.get(host.node, 0.0) > self.fresh_listing:
                if host.node in self.watch.relisting:
                    continue  # a new listing is on its way: one call for all, not two per instance
                mode = "recheck"  # the listing is old and cannot be renewed now: look at this server first
            if mode == "issue":
                self.issue.mark_issuing(host, inst)
                self._last_issue = time.monotonic()
            else:
                inst.state = ISSUING
            self.running[inst.id] = host.node
            per_host[host.node] = per_host.get(host.node, 0) + 1
            total += 1
            self.pool.submit(self.issue.task, host, inst, mode, self.planner.pick_target())

    # --- events (main thread) -----------------------------------------------------------------
    def process_events(self, timeout: float) -> None:
        try:
            event = self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
        except queue.Empty:
            return
        while True:
            self._apply(event)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _apply(self, event: Event) -> None:
        if isinstance(event, MigrationsListed):
            for outcome in self.watch.polled(event):
                self._apply_outcome(outcome)
        elif isinstance(event, HostRelisted):
            self.watch.relisted(event)
        else:
            self._apply_outcome(event)

    def _apply_outcome(self, event: InstanceOutcome) -> None:
        """One instance's outcome: its new progress (evacuation_outcome.transition), saved and published."""
        node = event.node
        host = self.hosts.get(node)
        if host is None:
            self.running.pop(event.inst_id, None)
            return
        inst = host.instances[event.inst_id]
        now = self.clock()
        self.running.pop(event.inst_id, None)
        change = transition(inst, event.outcome, self.s, now)
        if not change.persist:
            return
        with self.lock:
            change.apply(inst)
            if change.block:
                host.blocked = change.block
                self.sh.hold(node)
            if change.level:
                self.log.log(change.level, change.message, node, *change.args)
            self.store.save(host)
        # per outcome only remembered: published at most once per PROGRESS_INTERVAL (step), and at the end
        self.out.due(node, host.summary())
        if host.finished:
            self.out.finish(host)


# re-exported: the names other modules and tests import from here
__all__ = ["Engine", "fence_evidence", "match_service", "flavor_marker_values", "nova_time",
           "CLOCK_SLACK", "FRESH_LISTING", "RELIST_AT", "PROGRESS_INTERVAL", "PROGRESS_PAUSED", "WARM_INTERVAL"]
