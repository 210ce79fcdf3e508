"""The README stays true: its parameter tables equal the agents' tables, its commands exist."""
from __future__ import annotations

import re

from tests.tools import readme
from tests.tools.agents import AGENTS, load

TEXT = readme.README.read_text()


def test_every_present_agent_has_a_parameter_section_in_sync() -> None:
    present = [ref.name for ref in AGENTS if load(ref) is not None]
    for name in present:
        assert f"<!-- params:{name} -->" in TEXT, f"README lacks the parameter table of {name}"
    assert readme.render(TEXT) == TEXT, "README parameter tables drifted: run make update-readme"


def test_the_two_readme_commands_are_make_targets_and_ci_runs_the_test_one() -> None:
    makefile = (readme.README.parent / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert f"make {target}" in TEXT
    ci = (readme.README.parent / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "exec make test"
