"""Reading one mapping of a site document while collecting problems: `Reader`'s getters check
type, range and pattern and name every field by its full path; `kind_of` describes a wrong value.
Split from model.py, which builds the site's dataclasses with them.
"""
from __future__ import annotations

import re
from typing import Any, List, Mapping, Optional, Tuple

# Pacemaker ids are XML IDs: a letter or underscore first, then letters, digits, . _ -
ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# a Pacemaker duration as the site writes it into the CIB, verbatim: a whole number, optionally a unit
DURATION_PATTERN = re.compile(r"^(\d+)(ms|s|m|min|h)?$")


class Reader:
    """Collects problems while reading one mapping; every getter names the full path."""

    def __init__(self, problems: List[str], path: str, data: Any, known: Tuple[str, ...]) -> None:
        self.problems = problems
        self.path = path
        self.ok = isinstance(data, Mapping)
        self.data: Mapping[str, Any] = data if self.ok else {}
        if not self.ok:
            problems.append(f"{path or 'site'}: must be a mapping (key: value), got {kind_of(data)}")
            return
        for key in self.data:
            if key not in known:
                problems.append(f"{self.at(str(key))}: unknown field (known: {', '.join(known)})")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def string(self, key: str, required: bool = False, default: Optional[str] = None,
               pattern: Optional[re.Pattern] = None, what: str = "") -> Optional[str]:
        value = self.data.get(key)
        if value is None:
            if required:
                self.problems.append(f"{self.at(key)}: is required")
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problems.append(f"{self.at(key)}: must be text, got {kind_of(value)}")
            return default
        text = str(value)
        if not text.strip():
            self.problems.append(f"{self.at(key)}: must not be empty")
            return default
        if pattern is not None and not pattern.match(text):
            self.problems.append(f"{self.at(key)}: {text!r} is not {what}")
            return default
        return text

    def integer(self, key: str, default: Optional[int] = None, minimum: int = 0,
                maximum: Optional[int] = None) -> Optional[int]:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(f"{self.at(key)}: must be a whole number, got {kind_of(value)}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            limit = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            self.problems.append(f"{self.at(key)}: must be {limit}, got {value}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problems.append(f"{self.at(key)}: must be true or false, got {kind_of(value)}")
            return default
        return value

    def strings(self, key: str) -> Tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.problems.append(f"{self.at(key)}: must be a list of names")
            return ()
        return tuple(value)

    def choice(self, key: str, choices: Tuple[str, ...]) -> Optional[str]:
        text = self.string(key)
        if text is not None and text not in choices:
            self.problems.append(f"{self.at(key)}: {text!r} is not one of {', '.join(choices)}")
            return None
        return text

    def duration(self, key: str, default: str) -> str:
        text = self.string(key, default=default)
        text = str(text)
        if not DURATION_PATTERN.match(text):
            self.problems.append(f"{self.at(key)}: {text!r} is not a duration such as 60s or 1min")
            return default
        return text


def zero_duration(text: str) -> bool:
    match = DURATION_PATTERN.match(text)
    return match is not None and int(match.group(1)) == 0


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__
