"""UTC timestamps: the one way the project writes a time, and a parser of the ones Nova sends.

`format_utc` is what goes into the cluster records, Nova's disabled reasons and
the operator CLI: `2026-12-03T12:48:49Z`, whole seconds. `parse_utc` reads ISO
8601 date-times as Nova returns them (`2026-12-03T12:48:49.000000`, with or
without fraction, `Z` or an offset, `T` or a space between date and time); a
time without zone is UTC, Nova's convention. Standard library only, the same
on every Python the project supports (3.10's `datetime.fromisoformat` takes
neither `Z` nor every fraction length, so the grammar is written out here).
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Optional

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_STAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
    r"(?:[.,](?P<frac>\d+))?"
    r"\s*(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>\d{2})(?::?(?P<om>\d{2}))?)?", re.ASCII)


def format_utc(epoch: float) -> str:
    """`2026-12-03T12:48:49Z` for epoch seconds; a fraction is cut, not rounded."""
    return time.strftime(UTC_FORMAT, time.gmtime(epoch))


def parse_utc(text: Optional[str]) -> Optional[float]:
    """Epoch seconds (with the fraction) of an ISO 8601 date-time; naive = UTC; None if unreadable."""
    if not text:
        return None
    match = _STAMP.fullmatch(str(text).strip())
    if not match:
        return None
    zone = timezone.utc
    if match.group("sign"):
        hours, minutes = int(match.group("oh")), int(match.group("om") or 0)
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if match.group("sign") == "-" else offset)
    try:
        year, month, day = (int(part) for part in match.group("date").split("-"))
        when = datetime(year, month, day, int(match.group("h")), int(match.group("m")), int(match.group("s")),
                        tzinfo=zone)
        epoch = when.timestamp()
    except (ValueError, OverflowError):
        return None
    frac = match.group("frac")
    return epoch + float("0." + frac) if frac else epoch


__all__ = ["UTC_FORMAT", "format_utc", "parse_utc"]
