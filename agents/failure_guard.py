"""The mass-failure guard: how much of the cloud is down right now, and may this host be evacuated.

A host is *down* while it is flagged and not yet back in service: it has an
evacuation record (requested, running, done or failed). NovaCompute clears the
record as the last step of the host's return to service (nova-compute up,
forced_down cleared, re-enabled), so a host that failed and came back no longer
counts, however recently it failed; a host still down counts, however long ago
it failed. The question each limit asks is "how much is down at once":

- share      more than `mass_failure_share` percent of the compute hosts down
             (and at least two): a partition more often than real failures;
- cap        more than `mass_failure_max_hosts` hosts down (0: no cap);
- aggregate  more than N hosts of one aggregate down, where the aggregate's
             metadata says `computeha:max_failures=N` (a rack, a storage domain);
- stale      most nova-compute services that are *not* flagged report down: Nova
             cannot see its computes (a control-plane or message-bus outage), so
             it cannot tell a dead host from a silent one, and an evacuation would
             find no target and leave the instance in ERROR. Held, not failed:
             the host is evacuated once Nova sees its computes again.

A blocked host is re-judged every few seconds, so the documented operator step
(raise the limit) releases it without a restart of anything else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.nova import Aggregate, Service

MAX_FAILURES_KEY = "computeha:max_failures"
PROGRESS_BLOCKED = "blocked: mass failure"
PROGRESS_STALE = "held: Nova sees no computes"


@dataclass(frozen=True)
class Limits:
    """The operator's limits (defaults: NovaEvacuate's parameter table)."""

    share: int  # mass_failure_share: percent of compute hosts; 0 disables the share limit
    max_hosts: int  # mass_failure_max_hosts: hosts down at once; 0: no absolute cap
    stale_share: int  # stale_cloud_share: percent of unflagged computes reported down; 0 disables the breaker


@dataclass(frozen=True)
class Budget:
    """A per-aggregate failure budget read from aggregate metadata."""

    aggregate: str
    max_failures: int
    hosts: FrozenSet[str]


@dataclass(frozen=True)
class CloudState:
    """What the guard knows of the cloud at one scan (Nova host names throughout)."""

    computes: FrozenSet[str]  # every nova-compute host
    down: FrozenSet[str]  # flagged and not back in service
    silent: FrozenSet[str]  # reported down by Nova without being flagged

    @property
    def total(self) -> int:
        return len(self.computes)


@dataclass(frozen=True)
class Verdict:
    reason: str = ""  # empty: the host may be evacuated
    progress: str = ""  # what crm_mon -A and computeha status show for a held host

    @property
    def blocked(self) -> bool:
        return bool(self.reason)

    @property
    def critical(self) -> bool:
        """A guard tripped (an operator must act), not a wait that ends by itself."""
        return self.progress.startswith(PROGRESS_BLOCKED)


ALLOWED = Verdict()
BUDGETS_UNREADABLE = Verdict("the failure budgets of the host aggregates cannot be read from Nova: evacuation waits",
                             "held: aggregates unreadable")


def cloud_state(records: Mapping[str, rec.EvacuationRecord], services: Sequence[Service],
                to_nova_host: Callable[[str], Optional[str]]) -> CloudState:
    """The down and silent hosts: `records` maps Pacemaker node names to their evacuation records."""
    computes = {s.host: s for s in services if s.binary == "nova-compute"}
    down = set()
    for node in records:
        host = to_nova_host(node)
        if host is not None and host in computes:  # a record of a host Nova no longer has is not part of the cloud
            down.add(host)
    silent = {h for h, s in computes.items() if h not in down and s.state == "down"}
    return CloudState(frozenset(computes), frozenset(down), frozenset(silent))


def budgets(aggregates: Sequence[Aggregate]) -> Tuple[List[Budget], List[str]]:
    """The aggregates' failure budgets, and a problem text for every unusable metadata value."""
    out, problems = [], []
    for agg in aggregates:
        raw = (agg.metadata or {}).get(MAX_FAILURES_KEY)
        if raw is None:
            continue
        try:
            value = int(str(raw).strip(), 10)
        except ValueError:
            value = -1
        if value < 0:
            problems.append(f"aggregate {agg.name!r}: {MAX_FAILURES_KEY}={str(raw)[:40]!r} is not a whole number "
                            f">= 0: ignored")
            continue
        out.append(Budget(agg.name, value, frozenset(agg.hosts)))
    return out, problems


def judge(host: str, cloud: CloudState, limits: Limits, host_budgets: Sequence[Budget]) -> Verdict:
    """May the failed Nova host `host` be evacuated now?"""
    down = cloud.down | {host}
    count, total = len(down), cloud.total
    listed = ", ".join(sorted(down))
    if limits.stale_share and total:
        watched = total - count
        if watched and len(cloud.silent) * 100 > limits.stale_share * watched:
            return Verdict(f"STALE CLOUD: Nova reports {len(cloud.silent)} of the {watched} other compute services "
                           f"down without a fence (more than {limits.stale_share}%): a control-plane or message-bus "
                           f"outage, not host failures; evacuation waits until Nova sees its computes again "
                           f"(an evacuation now would find no target)",
                           f"{PROGRESS_STALE} ({len(cloud.silent)} of {watched} down)")
    release = ("Once the hosts are known dead, {step} (crm_resource --resource <NovaEvacuate> --set-parameter ...), "
               "and set it back after")
    if limits.share and count >= 2 and count * 100 > limits.share * total:
        return Verdict(f"MASS FAILURE GUARD: {count} of {total} compute hosts down at once ({listed}; more than "
                       f"mass_failure_share={limits.share}%): this looks like a partition, automatic evacuation "
                       f"suspended. " + release.format(step="raise mass_failure_share to 100"),
                       f"{PROGRESS_BLOCKED} ({count} of {total} hosts down, mass_failure_share {limits.share}%)")
    if limits.max_hosts and count > limits.max_hosts:
        return Verdict(f"MASS FAILURE GUARD: {count} compute hosts down at once ({listed}; more than "
                       f"mass_failure_max_hosts={limits.max_hosts}): automatic evacuation suspended. "
                       + release.format(step="raise mass_failure_max_hosts (0: no cap)"),
                       f"{PROGRESS_BLOCKED} ({count} hosts down, mass_failure_max_hosts {limits.max_hosts})")
    for budget in host_budgets:
        if host not in budget.hosts:
            continue
        in_agg = sorted(down & budget.hosts)
        if len(in_agg) > budget.max_failures:
            return Verdict(f"MASS FAILURE GUARD: {len(in_agg)} hosts of aggregate {budget.aggregate!r} down at once "
                           f"({', '.join(in_agg)}; more than its {MAX_FAILURES_KEY}={budget.max_failures}): "
                           f"automatic evacuation of its hosts suspended. Once the hosts are known dead, raise it "
                           f"(openstack aggregate set --property {MAX_FAILURES_KEY}=N {budget.aggregate})",
                           f"{PROGRESS_BLOCKED} ({len(in_agg)} hosts of {budget.aggregate} down, budget "
                           f"{budget.max_failures})")
    return ALLOWED
