"""Deadlines derived from the time Pacemaker gives an action, and bounded polls.

Pacemaker SIGKILLs an action at its timeout, so every wait inside an agent
must end earlier: the deadline keeps a margin for reporting the failure.
"""
from __future__ import annotations

import time
from typing import Callable, Mapping, Optional, TypeVar

T = TypeVar("T")

# Fraction of the action timeout kept back for cleanup and reporting, and its bounds.
MARGIN_FRACTION = 0.1
MARGIN_MIN = 1.0
MARGIN_MAX = 10.0


class DeadlineExceeded(Exception):
    """A bounded wait ran out of time."""


class Deadline:
    """A point in monotonic time; `clock` is injectable for tests."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self.total = max(0.0, float(seconds))
        self.end = clock() + self.total

    @classmethod
    def for_action(cls, timeout_s: float, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> "Deadline":
        """The usable part of an action timeout: timeout minus a margin."""
        margin = min(MARGIN_MAX, max(MARGIN_MIN, timeout_s * MARGIN_FRACTION))
        return cls(max(timeout_s - margin, min(timeout_s, 0.5)), clock=clock, sleep=sleep)

    def remaining(self) -> float:
        return max(0.0, self.end - self._clock())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def cap(self, seconds: float) -> float:
        """A per-call timeout that never outlives the deadline."""
        return max(0.0, min(seconds, self.remaining()))

    def sub(self, seconds: float) -> "Deadline":
        """A shorter deadline inside this one."""
        return Deadline(self.cap(seconds), clock=self._clock, sleep=self._sleep)

    def on_clock(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> "Deadline":
        """The same end and total, read on another clock: lets one waiter (tests: a fake clock) wait
        without moving the clock everything else in the action uses."""
        if clock is self._clock and sleep is self._sleep:
            return self
        moved = Deadline(self.remaining(), clock=clock, sleep=sleep)
        moved.total = self.total  # timeout messages name the action's wait, as before
        return moved

    def sleep(self, seconds: float) -> None:
        self._sleep(self.cap(seconds))

    def poll(self, probe: Callable[[], Optional[T]], interval: float = 0.5, max_interval: float = 2.0,
             what: str = "condition") -> T:
        """Call probe until it returns something other than None; bounded by the deadline.

        The interval grows gently (x1.5) up to max_interval: quick for fast
        state changes, cheap for slow ones.
        """
        delay = interval
        result = probe()
        while result is None:
            if self.remaining() <= 0:
                raise DeadlineExceeded(f"timed out after {self.total:.1f}s waiting for {what}")
            self.sleep(min(delay, self.remaining()))
            delay = min(max_interval, delay * 1.5)
            result = probe()
        return result


def ocf_timeout(env: Mapping[str, str], default_s: float) -> float:
    """The action timeout in seconds from OCF_RESKEY_CRM_meta_timeout (milliseconds)."""
    raw = env.get("OCF_RESKEY_CRM_meta_timeout", "").strip()
    try:
        millis = int(raw)
    except ValueError:
        return default_s
    return millis / 1000.0 if millis > 0 else default_s
