"""The committed fault matrix (docs/fault-matrix.md) has exactly one row per declared scenario,
with the declared expectation, and every row carries an observation and a result."""
from __future__ import annotations

from tests.tools import fault_report as fr


def test_every_declared_scenario_has_a_row_and_nothing_else() -> None:
    declared = {r.key: r for r in fr.declared_scenarios()}
    assert declared, "no @pytest.mark.fault scenario found"
    assert fr.DOC.exists(), "docs/fault-matrix.md missing: run the suite (make test)"
    rows = fr.parse_doc(fr.DOC.read_text())
    assert set(rows) == set(declared), {"missing": sorted(set(declared) - set(rows)),
                                         "stale": sorted(set(rows) - set(declared))}
    for key, row in rows.items():
        assert row.expected == " ".join(declared[key].expected.split()), key
        assert row.observed not in ("", "-") and row.result not in ("", "-"), key


def test_round_trip_keeps_pipes_and_drops_stale_rows(tmp_path) -> None:
    row = fr.Row("Area", "a | b", "x", "seen 1|2", "passed (3 s)")
    text = fr.render_doc([row])
    assert fr.parse_doc(text) == {row.key: row}
    doc = tmp_path / "m.md"
    doc.write_text(fr.render_doc([row, fr.Row("Gone", "old", "y", "z", "passed")]))
    collector = fr._Collector(observed={row.key: row})
    real = fr.declared_scenarios
    fr.declared_scenarios = lambda root=None: [fr.Row("Area", "a | b", "x")]
    try:
        collector.finish(doc)
    finally:
        fr.declared_scenarios = real
    assert list(fr.parse_doc(doc.read_text())) == [row.key]
