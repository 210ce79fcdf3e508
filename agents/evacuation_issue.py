"""One instance's calls to Nova, run in a pool thread: evacuate, inspect, confirm; each ends in an Outcome.

Never two evacuations of one instance: a first call is made only from a fresh listing showing it idle
(the engine decides that, mode "issue"); every later attempt ("recheck") first inspects Nova (task_state,
evacuation migrations since the request) and only calls again if nothing is under way, and not within
`in_doubt_grace` of an unanswered call. The intent is persisted before each call (mark_issuing).
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

from computeha.ocf_lib.nova import (
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
    nova_time,
)

from .evacuation_outcome import Kind, Outcome
from .evacuation_shared import InstanceOutcome, Shared
from .evacuation_store import ISSUING, HostProgress, InstanceProgress

CLOCK_SLACK = 120  # seconds of clock skew tolerated between controllers and Nova when matching migrations


def under_way_or_done(mig: Migration) -> bool:
    """An evacuation record that forbids a new evacuate call: still running, or finished."""
    return mig.status in IN_PROGRESS_MIGRATION or mig.status in FINISHED_MIGRATION


def our_migrations(migrations: Sequence[Migration], nova_host: str, epoch: int) -> List[Migration]:
    """The evacuation records of this request among a listing."""
    # `completed` is never this request's: a record becomes completed only when its source nova-compute
    # starts again, which NovaCompute holds until this request is finished. Within CLOCK_SLACK it is the
    # host's previous failure, and counting it would skip an instance that has come back to the host since.
    return [m for m in migrations if m.migration_type in ("evacuation", "") and m.source_compute == nova_host
            and m.status != "completed" and nova_time(m.created_at) >= epoch - CLOCK_SLACK]


def host_migrations(nova: Nova, host: HostProgress) -> List[Migration]:
    """Our evacuation records of a failed host, one listing reaching back only to its request."""
    return our_migrations(nova.migrations(source_host=host.nova_host, created_after=host.epoch - CLOCK_SLACK),
                          host.nova_host, host.epoch)


class Issuer:
    def __init__(self, shared: Shared) -> None:
        self.sh = shared
        self.first_issue_at: Optional[float] = None
        self._first_call: Dict[str, float] = {}  # "node@epoch" -> wall clock of its first evacuate call

    def task(self, host: HostProgress, inst: InstanceProgress, mode: str, target: Optional[str]) -> None:
        """Pool thread: "issue", "recheck" or "confirm" one instance; the outcome goes to the event queue."""
        try:
            outcome = self.confirm(host, inst) if mode == "confirm" else self.evacuate(host, inst, mode, target)
        except Exception as err:  # never lose an instance to a bug: it becomes in doubt
            self.sh.log.error("%s: instance %s: unexpected %s: %s", host.node, inst.id, type(err).__name__, err)
            outcome = Outcome(Kind.DOUBT, f"{type(err).__name__}: {err}")
        self.sh.events.put(InstanceOutcome(host.node, inst.id, outcome))

    def mark_issuing(self, host: HostProgress, inst: InstanceProgress) -> None:
        """Persist the intent BEFORE the call: a kill after it leaves an in-doubt instance, never a silent one."""
        with self.sh.lock:
            inst.state = ISSUING
            inst.attempts += 1
            inst.overdue = False
            inst.issued_at = self.sh.clock()
            self.sh.store.save(host)

    def evacuate(self, host: HostProgress, inst: InstanceProgress, mode: str, target: Optional[str]) -> Outcome:
        sh = self.sh
        if mode == "recheck":
            try:
                seen = self.inspect(host, inst)
            except NovaNotFound:
                return Outcome(Kind.GONE, "server deleted")
            except NovaError as err:
                return Outcome(Kind.DEFER, f"cannot inspect: {err}")
            if seen.kind is not Kind.IDLE:
                return seen  # done, failed, or an evacuation under way (adopted, never re-issued)
            if inst.issued_at and sh.clock() < inst.issued_at + sh.s.in_doubt_grace:
                # an earlier call may still be inside nova-api: look again after the grace
                return Outcome(Kind.DEFER, "earlier evacuate call in doubt", at=inst.issued_at + sh.s.in_doubt_grace)
            if inst.attempts:
                why = self.no_target(host)
                if why:
                    return Outcome(Kind.DEFER, why, at=sh.clock() + sh.s.gate_recheck)
            self.mark_issuing(host, inst)  # re-issue: a new intent, persisted first
        self._note_first_call(host)
        try:
            sh.nova.evacuate(inst.id, target)
        except NovaBadRequest as err:
            if "in use" in str(err).lower():
                return Outcome(Kind.BLOCKED, str(err))
            return Outcome(Kind.RETRY, f"evacuate refused: {err}")
        except NovaConflict as err:
            try:
                seen = self.inspect(host, inst)
            except NovaError:
                return Outcome(Kind.DOUBT, f"evacuate refused ({err}) and cannot inspect")
            return Outcome(Kind.RETRY, f"evacuate refused: {err}") if seen.kind is Kind.IDLE else seen
        except NovaNotFound:
            return Outcome(Kind.GONE, "server deleted")
        except (NovaAuthError, NovaForbidden) as err:
            return Outcome(Kind.DEFER, f"credentials: {err}")  # refused before any processing
        except NovaError as err:
            return Outcome(Kind.DOUBT, f"no answer to evacuate: {err}")
        return Outcome(Kind.ADOPT, "accepted")

    def _note_first_call(self, host: HostProgress) -> None:
        """Log the latency of a request's first evacuate call (wall clock: compared with the request time)."""
        with self.sh.lock:
            now = time.time()
            if self.first_issue_at is None:
                self.first_issue_at = now
            first_key = f"{host.node}@{host.epoch}"  # per request: a host fenced again gets its line again
            if first_key not in self._first_call:
                self._first_call[first_key] = now
                self.sh.log.info("%s: first evacuate call at %.3f, %.1fs after the request", host.node, now,
                                 now - host.epoch)

    def no_target(self, host: HostProgress) -> str:
        """Why a retry would find no target now, or "": Nova reports no other nova-compute up.

        After a message-bus or control-plane outage every nova-compute reads down until its next
        heartbeat; an evacuation then fails in the scheduler (no valid host) at once, and retries
        would spend every attempt in seconds on a recovery that only has to wait."""
        try:
            services = self.sh.nova.compute_services()
        except NovaError as err:
            return f"cannot list the compute services before the retry: {err}"
        if any(s.host != host.nova_host and s.takes_instances for s in services):
            return ""
        return "Nova reports no other nova-compute up and enabled: the retry waits until one is"

    def inspect(self, host: HostProgress, inst: InstanceProgress) -> Outcome:
        """What Nova says about this instance's evacuation: done / failed / adopt (under way) / idle.

        nova-api sets task_state=rebuilding before it creates the migration record and
        answers; the compute clears task_state when the rebuild ends, and only later
        finish_evacuation moves the host and marks the migration done. So "idle" needs
        both: task_state None AND no evacuation migration of ours in progress.
        """
        server = self.sh.nova.server(inst.id)
        if server.task_state is not None:
            return Outcome(Kind.ADOPT, f"task {server.task_state} under way")
        migs = our_migrations(self.sh.nova.migrations(instance_uuid=inst.id), host.nova_host, host.epoch)
        if server.host and server.host != host.nova_host:
            return self._arrived(server, inst, migs)
        # the rebuild may be over (task_state None) while the host has not moved yet:
        # finish_evacuation moves it and ends the migration later, after a lock that is
        # contended under load; the migration record is the only proof then
        under_way = [m for m in migs if under_way_or_done(m)]
        if under_way:
            return Outcome(Kind.ADOPT, f"migration {under_way[-1].status}, host not moved yet")
        return Outcome(Kind.IDLE)

    def _arrived(self, server: Server, inst: InstanceProgress, migs: Sequence[Migration]) -> Outcome:
        if server.status == "ERROR":
            return Outcome(Kind.FAILED, f"ERROR on {server.host} after evacuation", server.host)
        if migs and not any(m.status in FINISHED_MIGRATION for m in migs):
            return Outcome(Kind.ADOPT, "moved, migration record not final yet")
        if inst.expect_status not in ("ANY", server.status):
            self.sh.log.warning("instance %s is %s on %s (was %s before)", inst.id, server.status, server.host,
                                inst.expect_status)
        return Outcome(Kind.DONE, f"{server.status} on {server.host}", server.host)

    def confirm(self, host: HostProgress, inst: InstanceProgress) -> Outcome:
        """An instance whose migration is finished: where is it now (one GET)."""
        try:
            server = self.sh.nova.server(inst.id)
        except NovaNotFound:
            return Outcome(Kind.GONE, "server deleted")
        except NovaError as err:
            return Outcome(Kind.STILL, f"cannot read yet: {err}")
        if server.task_state is not None:
            return Outcome(Kind.STILL)
        if server.host == host.nova_host:
            return Outcome(Kind.RETRY, f"evacuation ended on the source (server {server.status})")
        return self._arrived(server, inst, [])


__all__ = ["Issuer", "CLOCK_SLACK", "our_migrations", "host_migrations", "under_way_or_done"]
