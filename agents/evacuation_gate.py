"""The gate before any evacuation: which flagged hosts are claimed, and which are left alone and why.

Each scan reads the `computeha-evacuate` record of every node (one CIB query) and judges every
host newly requested, oldest request first: the operator's maintenance switch (`paused`), the
fence evidence in Nova (compute service forced down, or down and disabled with our `computeha:`
reason; the Pacemaker node is matched to its nova-compute service by ocf_lib.hostnames rules),
then failure_guard's mass-failure verdict (a host this node was already evacuating resumes
regardless). A host left alone is judged again after gate_recheck seconds; a claimed one is
handed to evacuation_plan. A host whose evacuation Nova refused ("blocked") is re-checked here
until its fence evidence is back.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Union

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.attrs import ClusterAttributeError
from computeha.ocf_lib.hostnames import HostMapper, HostMappingError
from computeha.ocf_lib.nova import NovaError, Service

from . import failure_guard as guard
from .evacuation_plan import Planner, Prefetched
from .evacuation_records import RecordWriter
from .evacuation_shared import Shared
from .evacuation_store import HostProgress

PROGRESS_PAUSED = "paused: requested, not evacuated"


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


@dataclass(frozen=True)
class Refusal:
    """Why a flagged host is left alone for now."""
    level: int
    message: str
    progress: Optional[str] = None  # the progress attribute to publish, if any


class Gate:
    def __init__(self, shared: Shared, out: RecordWriter, planner: Planner) -> None:
        self.sh = shared
        self.out = out
        self.planner = planner
        self.limits = guard.Limits(shared.s.mass_failure_share, shared.s.mass_failure_max_hosts,
                                   shared.s.stale_cloud_share)

    def scan(self) -> None:
        """Read every node's record: stop tracking cleared ones, re-check blocked ones, judge new ones."""
        sh = self.sh
        try:
            values = sh.records.get_all(rec.ATTRIBUTE)
        except ClusterAttributeError as err:
            sh.say("*records", logging.WARNING, f"cannot read the evacuation records: {err}")
            return
        sh.unsay("*records")
        records = {node: r for node, r in ((n, rec.parse(v)) for n, v in values.items()) if r is not None}
        active = {n: r for n, r in records.items() if r.state in (rec.REQUESTED, rec.RUNNING)}
        for node in list(sh.hosts):
            if node not in active and not self.out.finishing(node):
                sh.log.info("evacuation record of %s was cleared or finished elsewhere: no longer tracked", node)
                sh.hosts.pop(node, None)
        for node, host in sh.hosts.items():
            if host.blocked and not sh.held(node):
                self.recheck_blocked(host)
        new = [n for n in active if n not in sh.hosts and not sh.held(n)]
        if not new:
            return
        # One round trip for everything: the fence evidence (service list) and, speculatively, the
        # listings the plan needs (reads only; nothing is issued before the evidence is checked).
        f_services = sh.pool.submit(sh.nova.compute_services)
        facts = self.planner.prefetch_facts()
        prefetch = {}
        for node in new:
            stored = sh.store.load(node)
            if node not in sh.refused and (stored is None or stored.epoch != int(active[node].since or 0)):
                prefetch[node] = self.planner.prefetch_host(node, int(active[node].since or sh.clock()))
        try:
            services = f_services.result()
        except NovaError as err:
            sh.say("*nova", logging.WARNING, f"Nova unavailable, evacuations wait: {err}")
            return
        sh.unsay("*nova")
        cloud = guard.cloud_state(records, services, lambda n: getattr(sh.match(n, services), "host", None))
        budgets = self._budgets(facts)
        for node in sorted(new, key=lambda n: active[n].since):
            record = active[node]
            judged = self.judge(node, record, services, cloud, budgets)
            if isinstance(judged, Refusal):
                sh.hold(node)
                sh.say(node, judged.level, judged.message)
                if judged.progress is not None:
                    self.out.set_progress(node, judged.progress)
                sh.refused.add(node)
                continue
            self._claim(node, record, judged, services, prefetch.get(node) if judged.host == node else None, facts)

    def judge(self, node: str, record: rec.EvacuationRecord, services: Sequence[Service], cloud: guard.CloudState,
              budgets: Optional[List[guard.Budget]]) -> Union[Service, Refusal]:
        """The service of a host to claim, or why it is left alone."""
        if self.sh.s.paused:  # the operator's maintenance switch: requests stay recorded, in order
            return Refusal(logging.WARNING, f"{node} not evacuated: evacuation is paused by the operator "
                                            f"(paused=true; `computeha resume` processes the recorded requests)",
                           PROGRESS_PAUSED)
        service = self.sh.match(node, services)
        why = fence_evidence(service)
        if why is not None or service is None:
            return Refusal(logging.WARNING, f"{node} is flagged for evacuation but {why}: left alone")
        verdict = (guard.BUDGETS_UNREADABLE if budgets is None
                   else guard.judge(service.host, cloud, self.limits, budgets))
        resuming = record.state == rec.RUNNING and record.detail.startswith(self.sh.node)
        if verdict.blocked and not resuming:
            level = logging.CRITICAL if verdict.critical else logging.WARNING
            return Refusal(level, f"{node} not evacuated: {verdict.reason}", verdict.progress)
        return service

    def _claim(self, node: str, record: rec.EvacuationRecord, service: Service, services: Sequence[Service],
               prefetched: Optional[Prefetched], facts: dict) -> None:
        try:
            self.planner.claim(node, record, service, services, prefetched, facts)
        except NovaError as err:
            self.sh.hold(node)
            self.sh.say(node, logging.WARNING, f"cannot plan the evacuation of {node} yet: {err}")
        except ClusterAttributeError as err:
            self.sh.hold(node)
            self.sh.say(node, logging.WARNING, f"cannot claim {node}: {err}")

    def _budgets(self, facts: dict) -> Optional[List[guard.Budget]]:
        """The aggregates' failure budgets (None: Nova did not answer); bad metadata is logged and ignored."""
        sh = self.sh
        try:
            budgets, problems = guard.budgets(facts["aggregates"].result())
        except NovaError as err:
            sh.say("*aggregates", logging.WARNING, f"cannot read the host aggregates: {err}")
            return None
        sh.unsay("*aggregates")
        for problem in problems:
            sh.say("*budget:" + problem.split(":", 1)[0], logging.WARNING, problem)
        return budgets

    def recheck_blocked(self, host: HostProgress) -> None:
        """A host Nova refused to evacuate from: continue once its fence evidence is back."""
        sh = self.sh
        sh.hold(host.node)
        try:
            service = sh.match(host.node, sh.nova.compute_services(host.nova_host))
        except NovaError:
            return
        why = fence_evidence(service)
        if why is None:
            sh.log.info("%s: fence evidence is back, evacuation continues", host.node)
            host.blocked = ""
        else:
            sh.say(host.node, logging.WARNING, f"{host.node}: evacuation paused: {why}")


__all__ = ["Gate", "Refusal", "fence_evidence", "match_service", "PROGRESS_PAUSED"]
