"""The declarative parameter table: one per agent, the single source of truth.

From a ParamTable come the OCF and fence metadata, the parsing of OCF_RESKEY_*
variables, fence stdin lines and fence argv, validation (every problem at once),
help text and the README parameter tables.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Sequence

from .exitcodes import Ocf

# OCF truth spellings (ocf-shellfuncs ocf_is_true) plus their obvious negatives.
_TRUE = frozenset({"yes", "true", "1", "ja", "on", "y"})
_FALSE = frozenset({"no", "false", "0", "nein", "off", "n"})
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|msec|s|sec|m|min|h|hr)?\s*$", re.IGNORECASE)
_SECONDS_FACTOR = {None: 1.0, "ms": 0.001, "msec": 0.001, "s": 1.0, "sec": 1.0,
                   "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


class Kind(enum.Enum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    SECONDS = "seconds"
    SELECT = "select"


@dataclass(frozen=True)
class Problem:
    """One validation finding; `code` is the OCF code it implies."""

    param: str
    message: str
    code: Ocf = Ocf.ERR_CONFIGURED

    def __str__(self) -> str:
        return f"{self.param}: {self.message}" if self.param else self.message


Check = Callable[[Any], Optional[str]]


@dataclass(frozen=True)
class Param:
    """One parameter of an agent.

    `aliases` are legacy names accepted on input and listed (as deprecated) in
    the metadata. `short_opt` is the fence getopt letter; `metavar` names the
    value in fence getopt help. `check` returns a problem text or None.
    `ocf`/`fence` say in which protocol the parameter exists.
    """

    name: str
    kind: Kind
    shortdesc: str
    longdesc: str = ""
    default: Any = None
    required: bool = False
    secret: bool = False
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    short_opt: str = ""
    metavar: str = ""
    unique: bool = False
    check: Optional[Check] = None
    ocf: bool = True
    fence: bool = True
    # spellings that only fence metadata lists (as deprecated): fence-agents' hyphenated names such as
    # "project-domain"; input already folds '-' to '_', and OCF names cannot hold a '-'
    fence_spellings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind is Kind.SELECT and not self.choices:
            raise ValueError(f"select parameter {self.name} needs choices")
        if self.required and self.default is not None:
            raise ValueError(f"required parameter {self.name} cannot have a default")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,) + self.aliases

    def default_text(self) -> Optional[str]:
        """The default as written in metadata and docs."""
        if self.default is None:
            return None
        if self.kind is Kind.BOOLEAN:
            return "1" if self.default else "0"
        if self.kind is Kind.SECONDS:
            value = float(self.default)
            return str(int(value)) if value.is_integer() else str(value)
        return str(self.default)

    def convert(self, raw: str) -> Any:
        """Turn input text into a typed value; raises ValueError with a reason."""
        text = raw.strip()
        if self.kind is Kind.STRING:
            return raw
        if self.kind is Kind.BOOLEAN:
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("is not a boolean (use yes/no, true/false, 1/0, on/off)")
        if self.kind is Kind.INTEGER:
            try:
                value: Any = int(text, 10)
            except ValueError:
                raise ValueError("is not a whole number") from None
        elif self.kind is Kind.SECONDS:
            match = _SECONDS.match(text)
            if not match:
                raise ValueError("is not a duration (seconds, optionally with a unit: 30, 30s, 500ms, 2min)")
            value = float(match.group(1)) * _SECONDS_FACTOR[(match.group(2) or "").lower() or None]
        else:  # SELECT: case-insensitive, canonical spelling returned
            for choice in self.choices:
                if choice.lower() == text.lower():
                    return choice
            raise ValueError("must be one of: " + ", ".join(self.choices))
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {_num(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {_num(self.maximum)}")
        return value


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Values(Mapping[str, Any]):
    """Parsed, typed parameter values (defaults applied). Read-only."""

    def __init__(self, table: "ParamTable", values: Mapping[str, Any], given: Iterable[str]) -> None:
        self._table = table
        self._values = dict(values)
        self._given = frozenset(given)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def given(self, name: str) -> bool:
        """Whether the operator set this parameter (as opposed to its default)."""
        return name in self._given

    def secrets(self) -> list[str]:
        """Values of secret parameters, for the log redaction filter."""
        return [str(self._values[p.name]) for p in self._table if p.secret and self._values.get(p.name)]

    def replace(self, **changes: Any) -> "Values":
        merged = dict(self._values)
        merged.update(changes)
        return Values(self._table, merged, self._given | set(changes))

    def redacted(self) -> dict[str, Any]:
        """A copy safe to log: secret parameters masked."""
        return {k: ("****" if self._table[k].secret and v else v) for k, v in self._values.items()}


class ParamTable:
    """An immutable, ordered set of parameters with lookup by name or alias."""

    def __init__(self, params: Sequence[Param]) -> None:
        self._params: tuple[Param, ...] = tuple(params)
        self._by_name: dict[str, Param] = {}
        for param in self._params:
            for name in param.names:
                key = fold(name)
                if key in self._by_name:
                    raise ValueError(f"parameter name {name} is declared twice")
                self._by_name[key] = param

    def __iter__(self) -> Iterator[Param]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __getitem__(self, name: str) -> Param:
        return self._by_name[fold(name)]

    def get(self, name: str) -> Optional[Param]:
        return self._by_name.get(fold(name))

    def for_ocf(self) -> list[Param]:
        return [p for p in self._params if p.ocf]

    def for_fence(self) -> list[Param]:
        return [p for p in self._params if p.fence]

    def __add__(self, other: "ParamTable") -> "ParamTable":
        return ParamTable(self._params + other._params)

    def parse(self, raw: Mapping[str, str], params: Optional[Iterable[Param]] = None) -> tuple[Values, list[Problem]]:
        """Typed values from raw name->text input (names may be aliases).

        Empty text counts as unset. The canonical name wins over an alias.
        Returns every problem found, not just the first.
        """
        wanted = list(params) if params is not None else list(self._params)
        problems: list[Problem] = []
        values: dict[str, Any] = {}
        given: set[str] = set()
        for param in wanted:
            text, source = _pick(raw, param)
            if text is None or text.strip() == "":
                if param.required:
                    problems.append(Problem(param.name, "is required but not set"))
                values[param.name] = param.default
                continue
            try:
                value = param.convert(text)
            except ValueError as err:
                shown = "" if param.secret else f" {text.strip()!r}"
                via = "" if source == param.name else f" (given as {source})"
                problems.append(Problem(param.name, f"value{shown}{via} {err}"))
                values[param.name] = param.default
                continue
            if param.check is not None:
                message = param.check(value)
                if message:
                    problems.append(Problem(param.name, message))
            values[param.name] = value
            given.add(param.name)
        return Values(self, values, given), problems


def agent_checks(check: Callable[..., List[Problem]], table_broken: bool, *args: Any) -> List[Problem]:
    """An agent's own checks, run even when the table found problems, so that
    validate-all reports everything at once. With broken parameters the agent
    sees their defaults; if its checks trip over that, the table's problems
    already explain the failure."""
    try:
        return list(check(*args))
    except Exception:
        if table_broken:
            return []
        raise


def fold(name: str) -> str:
    """Parameter names are compared with '-' and '_' folded together."""
    return name.strip().replace("-", "_").lower()


def _pick(raw: Mapping[str, str], param: Param) -> tuple[Optional[str], str]:
    folded = {fold(k): v for k, v in raw.items()}
    for name in param.names:  # canonical name first, then aliases in order
        value = folded.get(fold(name))
        if value is not None and value.strip() != "":
            return value, name
    return folded.get(fold(param.name)), param.name


@dataclass(frozen=True)
class ActionSpec:
    """An OCF action as advertised in the metadata."""

    name: str
    timeout: int
    interval: int = 0
    depth: Optional[int] = None


@dataclass(frozen=True)
class AgentInfo:
    """What the metadata says about an agent besides its parameters."""

    name: str
    shortdesc: str
    longdesc: str
    version: str
    actions: tuple[ActionSpec, ...] = field(default_factory=tuple)
