"""`make bench`: every benchmark of the project, one after another, each side by side with its reference tool.

Each benchmark prints its own output and table as it runs; this runner bounds
each one in time, collects the rows each one reports (tests.bench.rows: the
file named by $COMPUTEHA_BENCH_ROWS) and ends with ONE merged table of every
measure of every benchmark: measure, ours, reference, ratio, goal, met. A
benchmark that failed or timed out shows as such in that table. Benchmarks are
never part of the test suite: speed is measured here, not asserted in tests.

    python -m tests.bench.run_all [NAME_PART ...] [--json FILE]   e.g. `run_all templates ipmi`
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import List, NamedTuple

from tests.bench import rows as bench_rows


class Bench(NamedTuple):
    module: str
    args: List[str]
    limit_s: int
    what: str


BENCHES = [
    Bench("tests.bench.bench_fence_ipmi", ["--reps", "5"], 900,
          "fence_ipmi vs fence_ipmilan -P -C 3 on one ipmi_sim BMC (goal <= 0.25x)"),
    Bench("tests.bench.bench_ipmi", ["--reps", "5"], 900, "IPMI adapter alone vs fence_ipmilan"),
    Bench("tests.bench.bench_fence_compute", ["--reps", "5"], 1800,
          "fence_compute off vs fence-agents' fence_compute on the OpenStack rig (goal <= 0.5x)"),
    Bench("tests.bench.bench_evacuate", [], 3600,
          "NovaEvacuate vs legacy serial loop vs the rig's limit, N=50/100; N=200 through a 200 ms proxy"),
    Bench("tests.bench.bench_e2e", ["--reps", "3", "--servers", "5"], 1800,
          "end-to-end recovery on the real rigs: detection, fence, Nova mark-down, evacuation issue, rebuild"),
    Bench("tests.bench.bench_templates", ["--computes", "500"], 1800,
          "render 3+500 site vs crm_verify on the same CIB"),
]


def run_one(bench: Bench, rows_file: str) -> tuple:
    """Run one benchmark module; (exit code or "timeout", seconds, its rows)."""
    env = dict(os.environ, **{bench_rows.ENV: rows_file})
    started = time.monotonic()
    try:
        code = subprocess.run([sys.executable, "-m", bench.module, *bench.args], env=env,
                              timeout=bench.limit_s).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    return code, time.monotonic() - started, bench_rows.load(rows_file)


def main(argv: List[str]) -> int:
    json_out = ""
    if "--json" in argv:
        at = argv.index("--json")
        json_out = argv[at + 1] if at + 1 < len(argv) else ""
        argv = argv[:at] + argv[at + 2:]
    wanted = [b for b in BENCHES if not argv or any(a in b.module for a in argv)]
    summary, merged = [], []
    with tempfile.TemporaryDirectory(prefix="computeha-bench-") as folder:
        for bench in wanted:
            name = bench.module.rsplit(".", 1)[-1]
            print(f"\n=== {bench.module}: {bench.what}", flush=True)
            code, seconds, got = run_one(bench, os.path.join(folder, f"{name}.jsonl"))
            summary.append((name, code, seconds))
            for row in got:
                row["bench"] = name
            if code != 0:  # its partial rows stay; the failure is a row of its own
                got.append({"bench": name, "measure": f"(benchmark {'timed out' if code == 'timeout' else 'failed'}"
                            f" after {seconds:.0f}s, exit {code})", "ours": None})
            elif not got:
                got.append({"bench": name, "measure": "(no rows reported)", "ours": None})
            merged.extend(got)
    print("\n=== summary")
    print(f"{'benchmark':<36} {'result':>8} {'seconds':>8}")
    for name, code, seconds in summary:
        print(f"{name:<36} {('ok' if code == 0 else str(code)):>8} {seconds:8.1f}")
    load = os.getloadavg()
    print(f"\n=== all measures (seconds unless stated; ratio = ours / reference; load average at the end "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs)")
    print(bench_rows.table(merged))
    if json_out:
        with open(json_out, "w", encoding="utf-8") as handle:
            json.dump(merged, handle, indent=1, default=str)
    return 0 if all(code == 0 for _, code, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
