"""What one evacuate-or-confirm task found, and what that does to the instance's progress.

`Outcome` is the answer of a task (evacuation_issue) or of a migration listing (evacuation_watch)
about one instance. `transition` is the one place that turns it into new progress fields and a log
line: a pure function (no Nova, no clock, no lock), so that the attempt accounting (calls and waits
against max_attempts, what does not count as an attempt) is read and tested in one table.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, Tuple

from .evacuation_params import Settings
from .evacuation_store import DONE, FAILED, INFLIGHT, ISSUING, PENDING, REPORTED, InstanceProgress


class Kind(Enum):
    """Outcome kinds of one evacuate-and-confirm task."""
    DONE = "done"  # the instance runs elsewhere
    RETRY = "retry"  # the evacuation failed: another attempt, if max_attempts allows
    FAILED = "failed"  # failed for good (ERROR after the evacuation)
    DOUBT = "doubt"  # the call's answer was lost: Nova is inspected after in_doubt_grace
    BLOCKED = "blocked"  # Nova refuses while the host is not forced down: the host pauses
    GONE = "gone"  # the server was deleted
    DEFER = "defer"  # look again later (at `Outcome.at`), no attempt spent
    ADOPT = "adopt"  # accepted by Nova, or found under way: confirmed by the migration listings
    STILL = "still"  # a confirmation found it still under way: nothing changes
    IDLE = "idle"  # inspect(): Nova shows no evacuation of it (never applied, see evacuation_issue)


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    reason: str = ""
    dest: str = ""
    at: float = 0.0  # DEFER: when to look again (0: a few seconds from now)


@dataclass(frozen=True)
class Transition:
    """What an outcome changes: instance fields to set, the host to pause, the line to log."""
    changes: Dict[str, object] = field(default_factory=dict)
    block: str = ""  # BLOCKED: why the host issues nothing until the fence evidence is back
    level: int = 0  # 0: nothing logged
    message: str = ""  # a logging format whose first %s is the node; `args` fill the rest
    args: Tuple[object, ...] = ()
    persist: bool = True  # False: nothing changed, nothing to save or publish (STILL)

    def apply(self, inst: InstanceProgress) -> None:
        for name, value in self.changes.items():
            setattr(inst, name, value)


def transition(inst: InstanceProgress, outcome: Outcome, settings: Settings, now: float) -> Transition:
    """The new progress of `inst` after `outcome`, at `now` (the engine's clock); `inst` is not changed."""
    kind, reason = outcome.kind, outcome.reason
    if kind is Kind.STILL:
        return Transition(persist=False)
    if kind is Kind.ADOPT:  # accepted by Nova, or found under way: confirmed by the migration listings
        changes: Dict[str, object] = {"state": INFLIGHT, "inflight_since": now}
        if inst.overdue:  # waiting again for the same evacuation is an attempt of its own
            changes.update(waits=inst.waits + 1, overdue=False)
        if reason == "accepted":
            return Transition(changes)
        return Transition(changes, level=logging.INFO, message="%s: instance %s: %s, waiting for it",
                          args=(inst.id, reason))
    if kind is Kind.DONE:
        return Transition({"state": DONE, "dest": outcome.dest, "reason": reason}, level=logging.INFO,
                          message="%s: instance %s (%s) evacuated: %s", args=(inst.id, inst.name, reason))
    if kind is Kind.GONE:
        return Transition({"state": REPORTED, "reason": reason}, level=logging.INFO,
                          message="%s: instance %s: %s", args=(inst.id, reason))
    if kind is Kind.FAILED or (kind is Kind.RETRY and inst.tries >= settings.max_attempts):
        return Transition({"state": FAILED, "reason": reason}, level=logging.ERROR,
                          message="%s: instance %s (%s) failed for good after %d attempts: %s",
                          args=(inst.id, inst.name, inst.tries, reason))
    if kind is Kind.RETRY:  # the next attempt inspects Nova first
        next_at = now + min(60.0, settings.retry_backoff * 2 ** (inst.attempts - 1))
        return Transition({"state": ISSUING, "reason": reason, "next_at": next_at}, level=logging.WARNING,
                          message="%s: instance %s attempt %d: %s; retry in %.0fs",
                          args=(inst.id, inst.tries, reason, next_at - now))
    if kind is Kind.DOUBT:
        next_at = now + settings.in_doubt_grace
        # an unanswered call is not a failed evacuation; the grace runs from the end of the
        # unanswered call: nova-api may still be working on it
        return Transition({"state": ISSUING, "reason": reason, "attempts": max(0, inst.attempts - 1),
                           "issued_at": now, "next_at": next_at}, level=logging.WARNING,
                          message="%s: instance %s in doubt (%s): Nova is re-checked in %.0fs",
                          args=(inst.id, reason, next_at - now))
    if kind is Kind.DEFER:  # the next attempt inspects Nova first
        next_at = outcome.at or now + 5.0
        state = ISSUING if inst.attempts or inst.state == INFLIGHT else PENDING
        return Transition({"state": state, "next_at": next_at}, level=logging.INFO,
                          message="%s: instance %s waits %.0fs: %s", args=(inst.id, next_at - now, reason))
    if kind is Kind.BLOCKED:
        return Transition({"attempts": max(0, inst.attempts - 1),
                           "state": PENDING if inst.state == ISSUING else inst.state}, block=reason,
                          level=logging.WARNING,
                          message="%s: Nova refuses evacuation (%s): paused until the host is forced down",
                          args=(reason,))
    return Transition()  # IDLE is never applied; saved unchanged as before


__all__ = ["Kind", "Outcome", "Transition", "transition"]
