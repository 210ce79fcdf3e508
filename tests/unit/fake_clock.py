"""A monotonic clock for unit tests that advances only when slept on.

Deadlines, retries and polls then run exactly as against the real clock (same
delays, same number of attempts) but without waiting in real time.
"""
from __future__ import annotations

from typing import List


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: List[float] = []  # every sleep asked for, in order

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
