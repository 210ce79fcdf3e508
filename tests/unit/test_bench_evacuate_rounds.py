"""The NovaEvacuate benchmark's rounds: rotation, medians and the paired ratios its table reports."""
from tests.bench import bench_evacuate as bench


def test_each_round_starts_with_the_next_contender():
    order = ["limit", "ours", "legacy"]
    assert [bench.rotated(order, r) for r in range(4)] == [
        ["limit", "ours", "legacy"], ["ours", "legacy", "limit"], ["legacy", "limit", "ours"],
        ["limit", "ours", "legacy"]]


def test_rounds_merge_to_medians_with_every_run_kept():
    samples = {
        "limit(c=4)": [{"seconds": 27.0, "counts": {1: 50}}, {"seconds": 40.0, "counts": {1: 50}},
                       {"seconds": 30.0, "counts": {1: 50}}],
        "limit(c=8)": [{"seconds": 35.0}, {"seconds": 30.0}, {"seconds": 33.0}],
        "ours": [{"seconds": 36.0, "first_call": 0.9, "peak_rss_kb": 38000, "counts": {1: 50}},
                 {"seconds": 23.0, "first_call": 1.2, "peak_rss_kb": 39000, "counts": {1: 50}},
                 {"seconds": 30.0, "first_call": 1.0, "peak_rss_kb": 37000, "counts": {1: 49, 2: 1}}],
    }
    merged = bench.merge_rounds(samples)
    assert merged["limit(c=4)"]["seconds"] == 30.0 and merged["limit(c=4)"]["runs"] == [27.0, 40.0, 30.0]
    ours = merged["ours"]
    assert ours["seconds"] == 30.0 and ours["runs"] == [36.0, 23.0, 30.0]
    assert ours["first_call"] == 1.2 and ours["peak_rss_kb"] == 39000  # the worst run, not the median one
    assert ours["counts"] == {1: 149, 2: 1}  # one instance evacuated twice in one run stays visible
    # paired: each round's ours against that round's best plain loop
    assert [round(r, 3) for r in ours["paired_ratios"]] == [round(36 / 27, 3), round(23 / 30, 3), 1.0]


def test_the_summary_row_judges_medians_and_shows_the_spread():
    merged = bench.merge_rounds({
        "limit(c=4)": [{"seconds": 20.0}, {"seconds": 40.0}, {"seconds": 30.0}],
        "ours": [{"seconds": 35.0}, {"seconds": 25.0}, {"seconds": 37.0}]})
    row = bench.summary_rows({"sizes": {50: merged}})[0]
    assert row.ours == 35.0 and row.reference == 30.0 and row.met is True  # 1.17x of the median limit
    assert "medians of 3 rounds" in row.measure
    assert "ours runs 35.0/25.0/37.0" in row.note and "limit(c=4) runs 20.0/40.0/30.0" in row.note
    assert "median per-round ratio 1.23" in row.note  # 1.75, 0.62, 1.23: the paired view can disagree


def test_one_round_keeps_the_single_run_table():
    merged = bench.merge_rounds({"limit(c=4)": [{"seconds": 27.3}], "ours": [{"seconds": 36.0}]})
    row = bench.summary_rows({"sizes": {50: merged}})[0]
    assert row.ours == 36.0 and row.met is False and "rounds" not in row.measure
    assert "paired_ratios" not in merged["ours"]
