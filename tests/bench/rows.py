"""The rows every benchmark reports for `make bench`'s merged table.

A benchmark module builds `Row`s (measure, ours, reference, goal) and calls
`emit(rows)`: it prints them as its own summary and, when run by run_all,
also appends them as JSON lines to the file named by $COMPUTEHA_BENCH_ROWS
(a module run alone just prints). run_all reads the rows of every module and
prints one table at the end.

A goal is either a bound on the ratio ours/reference (`max_ratio`) or a bound
on ours itself (`max_value`, same unit as ours); `met` is None without a goal
or without the numbers to judge it.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Iterable, List, Optional

ENV = "COMPUTEHA_BENCH_ROWS"


@dataclass
class Row:
    bench: str
    measure: str
    ours: Optional[float]
    reference: Optional[float] = None
    unit: str = "s"
    reference_name: str = ""
    max_ratio: Optional[float] = None  # goal: ours / reference <= this
    max_value: Optional[float] = None  # goal: ours <= this
    goal_text: str = ""  # overrides the generated goal text (e.g. for a goal against a computed bound)
    note: str = ""

    @property
    def ratio(self) -> Optional[float]:
        if self.ours is None or not self.reference:
            return None
        return self.ours / self.reference

    @property
    def goal(self) -> str:
        if self.goal_text:
            return self.goal_text
        if self.max_ratio is not None:
            return f"<= {self.max_ratio:g}x"
        if self.max_value is not None:
            return f"<= {self.max_value:g} {self.unit}".rstrip()
        return ""

    @property
    def met(self) -> Optional[bool]:
        if self.max_ratio is not None:
            return None if self.ratio is None else self.ratio <= self.max_ratio
        if self.max_value is not None:
            return None if self.ours is None else self.ours <= self.max_value
        return None

    def to_json(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "goal": self.goal, "met": self.met}


def _num(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text} {unit}".rstrip() if unit != "s" else text


def _met(value: Optional[bool]) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def table(rows: Iterable[dict], with_bench: bool = True) -> str:
    """Rows as a text table (rows as given by Row.to_json, so that files from other processes work too)."""
    head = (["bench"] if with_bench else []) + ["measure", "ours", "reference", "ratio", "goal", "met", "note"]
    lines: List[List[str]] = [head]
    for r in rows:
        ratio = "-" if r.get("ratio") is None else (f"{r['ratio']:.2f}x" if r["ratio"] >= 0.1 else f"{r['ratio']:.1g}x")
        ref = _num(r.get("reference"), r.get("unit", "s"))
        if r.get("reference_name") and r.get("reference") is not None:
            ref = f"{ref} ({r['reference_name']})"
        cells = ([r.get("bench", "")] if with_bench else []) + [
            r.get("measure", ""), _num(r.get("ours"), r.get("unit", "s")), ref, ratio,
            r.get("goal") or "-", _met(r.get("met")), r.get("note", "")]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def emit(rows: List[Row], title: str = "") -> None:
    """Print the rows (seconds unless stated) and hand them to run_all if it asked for them."""
    data = [r.to_json() for r in rows]
    print(f"\n{title or 'summary'} (seconds unless stated; ratio = ours / reference)")
    print(table(data, with_bench=False), flush=True)
    path = os.environ.get(ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            for item in data:
                handle.write(json.dumps(item, default=str) + "\n")


def load(path: str) -> List[dict]:
    """The rows a module wrote (an unreadable line is skipped: a module killed mid-write)."""
    out = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return out
