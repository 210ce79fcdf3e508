"""Return of a fenced compute host to service: the ordered steps of NovaCompute `start`.

fence_compute's `on` (unfencing) returns at once and changes nothing: all of
this happens here, because only this node can restart nova-compute, and Nova
refuses to clear forced_down (400) while `done` evacuation records of the host
remain; they become `completed` only when the host's own nova-compute starts
(init_host destroys the evacuated guests' leftovers). When step 2 would have to
wait, NovaCompute's `start` runs the whole sequence in a background process
and returns at once (see nova_compute.py): a Pacemaker action that waits for
another failure's recovery holds back the cluster's reaction to new failures.

    1. fenced?     record present, or the service is forced down / disabled with our reason
    2. wait        record done|failed (or gone) AND no in-progress evacuation from the host
                   (nova-compute must not run meanwhile: it would race the rebuilds)
    3. start       nova-compute, while the service is still forced down
    4. wait        no `done` evacuation records from the host remain (init_host completed them)
    5. force up    forced_down=false (retried while Nova still answers 400)
    6. wait        Nova reports the service up, with a heartbeat newer than steps 3 and 5
    7. enable      only if disabled with our `computeha:` reason: an operator's disable stays
                   (after 6, so that Nova syncs the placement trait with the running compute)
    8. clear       the cluster record

Every step re-reads the state, so a start killed at any line is simply rerun.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

from computeha.ocf_lib import evacuation_record as er
from computeha.ocf_lib.attrs import ClusterAttributeError, NodeAttributes
from computeha.ocf_lib.deadline import Deadline, DeadlineExceeded
from computeha.ocf_lib.exitcodes import AgentError, Ocf
from computeha.ocf_lib.nova import (
    Migration,
    Nova,
    NovaAuthError,
    NovaBadRequest,
    NovaError,
    NovaForbidden,
    NovaUnavailable,
    Service,
    in_progress,
)

from .compute_service import ComputeService

_UNREADABLE = object()


@dataclass
class Step:
    """Where the sequence is, for logs and exit reasons."""

    name: str = "checking"
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.detail})" if self.detail else self.name


class ReturnToService:
    def __init__(self, nova: Nova, attrs: NodeAttributes, service: ComputeService, host: str, node: str,
                 log: logging.Logger, evacuation_delay: float = 0.0, poll_interval: float = 1.0,
                 max_poll_interval: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.nova = nova
        self.attrs = attrs
        self.service = service
        self.host = host
        self.node = node
        self.log = log
        self.evacuation_delay = evacuation_delay
        self.interval = poll_interval
        self.max_interval = max_poll_interval
        # polls of Nova and the cluster wait on these (tests: a fake clock); process waits keep the real one
        self.clock = clock
        self.sleep = sleep
        self.step = Step()
        self._heartbeat_before: Optional[str] = None

    # -- reads ------------------------------------------------------------------------------
    def _nova(self, call: Callable, *args, **kwargs):
        """One Nova call; transient failures become None (the caller polls again)."""
        try:
            return call(*args, **kwargs)
        except NovaUnavailable as err:
            self.log.warning("Nova unavailable while %s: %s", self.step, err)
            return None
        except (NovaAuthError, NovaForbidden) as err:
            raise AgentError(f"Nova refused our credentials while {self.step}: {err}") from None

    def service_record(self) -> Optional[Service]:
        found = self._nova(self.nova.compute_services, self.host)
        if found is None:
            return None
        services = [s for s in found if s.binary == "nova-compute" and s.host == self.host]
        if not services:
            raise AgentError(f"Nova has no nova-compute service for host {self.host!r}", Ocf.ERR_ARGS)
        return services[0]

    def record(self):
        """The cluster record, None when unset, _UNREADABLE when the cluster cannot be asked."""
        try:
            return er.parse(self.attrs.get(self.node, er.ATTRIBUTE))
        except ClusterAttributeError as err:
            self.log.warning("cannot read %s of %s: %s", er.ATTRIBUTE, self.node, err)
            return _UNREADABLE

    def evacuations(self) -> Optional[List[Migration]]:
        return self._nova(self.nova.migrations, source_host=self.host, migration_type="evacuation")

    # -- the sequence --------------------------------------------------------------------------
    @staticmethod
    def fenced(record, svc: Service) -> bool:
        return ((record is not None and record is not _UNREADABLE) or svc.forced_down
                or (svc.status == "disabled" and er.is_ours(svc.disabled_reason)))

    def run(self, deadline: Deadline) -> None:
        svc = self._poll(deadline, self.service_record, "Nova to list the service")
        record = self.record()
        if self.fenced(record, svc):
            self.log.info("%s was fenced (record %s, forced_down=%s, status=%s): returning it to service",
                          self.host,
                          "unreadable" if record is _UNREADABLE else (record.format() if record else "unset"),
                          svc.forced_down, svc.status)
            self._wait_evacuation_finished(deadline)
        # Nova says "up" for service_down_time after the last heartbeat, even of a nova-compute that
        # died a second ago: only a heartbeat newer than this one proves OUR nova-compute is in service
        # (it heartbeats after init_host; instances scheduled here before that would be errored out).
        svc = self._poll(deadline, self.service_record, "Nova to list the service")
        self._heartbeat_before = svc.updated_at
        self.step = Step("starting nova-compute", self.service.describe())
        self.service.start(deadline)
        svc = self._poll(deadline, self.service_record, "Nova to list the service")
        if svc.forced_down:
            # our own write bumps updated_at too: only a change after it is a heartbeat
            self._heartbeat_before = self._force_up(deadline, svc).updated_at
        # Enable only once Nova sees the service up: Nova then tells the running nova-compute to drop
        # the COMPUTE_STATUS_DISABLED trait at once; enabled while "down", the trait stays until the
        # compute's next periodic resource update and the scheduler finds no room on the host meanwhile.
        self.step = Step("waiting for Nova to report the service up")
        svc = self._poll(deadline, self._up, f"nova-compute of {self.host} to be reported up")
        if svc.status == "disabled" and er.is_ours(svc.disabled_reason):
            self.step = Step("enabling the service", svc.disabled_reason)
            self._poll(deadline, lambda: self._nova(self.nova.set_enabled, svc, True), "the service to be enabled")
            self.log.info("enabled the nova-compute service of %s (was disabled by Instance HA)", self.host)
        elif svc.status == "disabled":
            self.log.info("the nova-compute service of %s stays disabled (reason %r is not ours)",
                          self.host, svc.disabled_reason)
        self._clear_record()
        self.log.info("nova-compute of %s is up and in service", self.host)

    def hold_reason(self) -> Optional[str]:
        """Why nova-compute must not start yet (this host was fenced and its evacuation is not
        finished, or that cannot be told right now), or None. One read of each source, no wait:
        `start` asks this to decide whether the return to service must go on in the background."""
        svc = self.service_record()
        if svc is None:
            return "Nova cannot be asked whether this host was fenced"
        record = self.record()
        if not self.fenced(record, svc):
            return None
        ready, detail = self._evacuation_state(record, svc)
        if ready is None:
            return "Nova cannot list the evacuations from this host"
        return None if ready else detail

    def _evacuation_state(self, record, svc: Optional[Service]):
        """(ready, detail): may nova-compute start, as far as this host's evacuation goes? ready is
        None when Nova cannot list the evacuations. ``svc`` is read here only when needed (an
        unreadable record) and not given."""
        migrations = self.evacuations()
        if migrations is None:
            return None, ""
        busy = in_progress(migrations)
        if record is _UNREADABLE:
            svc = svc if svc is not None else self.service_record()
            ready = svc is not None and not svc.forced_down and not busy
            state = "record unreadable"
        else:
            ready = (record is None or record.finished) and not busy
            state = f"record {record.state}" if record else "record unset"
        return ready, f"{state}, {len(busy)} evacuation(s) in progress"

    def _wait_evacuation_finished(self, deadline: Deadline) -> None:
        stopped = False
        seen = [""]

        def finished():
            ready, detail = self._evacuation_state(self.record(), None)
            if ready is None:
                return None
            if detail != seen[0]:
                self.log.info("%s: %s", self.step.name, detail)
                seen[0] = detail
            self.step.detail = detail
            return True if ready else None

        self.step = Step("waiting for the evacuation of this host to finish")
        if finished() is None and self.service.running():
            # started behind our back (e.g. a unit enabled at boot): it must not race the rebuilds
            self.log.warning("nova-compute runs while evacuations from %s are not finished: stopping it", self.host)
            self.service.stop(deadline)
            stopped = True
        self._poll(deadline, finished, "the evacuation of this host to finish")
        if stopped:
            self.log.info("evacuation finished; nova-compute will be started again")
        if self.evacuation_delay > 0:
            self.log.info("waiting evacuation_delay=%.0fs before starting nova-compute", self.evacuation_delay)
            deadline.on_clock(self.clock, self.sleep).sleep(self.evacuation_delay)

    def _force_up(self, deadline: Deadline, svc: Service) -> Service:
        self.step = Step("waiting for done evacuations to be completed by nova-compute")

        def forced_up():
            migrations = self.evacuations()
            if migrations is None:
                return None
            done = [m for m in migrations if m.status == "done"]
            if done:
                self.step.detail = f"{len(done)} still done"
                return None
            try:
                return self._nova(self.nova.force_down, svc, False)
            except NovaBadRequest as err:  # a record went done meanwhile, or Nova lags: try again
                self.step.detail = str(err)[:120]
                return None

        result = self._poll(deadline, forced_up, "Nova to accept forced_down=false")
        self.log.info("cleared forced_down of %s", self.host)
        return result

    def _clear_record(self) -> None:
        try:
            if self.attrs.get(self.node, er.ATTRIBUTE) is not None:
                self.attrs.delete(self.node, er.ATTRIBUTE)
                self.log.info("cleared %s of %s", er.ATTRIBUTE, self.node)
        except ClusterAttributeError as err:
            # Harmless for safety (the service is already back); the next start clears it.
            self.log.warning("cannot clear %s of %s: %s", er.ATTRIBUTE, self.node, err)

    def _up(self):
        svc = self.service_record()
        if svc is None:
            return None
        fresh = svc.updated_at != self._heartbeat_before
        self.step.detail = f"state={svc.state}, forced_down={svc.forced_down}, new heartbeat={fresh}"
        return svc if svc.state == "up" and not svc.forced_down and fresh else None

    def _poll(self, deadline: Deadline, probe: Callable, what: str):
        try:
            return deadline.on_clock(self.clock, self.sleep).poll(probe, interval=self.interval,
                                                                  max_interval=self.max_interval, what=what)
        except DeadlineExceeded as err:
            raise AgentError(f"{err} (last step: {self.step})") from None


def service_up(nova: Nova, host: str) -> Optional[Service]:
    """The host's nova-compute service record (None if Nova has none); errors propagate."""
    for svc in nova.compute_services(host):
        if svc.binary == "nova-compute" and svc.host == host:
            return svc
    return None


__all__ = ["ReturnToService", "service_up", "NovaError"]
