"""The one writer of what the engine publishes to the cluster and to Nova about a failed host.

- the evacuation record (`computeha-evacuate`): the claim (`running;<since>;<node>`) and the end
  (`done`/`failed`); a write that fails stays pending and is tried again every loop, the end only
  after the claim;
- the progress attribute: remembered per outcome and published at most once per PROGRESS_INTERVAL
  (in a cluster each write is an attrd_updater run on the main thread), at once when a host ends;
- the disabled reason of the failed host's compute service, written while no evacuation is in
  flight on that host (never in the way of the first calls).
"""
from __future__ import annotations

import logging
import time
from typing import Dict

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.attrs import ClusterAttributeError
from computeha.ocf_lib.nova import NovaError
from computeha.ocf_lib.timefmt import format_utc

from .evacuation_shared import Shared
from .evacuation_store import FAILED, HostProgress

PROGRESS_INTERVAL = 1.0  # seconds between two progress attribute writes of a host


class RecordWriter:
    def __init__(self, shared: Shared) -> None:
        self.sh = shared
        self.claim_pending: Dict[str, str] = {}  # node -> `running` record still to write
        self.finish_pending: Dict[str, str] = {}  # node -> record value still to write
        self.reason_pending: Dict[str, str] = {}  # node -> disabled_reason text to write
        self.progress_due: Dict[str, str] = {}  # node -> progress text not yet published
        self.next_progress = 0.0

    def finishing(self, node: str) -> bool:
        """The host's end is decided and its record not written yet."""
        return node in self.finish_pending

    def claim(self, node: str, value: str) -> None:
        # written after the first evacuate calls went out (see Engine.step): a kill before it only
        # means the next run plans again, and finds those evacuations under way in Nova
        self.claim_pending[node] = value

    def reason(self, node: str, text: str) -> None:
        self.reason_pending[node] = text

    def due(self, node: str, text: str) -> None:
        """Progress remembered per outcome, published by publish_progress."""
        self.progress_due[node] = text

    def finish(self, host: HostProgress) -> None:
        """Every instance of the host is done or failed for good: record `done`/`failed`."""
        sh = self.sh
        failed = [i for i in host.instances.values() if i.state == FAILED]
        summary = host.summary()
        self.progress_due.pop(host.node, None)
        self.set_progress(host.node, summary)
        if failed:
            value = rec.new(rec.FAILED, f"{summary} {len(failed)} failed: {failed[0].reason}"[:200], sh.clock())
            sh.log.error("evacuation of %s finished with failures: %s", host.node, value.detail)
        else:
            value = rec.new(rec.DONE, summary, sh.clock())
            sh.log.info("evacuation of %s done: %s instances evacuated", host.node, summary)
        self.finish_pending[host.node] = value.format()
        self.reason_pending[host.node] = f"evacuation {value.state} {value.detail} at {format_utc(sh.clock())}"
        self.flush()

    def flush(self) -> None:
        """Write the pending claim and end records, then the disabled reasons (when nothing is in flight)."""
        sh = self.sh
        for node, value in list(self.claim_pending.items()):
            try:
                sh.records.set(node, rec.ATTRIBUTE, value)
                self.claim_pending.pop(node, None)
            except ClusterAttributeError as err:
                sh.say(node, logging.WARNING, f"cannot record the claim of {node} yet: {err}")
        for node, value in list(self.finish_pending.items()):
            if node in self.claim_pending:
                continue
            try:
                sh.records.set(node, rec.ATTRIBUTE, value)
            except ClusterAttributeError as err:
                sh.say(node, logging.WARNING, f"cannot record the end of {node}'s evacuation yet: {err}")
                continue
            self.finish_pending.pop(node, None)
            sh.hosts.pop(node, None)
        for node, text in list(self.reason_pending.items()):
            if sh.running and node in sh.hosts:
                continue  # not while evacuations are in flight: never slow down the first calls
            self.reason_pending.pop(node, None)
            host_name = sh.store.load(node)
            try:
                services = sh.nova.compute_services(host_name.nova_host if host_name else node)
                service = sh.match(node, services)
                if service is not None and service.status == "disabled" and (
                        rec.is_ours(service.disabled_reason) or not service.disabled_reason):
                    sh.nova.set_enabled(service, False, rec.disabled_reason(text))
            except NovaError as err:
                sh.log.debug("cannot update the disabled reason of %s: %s", node, err)

    def publish_progress_if_due(self) -> None:
        """The progress attributes that changed since the last time (one write per node, not per outcome:
        in a cluster each write is an attrd_updater run on the main thread)."""
        if not self.progress_due or time.monotonic() < self.next_progress:
            return
        self.next_progress = time.monotonic() + PROGRESS_INTERVAL
        for node, text in list(self.progress_due.items()):
            self.progress_due.pop(node, None)
            self.set_progress(node, text)

    def set_progress(self, node: str, text: str) -> None:
        if self.sh.progress is None:
            return
        try:
            self.sh.progress.set(node, rec.PROGRESS_ATTRIBUTE, text)
        except ClusterAttributeError as err:
            self.sh.log.debug("cannot publish progress of %s: %s", node, err)


__all__ = ["RecordWriter", "PROGRESS_INTERVAL"]
