"""Keeps the README's parameter tables equal to the agents' parameter tables.

Sections are delimited by `<!-- params:NAME -->` and `<!-- /params:NAME -->`.
`python -m tests.tools.readme --update` rewrites them; the test suite fails
when they drift.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from computeha.ocf_lib.metadata import markdown_table
from tests.tools.agents import AGENTS, load, table_of

README = Path(__file__).resolve().parents[2] / "README.md"


def expected_sections() -> dict[str, str]:
    sections = {}
    for ref in AGENTS:
        agent = load(ref)
        if agent is not None:
            sections[ref.name] = markdown_table(table_of(agent), ref.protocol)
    return sections


def render(text: str) -> str:
    for name, table in expected_sections().items():
        pattern = re.compile(rf"(<!-- params:{re.escape(name)} -->\n).*?(<!-- /params:{re.escape(name)} -->)", re.S)
        text = pattern.sub(lambda m, table=table: m.group(1) + table + m.group(2), text)
    return text


def main() -> int:
    current = README.read_text()
    wanted = render(current)
    if "--update" in sys.argv:
        README.write_text(wanted)
        print("README parameter tables updated")
        return 0
    if wanted != current:
        print("README parameter tables are out of date: run make update-readme")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
