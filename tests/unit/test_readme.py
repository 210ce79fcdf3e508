"""The README stays true: its parameter tables equal the agents' tables, its commands exist."""
from __future__ import annotations

import re

from tests.tools import readme
from tests.tools.agents import AGENTS, load, table_of

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


# "`name` ... (default X" and "`name` defaults to X" in the README's prose (the tables are generated)
_PROSE_DEFAULT = re.compile(r"`(?P<name>[a-z_]+)`[^`.;]{0,40}?\bdefaults? (?:to |is )?(?P<value>[0-9A-Za-z_.-]+)")


def _defaults() -> dict:
    """Parameter name -> the set of its defaults across the agents' tables."""
    out: dict = {}
    for ref in AGENTS:
        agent = load(ref)
        if agent is None:
            continue
        for param in table_of(agent):
            out.setdefault(param.name, set()).add(param.default)
    return out


def _same(prose: str, default: object) -> bool:
    word = prose.strip().split()[0].rstrip("%").strip("`")
    if isinstance(default, bool):
        return word.lower() in (("true", "yes", "1", "on") if default else ("false", "no", "0", "off"))
    if isinstance(default, (int, float)):
        try:
            return float(word) == float(default)
        except ValueError:
            return False
    return word == str(default)


def test_the_readme_prose_states_no_default_the_tables_do_not_have() -> None:
    defaults = _defaults()
    seen = []
    for match in _PROSE_DEFAULT.finditer(TEXT):
        name, value = match.group("name"), match.group("value")
        if name not in defaults:
            continue  # a setting of another program (e.g. nova.conf), not one of ours
        seen.append(name)
        assert any(_same(value, d) for d in defaults[name]), (
            f"README says {name!r} defaults to {value.strip()!r}; the parameter table says "
            f"{sorted(map(str, defaults[name]))}")
    assert len(seen) >= 3, f"the prose-default pattern no longer matches the README ({seen})"
