"""ocf_lib.timefmt: the one UTC formatter and the parser of Nova's timestamps (and nova_time on top)."""
from __future__ import annotations

import calendar
import time
from typing import Optional

import pytest

from computeha.ocf_lib.nova import nova_time
from computeha.ocf_lib.timefmt import format_utc, parse_utc

BASE = calendar.timegm((2026, 12, 3, 12, 48, 49, 0, 0, 0))  # 2026-12-03T12:48:49Z


@pytest.mark.parametrize("text, expected", [
    # Nova's forms: naive is UTC, fraction kept
    ("2026-12-03T12:48:49.000000", BASE),
    ("2026-12-03T12:48:49", BASE),
    ("2026-12-03T12:48:49.250000", BASE + 0.25),
    ("2026-12-03T12:48:49.5", BASE + 0.5),
    ("2026-12-03T12:48:49.123", BASE + 0.123),
    ("2026-12-03T12:48:49.123456789", BASE + 0.123456789),
    # Z and offsets
    ("2026-12-03T12:48:49Z", BASE),
    ("2026-12-03T12:48:49z", BASE),
    ("2026-12-03T12:48:49.000000Z", BASE),
    ("2026-12-03T12:48:49+00:00", BASE),
    ("2026-12-03T12:48:49.000000+00:00", BASE),
    ("2026-12-03T12:48:49-00:00", BASE),
    ("2026-12-03T14:48:49+02:00", BASE),
    ("2026-12-03T14:48:49+0200", BASE),
    ("2026-12-03T14:48:49+02", BASE),
    ("2026-12-03T07:18:49-05:30", BASE),
    ("2026-12-04T00:18:49.5+11:30", BASE + 0.5),
    ("2026-12-03T12:48:49 +00:00", BASE),
    # a space (or lower-case t) between date and time, surrounding blanks
    ("2026-12-03 12:48:49", BASE),
    ("2026-12-03 12:48:49.000000", BASE),
    ("2026-12-03 14:48:49+02:00", BASE),
    ("2026-12-03t12:48:49", BASE),
    ("  2026-12-03T12:48:49Z\n", BASE),
    # the epoch itself and before it
    ("1970-01-01T00:00:00Z", 0.0),
    ("1970-01-01T00:01:00.000000", 60.0),
    ("1969-12-31T23:59:59.5", -0.5),
    # unreadable: None
    (None, None),
    ("", None),
    ("   ", None),
    ("None", None),
    ("garbage", None),
    ("2026-12-03", None),
    ("2026-12-03T12:48", None),
    ("2026-12-03T12:48:49garbage", None),
    ("2026-12-03T12:48:49.", None),
    ("2026-12-03T12:48:49+2:00", None),
    ("2026-12-03T12:48:49+24:00", None),
    ("2026-12-03T12:48:49+02:60", None),
    ("2026-12-03T12:48:49 UTC", None),
    ("2026-13-03T12:48:49", None),
    ("2026-02-30T12:48:49", None),
    ("2026-12-03T25:48:49", None),
    ("0000-01-01T00:00:00", None),
    ("2026-1-3T1:2:3", None),
    ("\u0662026-12-03T12:48:49", None),  # a non-ASCII digit
    ("1796302129", None),
])
def test_parse_utc(text: Optional[str], expected: Optional[float]) -> None:
    got = parse_utc(text)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-6)
        assert isinstance(got, float)


@pytest.mark.parametrize("text, expected", [
    ("2026-12-03T12:48:49.000000", float(BASE)),
    ("2026-12-03T14:48:49.75+02:00", BASE + 0.75),
    ("1970-01-01T00:01:00Z", 60.0),
    (None, 0.0),
    ("", 0.0),
    ("garbage", 0.0),
    ("2026-12-03T12:48:49garbage", 0.0),
])
def test_nova_time(text: Optional[str], expected: float) -> None:
    got = nova_time(text)
    assert got == pytest.approx(expected, abs=1e-6)
    assert isinstance(got, float)


@pytest.mark.parametrize("epoch, expected", [
    (0, "1970-01-01T00:00:00Z"),
    (BASE, "2026-12-03T12:48:49Z"),
    (BASE + 0.999, "2026-12-03T12:48:49Z"),  # the fraction is cut, not rounded
    (1_000_000_000.5, "2001-09-09T01:46:40Z"),
])
def test_format_utc(epoch: float, expected: str) -> None:
    assert format_utc(epoch) == expected


@pytest.mark.parametrize("epoch", [0, 1, 59, 86_399, 951_782_400, 1_700_000_000, BASE, 4_102_444_800])
def test_format_then_parse_round_trips(epoch: int) -> None:
    assert parse_utc(format_utc(epoch)) == epoch
    assert format_utc(epoch) == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
