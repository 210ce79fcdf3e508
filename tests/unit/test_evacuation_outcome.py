"""evacuation_outcome.transition, table-driven: what each outcome does to an instance's progress and its
attempts (no engine, no threads, no Nova)."""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Dict, Optional

import pytest

from computeha.agents.evacuation_outcome import Kind, Outcome, transition
from computeha.agents.evacuation_params import Settings
from computeha.agents.evacuation_store import DONE, FAILED, INFLIGHT, ISSUING, PENDING, REPORTED, InstanceProgress

NOW = 1000.0
S = Settings(max_attempts=3, retry_backoff=2.0, in_doubt_grace=20.0)


def inst(**fields: object) -> InstanceProgress:
    return replace(InstanceProgress(id="i-1", name="vm1"), **fields)


# (case, instance before, outcome, expected field changes, expected log level (0: none), host blocked)
CASES = [
    ("retry below max_attempts: backoff doubles per attempt",
     inst(state=INFLIGHT, attempts=2), Outcome(Kind.RETRY, "evacuation error in Nova"),
     {"state": ISSUING, "reason": "evacuation error in Nova", "next_at": NOW + 4.0}, logging.WARNING, ""),
    ("retry backoff is at most 60 s",
     inst(state=INFLIGHT, attempts=2), Outcome(Kind.RETRY, "x"),
     {"state": ISSUING, "reason": "x", "next_at": NOW + 60.0}, logging.WARNING, ""),
    ("retry at max_attempts fails for good",
     inst(state=INFLIGHT, attempts=3), Outcome(Kind.RETRY, "evacuation error in Nova"),
     {"state": FAILED, "reason": "evacuation error in Nova"}, logging.ERROR, ""),
    ("waits count against max_attempts like calls",
     inst(state=INFLIGHT, attempts=1, waits=2), Outcome(Kind.RETRY, "not back after 300s"),
     {"state": FAILED, "reason": "not back after 300s"}, logging.ERROR, ""),
    ("failed is for good whatever the attempts",
     inst(state=ISSUING, attempts=1), Outcome(Kind.FAILED, "ERROR on c1 after evacuation", "c1"),
     {"state": FAILED, "reason": "ERROR on c1 after evacuation"}, logging.ERROR, ""),
    ("doubt gives the attempt back and re-checks after the grace",
     inst(state=ISSUING, attempts=2, issued_at=900.0), Outcome(Kind.DOUBT, "no answer to evacuate: timeout"),
     {"state": ISSUING, "reason": "no answer to evacuate: timeout", "attempts": 1, "issued_at": NOW,
      "next_at": NOW + 20.0}, logging.WARNING, ""),
    ("doubt never makes attempts negative",
     inst(state=ISSUING, attempts=0), Outcome(Kind.DOUBT, "x"),
     {"state": ISSUING, "reason": "x", "attempts": 0, "issued_at": NOW, "next_at": NOW + 20.0},
     logging.WARNING, ""),
    ("blocked gives the attempt back, the instance waits as never issued, the host pauses",
     inst(state=ISSUING, attempts=1), Outcome(Kind.BLOCKED, "Compute service of c0 is still in use."),
     {"attempts": 0, "state": PENDING}, logging.WARNING, "Compute service of c0 is still in use."),
    ("blocked keeps a state other than issuing",
     inst(state=INFLIGHT, attempts=2), Outcome(Kind.BLOCKED, "in use"),
     {"attempts": 1, "state": INFLIGHT}, logging.WARNING, "in use"),
    ("defer keeps the attempts; an attempted instance is inspected first",
     inst(state=ISSUING, attempts=2), Outcome(Kind.DEFER, "credentials: 401"),
     {"state": ISSUING, "next_at": NOW + 5.0}, logging.INFO, ""),
    ("defer of a never attempted instance keeps it pending, until the given time",
     inst(state=ISSUING, attempts=0), Outcome(Kind.DEFER, "earlier call in doubt", at=NOW + 12.0),
     {"state": PENDING, "next_at": NOW + 12.0}, logging.INFO, ""),
    ("defer of an instance in flight: inspected first",
     inst(state=INFLIGHT, attempts=0), Outcome(Kind.DEFER, "no migration record: inspecting", at=NOW),
     {"state": ISSUING, "next_at": NOW}, logging.INFO, ""),
    ("adopt of an accepted call: in flight, nothing logged",
     inst(state=ISSUING, attempts=1), Outcome(Kind.ADOPT, "accepted"),
     {"state": INFLIGHT, "inflight_since": NOW}, 0, ""),
    ("adopt of one found under way is logged",
     inst(state=ISSUING, attempts=1), Outcome(Kind.ADOPT, "task rebuilding under way"),
     {"state": INFLIGHT, "inflight_since": NOW}, logging.INFO, ""),
    ("adopt after an overdue wait counts a wait",
     inst(state=ISSUING, attempts=1, waits=1, overdue=True), Outcome(Kind.ADOPT, "migration accepted"),
     {"state": INFLIGHT, "inflight_since": NOW, "waits": 2, "overdue": False}, logging.INFO, ""),
    ("done records where it runs",
     inst(state=INFLIGHT, attempts=1), Outcome(Kind.DONE, "ACTIVE on c1", "c1"),
     {"state": DONE, "dest": "c1", "reason": "ACTIVE on c1"}, logging.INFO, ""),
    ("gone is reported",
     inst(state=ISSUING, attempts=1), Outcome(Kind.GONE, "server deleted"),
     {"state": REPORTED, "reason": "server deleted"}, logging.INFO, ""),
]


@pytest.mark.parametrize("case,before,outcome,changes,level,block", CASES, ids=[c[0] for c in CASES])
def test_transition(case: str, before: InstanceProgress, outcome: Outcome, changes: Dict[str, object],
                    level: int, block: str) -> None:
    settings = S if "60 s" not in case else replace(S, retry_backoff=40.0)
    snapshot = replace(before)
    change = transition(before, outcome, settings, NOW)
    assert before == snapshot  # pure: the caller applies it
    assert change.persist
    assert change.changes == changes
    assert change.level == level
    assert change.block == block
    after = replace(before)
    change.apply(after)
    for name, value in changes.items():
        assert name in InstanceProgress.__dataclass_fields__  # a misspelt field would never be saved
        assert getattr(after, name) == value


def test_still_changes_nothing() -> None:
    change = transition(inst(state=INFLIGHT, attempts=1), Outcome(Kind.STILL, "cannot read yet"), S, NOW)
    assert not change.persist and not change.changes and not change.level


@pytest.mark.parametrize("outcome,expected", [
    (Outcome(Kind.RETRY, "evacuation error in Nova"),
     "c0: instance i-1 attempt 2: evacuation error in Nova; retry in 4s"),
    (Outcome(Kind.FAILED, "ERROR on c1"), "c0: instance i-1 (vm1) failed for good after 2 attempts: ERROR on c1"),
    (Outcome(Kind.DOUBT, "no answer"), "c0: instance i-1 in doubt (no answer): Nova is re-checked in 20s"),
    (Outcome(Kind.DEFER, "credentials: 401"), "c0: instance i-1 waits 5s: credentials: 401"),
    (Outcome(Kind.BLOCKED, "in use"), "c0: Nova refuses evacuation (in use): paused until the host is forced down"),
    (Outcome(Kind.DONE, "ACTIVE on c1", "c1"), "c0: instance i-1 (vm1) evacuated: ACTIVE on c1"),
    (Outcome(Kind.GONE, "server deleted"), "c0: instance i-1: server deleted"),
    (Outcome(Kind.ADOPT, "task rebuilding under way"), "c0: instance i-1: task rebuilding under way, waiting for it"),
])
def test_log_lines(outcome: Outcome, expected: str) -> None:
    change = transition(inst(state=ISSUING, attempts=2), outcome, S, NOW)
    assert change.message % ("c0", *change.args) == expected


def test_attempts_accounting_over_a_life() -> None:
    """Calls spend attempts, a lost answer or a refusal while not fenced gives it back, a wait spends one."""
    i = inst(state=PENDING)

    def call() -> None:  # what mark_issuing does before each evacuate call
        i.state, i.attempts, i.overdue = ISSUING, i.attempts + 1, False

    def then(kind: Kind, reason: str = "x", at: Optional[float] = None) -> None:
        transition(i, Outcome(kind, reason, at=at or 0.0), S, NOW).apply(i)

    call(), then(Kind.DOUBT)
    assert (i.attempts, i.state) == (0, ISSUING)
    call(), then(Kind.BLOCKED)
    assert (i.attempts, i.state) == (0, PENDING)
    call(), then(Kind.ADOPT, "accepted"), then(Kind.RETRY, "evacuation error in Nova")
    assert (i.tries, i.state) == (1, ISSUING)
    call(), then(Kind.ADOPT, "accepted")
    i.overdue = True  # poll: not back after evacuation_timeout
    then(Kind.RETRY, "not back")
    then(Kind.ADOPT, "task rebuilding under way")  # the recheck finds the same evacuation under way
    assert (i.attempts, i.waits, i.tries, i.state) == (2, 1, 3, INFLIGHT)
    then(Kind.RETRY, "not back")
    assert i.state == FAILED
