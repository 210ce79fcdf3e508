"""The evacuation engine: claim host -> check fence evidence -> select -> evacuate with confirmation -> record.

One engine runs in the NovaEvacuate worker process. Each loop it reads the
`computeha-evacuate` record of every node (one CIB query), and for every host
whose record is requested/running it:

1. checks the fence evidence in Nova (compute service forced down, or down and
   disabled with our `computeha:` reason); anything else is logged and left alone;
2. claims it (record `running;<request time>;<this node>`), lists its servers
   once (flavor extra specs embedded) and its evacuation migrations once, and
   decides per server (evacuation_select);
3. hands instances to a bounded pool of evacuate-and-confirm workers, highest
   priority first across all failed hosts, within a global and a per-host cap;
4. records the outcome per instance (StateDir, atomic) and, when every instance
   is done or failed for good, marks the host `done`/`failed`.

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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.attrs import ClusterAttributeError, NodeAttributes
from computeha.ocf_lib.hostnames import HostMapper, HostMappingError
from computeha.ocf_lib.nova import (
    FAILED_MIGRATION,
    FINISHED_MIGRATION,
    IN_PROGRESS_MIGRATION,
    Migration,
    Nova,
    NovaAuthError,
    NovaBadRequest,
    NovaConflict,
    NovaError,
    NovaForbidden,
    NovaNotFound,
    Server,
    Service,
    nova_time,
)

from . import evacuation_select as sel
from . import failure_guard as guard
from .evacuation_params import Settings
from .evacuation_store import (
    DONE,
    FAILED,
    INFLIGHT,
    ISSUING,
    PENDING,
    REPORTED,
    SKIPPED,
    HostProgress,
    InstanceProgress,
    ProgressStore,
)

PROGRESS_PAUSED = "paused: requested, not evacuated"
CLOCK_SLACK = 120  # seconds of clock skew tolerated between controllers and Nova when matching migrations
FRESH_LISTING = 60.0  # seconds a server listing is trusted for an instance's first evacuate call
RELIST_AT = 0.75  # share of FRESH_LISTING after which the host's servers are listed again (in the background)
PROGRESS_INTERVAL = 1.0  # seconds between two progress attribute writes of a host
WARM_INTERVAL = 120.0  # seconds between keep-warm reads while nothing is being evacuated

# outcome kinds of one evacuate-and-confirm task
O_DONE, O_RETRY, O_FAILED, O_DOUBT, O_BLOCKED, O_GONE, O_DEFER, O_ADOPT, O_STILL = (
    "done", "retry", "failed", "doubt", "blocked", "gone", "defer", "adopt", "still")
O_POLLED = "polled"  # a migration listing of a failed host came back (see Engine.poll)
POLLED = "*polled"  # instance id slot of that event
O_RELISTED = "relisted"  # a new server and migration listing of a failed host came back (see Engine._relist_stale)
RELISTED = "*relisted"


def _under_way_or_done(mig: Migration) -> bool:
    """An evacuation record that forbids a new evacuate call: still running, or finished."""
    return mig.status in IN_PROGRESS_MIGRATION or mig.status in FINISHED_MIGRATION


def _num(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class Outcome:
    kind: str
    reason: str = ""
    dest: str = ""
    at: float = 0.0  # O_DEFER: when to look again (0: a few seconds from now); O_POLLED: listing start;
    #                  O_RELISTED: listing start (monotonic)
    migrations: Optional[List[Migration]] = None  # O_POLLED, O_RELISTED: our records (None: the listing failed)
    servers: Optional[List[Server]] = None  # O_RELISTED: the servers on the failed host (None: it failed)


def iso_utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def fence_evidence(service: Optional[Service]) -> Optional[str]:
    """None when Nova confirms the host is fenced, else why not."""
    if service is None:
        return "Nova knows no nova-compute service for it"
    if service.status.upper() == "UNKNOWN":  # 2.69+: the service's cell cannot be reached
        return "Nova cannot reach the cell of its compute service (status UNKNOWN): no evidence either way"
    if service.forced_down:
        return None
    if service.state == "down" and service.status == "disabled" and rec.is_ours(service.disabled_reason):
        return None
    return (f"its compute service is not forced down (state={service.state}, status={service.status}, "
            f"forced_down={service.forced_down})")


def match_service(node: str, services: Sequence[Service], domain: str = "",
                  host_map: Optional[Mapping[str, str]] = None) -> Optional[Service]:
    """The nova-compute service of a Pacemaker node (ocf_lib.hostnames rules); None if none or ambiguous."""
    computes = [s for s in services if s.binary == "nova-compute"]
    try:
        host = HostMapper([s.host for s in computes], domain, host_map).to_nova(node)
    except HostMappingError:
        return None
    found = [s for s in computes if s.host == host]
    return found[0] if found else None


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


class Engine:
    def __init__(self, nova: Nova, records: NodeAttributes, settings: Settings, store: ProgressStore,
                 log: logging.Logger, node: str, progress: Optional[NodeAttributes] = None,
                 clock: Callable[[], float] = time.time, warm: bool = False) -> None:
        self.nova = nova
        self.records = records
        self.progress = progress
        self.s = settings
        self.store = store
        self.log = log
        self.node = node or "unknown"
        self.clock = clock
        self.hosts: Dict[str, HostProgress] = {}
        self.running: Dict[str, str] = {}  # instance id -> node
        self.events: "queue.Queue[Tuple[str, str, Outcome]]" = queue.Queue()
        self.stop = threading.Event()
        # one thread more than the calls dispatch() allows: a confirmation listing never queues behind them
        self.pool = ThreadPoolExecutor(max_workers=settings.api_concurrency + 1, thread_name_prefix="evacuate")
        self.lock = threading.Lock()  # guards HostProgress objects shared with the worker threads
        self._said: Dict[str, str] = {}  # node -> last message logged about it (log changes only)
        self._gate_next: Dict[str, float] = {}
        self._last_issue = 0.0
        self._next_scan = 0.0
        self._next_poll = 0.0
        self._polling: set = set()  # nodes whose migration listing is under way
        self._progress_due: Dict[str, str] = {}  # node -> progress text not yet published
        self._next_progress = 0.0
        self._next_warm = 0.0 if warm else float("inf")
        self._targets: List[str] = []
        self._target_load: Dict[str, int] = {}
        self._reason_pending: Dict[str, str] = {}  # node -> disabled_reason text to write
        self._finish_pending: Dict[str, str] = {}  # node -> record value still to write
        self._claim_pending: Dict[str, str] = {}  # node -> `running` record still to write
        self.first_issue_at: Optional[float] = None
        self._first_call: Dict[str, float] = {}
        self.refused: set = set()  # flagged nodes left alone (no fence evidence, mass-failure guard)
        self.limits = guard.Limits(settings.mass_failure_share, settings.mass_failure_max_hosts,
                                   settings.stale_cloud_share)
        self._planned: Dict[str, float] = {}  # node -> monotonic time of the server listing
        self.fresh_listing = FRESH_LISTING
        self._relisting: set = set()  # nodes whose new server listing is under way
        self._relist_next: Dict[str, float] = {}  # node -> monotonic time before which no new relist starts
        # instances whose migration is finished, waiting for a free call slot to be confirmed (id -> node)
        self._to_confirm: Dict[str, str] = {}

    def _match(self, node: str, services: Sequence[Service]) -> Optional[Service]:
        return match_service(node, services, self.s.domain, self.s.host_map)

    # --- logging helpers ----------------------------------------------------------------
    def _say(self, node: str, level: int, message: str) -> None:
        if self._said.get(node) != message:
            self._said[node] = message
            self.log.log(level, "%s", message)

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
        if self.running or self._finish_pending or any(not h.finished for h in self.hosts.values()):
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
            self.scan()
        if now >= self._next_poll:
            self._next_poll = now + self.s.confirm_interval
            self.poll()
        self.dispatch()
        self._flush_side_records()
        if self._progress_due and time.monotonic() >= self._next_progress:
            self._publish_progress()
        wait = max(0.0, min(self._next_scan, self._next_poll) - time.monotonic())
        if self.s.stagger and self._has_ready():
            wait = min(wait, max(0.0, self._last_issue + self.s.stagger - time.monotonic()))
        self.process_events(wait)

    def close(self, wait: bool = True) -> None:
        self.stop.set()
        self.pool.shutdown(wait=wait)
        self.process_events(0)

    # --- 1. scan records, check evidence, claim -------------------------------------------
    def scan(self) -> None:
        try:
            values = self.records.get_all(rec.ATTRIBUTE)
        except ClusterAttributeError as err:
            self._say("*records", logging.WARNING, f"cannot read the evacuation records: {err}")
            return
        self._said.pop("*records", None)
        records = {node: r for node, r in ((n, rec.parse(v)) for n, v in values.items()) if r is not None}
        active = {n: r for n, r in records.items() if r.state in (rec.REQUESTED, rec.RUNNING)}
        for node in list(self.hosts):
            if node not in active and node not in self._finish_pending:
                self.log.info("evacuation record of %s was cleared or finished elsewhere: no longer tracked", node)
                self.hosts.pop(node, None)
        for node, host in self.hosts.items():
            if host.blocked and time.monotonic() >= self._gate_next.get(node, 0):
                self._recheck_blocked(host)
        new = [n for n in active if n not in self.hosts and time.monotonic() >= self._gate_next.get(n, 0)]
        if not new:
            return
        # One round trip for everything: the fence evidence (service list) and, speculatively, the
        # listings the plan needs (reads only; nothing is issued before the evidence is checked).
        f_services = self.pool.submit(self.nova.compute_services)
        facts = self._prefetch_facts()
        prefetch = {}
        for node in new:
            stored = self.store.load(node)
            if node not in self.refused and (stored is None or stored.epoch != int(active[node].since or 0)):
                prefetch[node] = self._prefetch_host(node, int(active[node].since or self.clock()))
        try:
            services = f_services.result()
        except NovaError as err:
            self._say("*nova", logging.WARNING, f"Nova unavailable, evacuations wait: {err}")
            return
        self._said.pop("*nova", None)
        cloud = guard.cloud_state(records, services, lambda n: getattr(self._match(n, services), "host", None))
        budgets = self._budgets(facts)
        for node in sorted(new, key=lambda n: active[n].since):
            record = active[node]
            if self.s.paused:  # the operator's maintenance switch: requests stay recorded, in order
                self._gate_next[node] = time.monotonic() + self.s.gate_recheck
                self._say(node, logging.WARNING, f"{node} not evacuated: evacuation is paused by the operator "
                                                 f"(paused=true; `computeha resume` processes the recorded requests)")
                self._set_progress(node, PROGRESS_PAUSED)
                self.refused.add(node)
                continue
            service = self._match(node, services)
            why = fence_evidence(service)
            if why is not None or service is None:
                self._gate_next[node] = time.monotonic() + self.s.gate_recheck
                self._say(node, logging.WARNING, f"{node} is flagged for evacuation but {why}: left alone")
                self.refused.add(node)
                continue
            verdict = (guard.BUDGETS_UNREADABLE if budgets is None
                       else guard.judge(service.host, cloud, self.limits, budgets))
            resuming = record.state == rec.RUNNING and record.detail.startswith(self.node)
            if verdict.blocked and not resuming:
                self._gate_next[node] = time.monotonic() + self.s.gate_recheck
                level = logging.CRITICAL if verdict.critical else logging.WARNING
                self._say(node, level, f"{node} not evacuated: {verdict.reason}")
                self._set_progress(node, verdict.progress)
                self.refused.add(node)
                continue
            try:
                self.claim(node, record, service, services,
                           prefetch.get(node) if service.host == node else None, facts)
            except NovaError as err:
                self._gate_next[node] = time.monotonic() + self.s.gate_recheck
                self._say(node, logging.WARNING, f"cannot plan the evacuation of {node} yet: {err}")
            except ClusterAttributeError as err:
                self._gate_next[node] = time.monotonic() + self.s.gate_recheck
                self._say(node, logging.WARNING, f"cannot claim {node}: {err}")

    def _budgets(self, facts: dict) -> Optional[List[guard.Budget]]:
        """The aggregates' failure budgets (None: Nova did not answer); bad metadata is logged and ignored."""
        try:
            budgets, problems = guard.budgets(facts["aggregates"].result())
        except NovaError as err:
            self._say("*aggregates", logging.WARNING, f"cannot read the host aggregates: {err}")
            return None
        self._said.pop("*aggregates", None)
        for problem in problems:
            self._say("*budget:" + problem.split(":", 1)[0], logging.WARNING, problem)
        return budgets

    def _prefetch_host(self, nova_host: str, epoch: int) -> tuple:
        # no changes-since: Nova filters it on updated_at, which stays NULL while a migration is
        # `accepted`; the records are filtered on created_at here instead
        return (self.pool.submit(self.nova.servers_on_host, nova_host),
                self.pool.submit(self.nova.migrations, source_host=nova_host, created_after=epoch - CLOCK_SLACK))

    def _prefetch_facts(self) -> dict:
        """Futures of the cloud-wide selection facts (images by tag, aggregates), one call each."""
        out = {"exclude": [self.pool.submit(self.nova.images_with_tag, t) for t in self.s.exclude_image_tags],
               "aggregates": self.pool.submit(self.nova.aggregates)}  # the failure budgets need them too
        if self.s.selection != "all":
            out["images"] = self.pool.submit(self.nova.images_with_tag, self.s.marker)
        return out

    def claim(self, node: str, record: rec.EvacuationRecord, service: Service, services: Sequence[Service],
              prefetched: Optional[tuple] = None, facts: Optional[dict] = None) -> None:
        epoch = int(record.since or self.clock())
        host = self.store.load(node)
        if host is None or host.epoch != epoch or host.nova_host != service.host:
            if prefetched is None:
                prefetched = self._prefetch_host(service.host, epoch)
            host = self.plan(node, service.host, epoch, prefetched, facts or self._prefetch_facts())
            resumed = False
        else:
            resumed = True
            for inst in host.instances.values():
                if inst.state == PENDING and inst.attempts:
                    inst.state = ISSUING  # attempted before: inspect Nova before any new call
                if inst.state == INFLIGHT:
                    inst.inflight_since = self.clock()  # its timeout starts again with this run
        host.claimed_by = self.node
        host.blocked = ""
        self.refused.discard(node)
        self._planned[node] = time.monotonic() if not resumed else 0.0
        claim_value = rec.EvacuationRecord(rec.RUNNING, epoch, self.node).format()
        if record.format() != claim_value:
            # written after the first evacuate calls went out (see step): a kill before it only
            # means the next run plans again, and finds those evacuations under way in Nova
            self._claim_pending[node] = claim_value
        self.store.save(host)
        self.hosts[node] = host
        self._said.pop(node, None)
        counts = host.counts()
        self.log.info("%s %s (Nova host %s, requested %s): %d instances: %s", "resumed" if resumed else "claimed",
                      node, service.host, iso_utc(epoch), len(host.instances),
                      ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none")
        if self.s.target_aggregate:
            self._load_targets(services, node)
        self._reason_pending[node] = f"evacuation by {self.node} since {iso_utc(self.clock())}"
        self._set_progress(node, host.summary())
        if host.finished:
            self._finish(host)

    def plan(self, node: str, nova_host: str, epoch: int, prefetched: tuple, facts: dict) -> HostProgress:
        """List the host's servers once and decide each one; adopt evacuations already under way."""
        f_servers, f_migs = prefetched
        servers = f_servers.result()
        migrations = self._our_migrations(f_migs.result(), nova_host, epoch)
        markers = self._markers(servers, facts)
        host = HostProgress(node=node, nova_host=nova_host, epoch=epoch)
        by_instance: Dict[str, List[Migration]] = {}
        for mig in migrations:
            by_instance.setdefault(mig.instance_uuid, []).append(mig)
        for server in servers:
            decision = sel.decide(server, self.s, markers)
            inst = InstanceProgress(id=server.id, name=server.name, priority=decision.priority,
                                    expect_status=decision.expect_status, disk=decision.disk,
                                    reason=decision.reason)
            migs = by_instance.get(server.id, [])
            if any(m.status in IN_PROGRESS_MIGRATION for m in migs) or server.task_state is not None:
                if any(m.status in IN_PROGRESS_MIGRATION for m in migs):
                    inst.state, inst.reason = INFLIGHT, "evacuation already under way"
                    inst.expect_status, inst.inflight_since = "ANY", self.clock()
                else:
                    inst.state, inst.reason = REPORTED, f"task {server.task_state} in progress, not ours"
            elif decision.action == sel.EVACUATE:
                inst.state = PENDING
            elif decision.action == sel.SKIP:
                inst.state = SKIPPED
            else:
                inst.state = REPORTED
            if inst.state in (SKIPPED, REPORTED):
                self.log.info("%s: instance %s (%s) not evacuated: %s", node, server.id, server.name, inst.reason)
            host.instances[server.id] = inst
        # instances already moved since the request (by an earlier run or by hand) count as done
        for uuid, migs in by_instance.items():
            if uuid not in host.instances and any(m.status in FINISHED_MIGRATION for m in migs):
                done = [m for m in migs if m.status in FINISHED_MIGRATION][0]
                host.instances[uuid] = InstanceProgress(id=uuid, state=DONE, dest=done.dest_compute or "",
                                                        reason="evacuated before this claim", expect_status="ANY")
        return host

    def _markers(self, servers: Sequence[Server], facts: dict) -> sel.CloudMarkers:
        excluded = set(self.s.exclude_image_ids)
        for future in facts["exclude"]:
            excluded.update(img.id for img in future.result())
        if self.s.selection == "all":
            return sel.cloud_markers("all", self.s.marker, servers, excluded)
        return sel.cloud_markers(self.s.selection, self.s.marker, servers, excluded, facts["images"].result(),
                                 facts["aggregates"].result(),
                                 lambda: flavor_marker_values(self.nova, self.s.marker, self.log))

    def _our_migrations(self, migrations: Sequence[Migration], nova_host: str, epoch: int) -> List[Migration]:
        # `completed` is never this request's: a record becomes completed only when its source nova-compute
        # starts again, which NovaCompute holds until this request is finished. Within CLOCK_SLACK it is the
        # host's previous failure, and counting it would skip an instance that has come back to the host since.
        return [m for m in migrations if m.migration_type in ("evacuation", "") and m.source_compute == nova_host
                and m.status != "completed" and nova_time(m.created_at) >= epoch - CLOCK_SLACK]

    def _load_targets(self, services: Sequence[Service], failed_node: str) -> None:
        try:
            aggs = [a for a in self.nova.aggregates() if a.name == self.s.target_aggregate]
        except NovaError as err:
            self.log.warning("cannot read aggregate %s, the scheduler chooses: %s", self.s.target_aggregate, err)
            return
        hosts = {h for a in aggs for h in a.hosts}
        usable = [s.host for s in services if s.binary == "nova-compute" and s.host in hosts and s.state == "up"
                  and s.status == "enabled" and not s.forced_down]
        if not usable:
            self.log.warning("aggregate %s has no usable host, the scheduler chooses", self.s.target_aggregate)
        self._targets = sorted(usable)
        for h in self._targets:
            self._target_load.setdefault(h, 0)

    def _pick_target(self) -> Optional[str]:
        if not self._targets:
            return None
        best = min(self._targets, key=lambda h: (self._target_load.get(h, 0), h))
        self._target_load[best] = self._target_load.get(best, 0) + 1
        return best

    def _recheck_blocked(self, host: HostProgress) -> None:
        self._gate_next[host.node] = time.monotonic() + self.s.gate_recheck
        try:
            service = self._match(host.node, self.nova.compute_services(host.nova_host))
        except NovaError:
            return
        why = fence_evidence(service)
        if why is None:
            self.log.info("%s: fence evidence is back, evacuation continues", host.node)
            host.blocked = ""
        else:
            self._say(host.node, logging.WARNING, f"{host.node}: evacuation paused: {why}")

    # --- 2. dispatch ------------------------------------------------------------------------
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
        for inst_id, node in list(self._to_confirm.items()):
            if len(self.running) >= self.s.api_concurrency:
                return
            del self._to_confirm[inst_id]
            host = self.hosts.get(node)
            inst = host.instances.get(inst_id) if host is not None else None
            if host is None or inst is None or inst.state != INFLIGHT or inst_id in self.running:
                continue  # finished or handed back meanwhile
            self.running[inst_id] = node
            self.pool.submit(self._task, host, inst, "confirm", None)

    def _dispatch_evacuations(self) -> None:
        self._relist_stale()
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
            if mode == "issue" and time.monotonic() - self._planned.get(host.node, 0.0) > self.fresh_listing:
                if host.node in self._relisting:
                    continue  # a new listing is on its way: one call for all, not two per instance
                mode = "recheck"  # the listing is old and cannot be renewed now: look at this server first
            if mode == "issue":
                self._mark_issuing(host, inst)
                self._last_issue = time.monotonic()
            else:
                inst.state = ISSUING
            self.running[inst.id] = host.node
            per_host[host.node] = per_host.get(host.node, 0) + 1
            total += 1
            self.pool.submit(self._task, host, inst, mode, self._pick_target())

    def _relist_stale(self) -> None:
        """List again, in the background, the servers of a host whose listing is getting old.

        A first evacuate call is made only from a listing that shows the instance idle on the
        failed host, and a listing is trusted for `fresh_listing` seconds. When a host still
        has instances to issue after that (slow or distant Nova, caps, a resumed run), one new
        listing of its servers and migrations renews it for all of them; without it each one
        would be inspected on its own (a server read and a migration listing per instance,
        before its evacuate call, in the same call slots).
        """
        now = time.monotonic()
        for host in list(self.hosts.values()):
            node = host.node
            if node in self._relisting or host.blocked or now < self._relist_next.get(node, 0.0):
                continue
            if now - self._planned.get(node, 0.0) <= self.fresh_listing * RELIST_AT:
                continue
            if not any(i.state == PENDING and i.id not in self.running for i in host.instances.values()):
                continue
            self._relisting.add(node)
            self.pool.submit(self._relist, host)

    def _relist(self, host: HostProgress) -> None:
        started = time.monotonic()
        try:
            # servers first, then migrations (as inspect does): an evacuation that ends its rebuild
            # between the two shows in the migration listing
            servers: Optional[List[Server]] = self.nova.servers_on_host(host.nova_host)
            migs: Optional[List[Migration]] = self._host_migrations(host)
        except Exception as err:  # noqa: BLE001 - the instances are then inspected one by one
            self.log.debug("%s: cannot list the host's servers again: %s", host.node, err)
            servers = migs = None
        self.events.put((host.node, RELISTED, Outcome(O_RELISTED, at=started, migrations=migs, servers=servers)))

    def _relisted(self, node: str, started: float, servers: Optional[List[Server]],
                  migs: Optional[List[Migration]]) -> None:
        """Main thread: renew the listing of a host, or send what changed since to be inspected one by one."""
        self._relisting.discard(node)
        host = self.hosts.get(node)
        if host is None or self.stop.is_set():
            return
        if servers is None or migs is None:
            self._relist_next[node] = time.monotonic() + self.s.gate_recheck
            return
        idle = {s.id for s in servers if s.host == host.nova_host and s.task_state is None}
        busy = {m.instance_uuid for m in migs if _under_way_or_done(m)}
        changed = 0
        with self.lock:
            for inst in host.instances.values():
                # only instances never issued by this run (PENDING); one issued since the listing
                # started is ISSUING or later and its own call decides
                if inst.state == PENDING and inst.id not in self.running and (
                        inst.id not in idle or inst.id in busy):
                    inst.state = ISSUING  # inspected on its own before any call (done, moved, under way, gone)
                    changed += 1
            if changed:
                self.store.save(host)
        if changed:
            self.log.info("%s: %d instances changed since the last listing: inspected one by one", node, changed)
        self._planned[node] = started

    def _mark_issuing(self, host: HostProgress, inst: InstanceProgress) -> None:
        """Persist the intent BEFORE the call: a kill after it leaves an in-doubt instance, never a silent one."""
        with self.lock:
            inst.state = ISSUING
            inst.attempts += 1
            inst.overdue = False
            inst.issued_at = self.clock()
            self.store.save(host)

    # --- 3a. one instance: issue the evacuation (runs in a pool thread) ---------------------------
    def _task(self, host: HostProgress, inst: InstanceProgress, mode: str, target: Optional[str]) -> None:
        try:
            outcome = self._confirm(host, inst) if mode == "confirm" else self._evacuate(host, inst, mode, target)
        except Exception as err:  # never lose an instance to a bug: it becomes in doubt
            self.log.error("%s: instance %s: unexpected %s: %s", host.node, inst.id, type(err).__name__, err)
            outcome = Outcome(O_DOUBT, f"{type(err).__name__}: {err}")
        self.events.put((host.node, inst.id, outcome))

    def _evacuate(self, host: HostProgress, inst: InstanceProgress, mode: str, target: Optional[str]) -> Outcome:
        if mode == "recheck":
            try:
                seen = self.inspect(host, inst)
            except NovaNotFound:
                return Outcome(O_GONE, "server deleted")
            except NovaError as err:
                return Outcome(O_DEFER, f"cannot inspect: {err}")
            if seen.kind != "idle":
                return seen  # done, failed, or an evacuation under way (adopted, never re-issued)
            if inst.issued_at and self.clock() < inst.issued_at + self.s.in_doubt_grace:
                # an earlier call may still be inside nova-api: look again after the grace
                return Outcome(O_DEFER, "earlier evacuate call in doubt", at=inst.issued_at + self.s.in_doubt_grace)
            if inst.attempts:
                why = self._no_target(host)
                if why:
                    return Outcome(O_DEFER, why, at=self.clock() + self.s.gate_recheck)
            self._mark_issuing(host, inst)  # re-issue: a new intent, persisted first
        with self.lock:
            now = time.time()
            if self.first_issue_at is None:
                self.first_issue_at = now
            first_key = f"{host.node}@{host.epoch}"  # per request: a host fenced again gets its line again
            if first_key not in self._first_call:
                self._first_call[first_key] = now
                self.log.info("%s: first evacuate call at %.3f, %.1fs after the request", host.node, now,
                              now - host.epoch)
        try:
            self.nova.evacuate(inst.id, target)
        except NovaBadRequest as err:
            if "in use" in str(err).lower():
                return Outcome(O_BLOCKED, str(err))
            return Outcome(O_RETRY, f"evacuate refused: {err}")
        except NovaConflict as err:
            try:
                seen = self.inspect(host, inst)
            except NovaError:
                return Outcome(O_DOUBT, f"evacuate refused ({err}) and cannot inspect")
            return Outcome(O_RETRY, f"evacuate refused: {err}") if seen.kind == "idle" else seen
        except NovaNotFound:
            return Outcome(O_GONE, "server deleted")
        except (NovaAuthError, NovaForbidden) as err:
            return Outcome(O_DEFER, f"credentials: {err}")  # refused before any processing
        except NovaError as err:
            return Outcome(O_DOUBT, f"no answer to evacuate: {err}")
        return Outcome(O_ADOPT, "accepted")

    def _no_target(self, host: HostProgress) -> str:
        """Why a retry would find no target now, or "": Nova reports no other nova-compute up.

        After a message-bus or control-plane outage every nova-compute reads down until its next
        heartbeat; an evacuation then fails in the scheduler (no valid host) at once, and retries
        would spend every attempt in seconds on a recovery that only has to wait."""
        try:
            services = self.nova.compute_services()
        except NovaError as err:
            return f"cannot list the compute services before the retry: {err}"
        if any(s.binary == "nova-compute" and s.host != host.nova_host and s.state == "up"
               and s.status == "enabled" and not s.forced_down for s in services):
            return ""
        return "Nova reports no other nova-compute up and enabled: the retry waits until one is"

    def _host_migrations(self, host: HostProgress) -> List[Migration]:
        """Our evacuation records of a failed host, one listing reaching back only to its request."""
        return self._our_migrations(
            self.nova.migrations(source_host=host.nova_host, created_after=host.epoch - CLOCK_SLACK),
            host.nova_host, host.epoch)

    def _migrations_of(self, host: HostProgress, inst: InstanceProgress) -> List[Migration]:
        return self._our_migrations(self.nova.migrations(instance_uuid=inst.id), host.nova_host, host.epoch)

    def inspect(self, host: HostProgress, inst: InstanceProgress) -> Outcome:
        """What Nova says about this instance's evacuation: done / failed / adopt (under way) / idle.

        nova-api sets task_state=rebuilding before it creates the migration record and
        answers; the compute clears task_state when the rebuild ends, and only later
        finish_evacuation moves the host and marks the migration done. So "idle" needs
        both: task_state None AND no evacuation migration of ours in progress.
        """
        server = self.nova.server(inst.id)
        if server.task_state is not None:
            return Outcome(O_ADOPT, f"task {server.task_state} under way")
        migs = self._migrations_of(host, inst)
        if server.host and server.host != host.nova_host:
            return self._arrived(server, inst, migs)
        # the rebuild may be over (task_state None) while the host has not moved yet:
        # finish_evacuation moves it and ends the migration later, after a lock that is
        # contended under load; the migration record is the only proof then
        under_way = [m for m in migs if _under_way_or_done(m)]
        if under_way:
            return Outcome(O_ADOPT, f"migration {under_way[-1].status}, host not moved yet")
        return Outcome("idle")

    def _arrived(self, server: Server, inst: InstanceProgress, migs: Sequence[Migration]) -> Outcome:
        if server.status == "ERROR":
            return Outcome(O_FAILED, f"ERROR on {server.host} after evacuation", server.host)
        if migs and not any(m.status in FINISHED_MIGRATION for m in migs):
            return Outcome(O_ADOPT, "moved, migration record not final yet")
        if inst.expect_status not in ("ANY", server.status):
            self.log.warning("instance %s is %s on %s (was %s before)", inst.id, server.status, server.host,
                             inst.expect_status)
        return Outcome(O_DONE, f"{server.status} on {server.host}", server.host)

    # --- 3b. confirmation: one migration listing per failed host, one GET per finished instance (in the call
    #         slots the evacuate calls leave free, see dispatch) -------------------------------------------
    def poll(self) -> None:
        """Start one migration listing per failed host with instances in flight (in a pool thread).

        The listing runs off the main thread: under load it takes longer than an evacuate
        call, and the main thread must keep dispatching meanwhile. Its result comes back
        through the event queue (see _polled); one listing per host at a time.
        """
        for host in list(self.hosts.values()):
            if host.node in self._polling:
                continue
            if not any(i.state == INFLIGHT and i.id not in self.running for i in host.instances.values()):
                continue
            self._polling.add(host.node)
            self.pool.submit(self._list_migrations, host)

    def _list_migrations(self, host: HostProgress) -> None:
        started = self.clock()
        try:
            migs: Optional[List[Migration]] = self._host_migrations(host)
        except Exception as err:  # noqa: BLE001 - a failed listing is just tried again next cycle
            self.log.debug("%s: cannot list migrations yet: %s", host.node, err)
            migs = None
        self.events.put((host.node, POLLED, Outcome(O_POLLED, at=started, migrations=migs)))

    def _polled(self, node: str, started: float, migs: Optional[List[Migration]]) -> None:
        """Main thread: act on a finished migration listing of a failed host."""
        self._polling.discard(node)
        host = self.hosts.get(node)
        if host is None or migs is None or self.stop.is_set():  # stopping: the pool takes no new task
            return
        now = self.clock()
        latest: Dict[str, Migration] = {}
        for listed in migs:  # the newest record per instance
            old = latest.get(listed.instance_uuid)
            if old is None or ((nova_time(listed.created_at), _num(listed.id))
                               >= (nova_time(old.created_at), _num(old.id))):
                latest[listed.instance_uuid] = listed
        # only instances already in flight when the listing started: a later one may not be in it yet
        waiting = [i for i in host.instances.values()
                   if i.state == INFLIGHT and i.id not in self.running and i.inflight_since <= started]
        for inst in waiting:
            mig = latest.get(inst.id)
            status = mig.status if mig else ""
            if status in FINISHED_MIGRATION:
                self._to_confirm[inst.id] = host.node  # dispatch() starts it when a call slot is free
            elif status in FAILED_MIGRATION:
                self._apply(host.node, inst.id, Outcome(O_RETRY, f"evacuation {status} in Nova"))
            elif now - inst.inflight_since > self.s.evacuation_timeout:
                # the next attempt inspects Nova first: it waits again rather than re-issue over it
                with self.lock:
                    inst.overdue = True
                self._apply(host.node, inst.id, Outcome(O_RETRY, self._overdue(mig)))
            elif mig is None and started - inst.inflight_since > self.s.in_doubt_grace:
                self._apply(host.node, inst.id, Outcome(O_DEFER, "no migration record: inspecting", at=now))

    def _overdue(self, mig: Optional[Migration]) -> str:
        """Why an evacuation is not back in time, in words an operator can act on."""
        text = f"not back after {self.s.evacuation_timeout:.0f}s"
        if mig is not None and mig.status == "accepted":
            where = f", scheduled to {mig.dest_compute}" if mig.dest_compute else ""
            text += (f"; Nova still shows the evacuation `accepted`{where} and no compute has started it: a dead "
                     "target nova-compute, a busy scheduler, or a request lost in RabbitMQ (known limit: "
                     "the agent never issues a second one over it; operator: nova reset-state --active, evacuate)")
        return text

    def _confirm(self, host: HostProgress, inst: InstanceProgress) -> Outcome:
        try:
            server = self.nova.server(inst.id)
        except NovaNotFound:
            return Outcome(O_GONE, "server deleted")
        except NovaError as err:
            return Outcome(O_STILL, f"cannot read yet: {err}")
        if server.task_state is not None:
            return Outcome(O_STILL)
        if server.host == host.nova_host:
            return Outcome(O_RETRY, f"evacuation ended on the source (server {server.status})")
        return self._arrived(server, inst, [])

    # --- 4. outcomes (main thread) ------------------------------------------------------------
    def process_events(self, timeout: float) -> None:
        try:
            item = self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
        except queue.Empty:
            return
        while True:
            self._apply(*item)
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return

    def _apply(self, node: str, inst_id: str, outcome: Outcome) -> None:
        if outcome.kind == O_POLLED:
            self._polled(node, outcome.at, outcome.migrations)
            return
        if outcome.kind == O_RELISTED:
            self._relisted(node, outcome.at, outcome.servers, outcome.migrations)
            return
        host = self.hosts.get(node)
        if host is None:
            self.running.pop(inst_id, None)
            return
        inst = host.instances[inst_id]
        now = self.clock()
        self.running.pop(inst_id, None)
        if outcome.kind == O_STILL:
            return
        with self.lock:
            if outcome.kind == O_ADOPT:  # accepted by Nova, or found under way: confirmed by poll()
                inst.state, inst.inflight_since = INFLIGHT, now
                if inst.overdue:  # waiting again for the same evacuation is an attempt of its own
                    inst.waits, inst.overdue = inst.waits + 1, False
                if outcome.reason != "accepted":
                    self.log.info("%s: instance %s: %s, waiting for it", node, inst.id, outcome.reason)
            elif outcome.kind == O_DONE:
                inst.state, inst.dest, inst.reason = DONE, outcome.dest, outcome.reason
                self.log.info("%s: instance %s (%s) evacuated: %s", node, inst.id, inst.name, outcome.reason)
            elif outcome.kind == O_GONE:
                inst.state, inst.reason = REPORTED, outcome.reason
                self.log.info("%s: instance %s: %s", node, inst.id, outcome.reason)
            elif outcome.kind == O_FAILED or (outcome.kind == O_RETRY and inst.tries >= self.s.max_attempts):
                inst.state, inst.reason = FAILED, outcome.reason
                self.log.error("%s: instance %s (%s) failed for good after %d attempts: %s", node, inst.id,
                               inst.name, inst.tries, outcome.reason)
            elif outcome.kind == O_RETRY:
                inst.state, inst.reason = ISSUING, outcome.reason  # next attempt inspects Nova first
                inst.next_at = now + min(60.0, self.s.retry_backoff * 2 ** (inst.attempts - 1))
                self.log.warning("%s: instance %s attempt %d: %s; retry in %.0fs", node, inst.id, inst.tries,
                                 outcome.reason, inst.next_at - now)
            elif outcome.kind == O_DOUBT:
                inst.state, inst.reason = ISSUING, outcome.reason
                inst.attempts = max(0, inst.attempts - 1)  # an unanswered call is not a failed evacuation
                # the grace runs from the end of the unanswered call: nova-api may still be working on it
                inst.issued_at = now
                inst.next_at = now + self.s.in_doubt_grace
                self.log.warning("%s: instance %s in doubt (%s): Nova is re-checked in %.0fs", node, inst.id,
                                 outcome.reason, inst.next_at - now)
            elif outcome.kind == O_DEFER:  # the next attempt inspects Nova first
                inst.state = ISSUING if inst.attempts or inst.state == INFLIGHT else PENDING
                inst.next_at = outcome.at or now + 5.0
                self.log.info("%s: instance %s waits %.0fs: %s", node, inst.id, inst.next_at - now, outcome.reason)
            elif outcome.kind == O_BLOCKED:
                inst.attempts = max(0, inst.attempts - 1)
                inst.state = PENDING if inst.state == ISSUING else inst.state
                host.blocked = outcome.reason
                self._gate_next[node] = time.monotonic() + self.s.gate_recheck
                self.log.warning("%s: Nova refuses evacuation (%s): paused until the host is forced down", node,
                                 outcome.reason)
            self.store.save(host)
        # per outcome only remembered: published at most once per PROGRESS_INTERVAL (step), and at the end
        self._progress_due[node] = host.summary()
        if host.finished:
            self._finish(host)

    def _finish(self, host: HostProgress) -> None:
        failed = [i for i in host.instances.values() if i.state == FAILED]
        summary = host.summary()
        self._progress_due.pop(host.node, None)
        self._set_progress(host.node, summary)
        if failed:
            value = rec.new(rec.FAILED, f"{summary} {len(failed)} failed: {failed[0].reason}"[:200], self.clock())
            self.log.error("evacuation of %s finished with failures: %s", host.node, value.detail)
        else:
            value = rec.new(rec.DONE, summary, self.clock())
            self.log.info("evacuation of %s done: %s instances evacuated", host.node, summary)
        self._finish_pending[host.node] = value.format()
        self._reason_pending[host.node] = f"evacuation {value.state} {value.detail} at {iso_utc(self.clock())}"
        self._flush_side_records()

    def _flush_side_records(self) -> None:
        for node, value in list(self._claim_pending.items()):
            try:
                self.records.set(node, rec.ATTRIBUTE, value)
                self._claim_pending.pop(node, None)
            except ClusterAttributeError as err:
                self._say(node, logging.WARNING, f"cannot record the claim of {node} yet: {err}")
        for node, value in list(self._finish_pending.items()):
            if node in self._claim_pending:
                continue
            try:
                self.records.set(node, rec.ATTRIBUTE, value)
            except ClusterAttributeError as err:
                self._say(node, logging.WARNING, f"cannot record the end of {node}'s evacuation yet: {err}")
                continue
            self._finish_pending.pop(node, None)
            self.hosts.pop(node, None)
        for node, text in list(self._reason_pending.items()):
            if self.running and node in self.hosts:
                continue  # not while evacuations are in flight: never slow down the first calls
            self._reason_pending.pop(node, None)
            host_name = self.store.load(node)
            try:
                services = self.nova.compute_services(host_name.nova_host if host_name else node)
                service = self._match(node, services)
                if service is not None and service.status == "disabled" and (
                        rec.is_ours(service.disabled_reason) or not service.disabled_reason):
                    self.nova.set_enabled(service, False, rec.disabled_reason(text))
            except NovaError as err:
                self.log.debug("cannot update the disabled reason of %s: %s", node, err)

    def _publish_progress(self) -> None:
        """The progress attributes that changed since the last time (one write per node, not per outcome:
        in a cluster each write is an attrd_updater run on the main thread)."""
        self._next_progress = time.monotonic() + PROGRESS_INTERVAL
        for node, text in list(self._progress_due.items()):
            self._progress_due.pop(node, None)
            self._set_progress(node, text)

    def _set_progress(self, node: str, text: str) -> None:
        if self.progress is None:
            return
        try:
            self.progress.set(node, rec.PROGRESS_ATTRIBUTE, text)
        except ClusterAttributeError as err:
            self.log.debug("cannot publish progress of %s: %s", node, err)
