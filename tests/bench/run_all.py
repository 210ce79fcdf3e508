"""`make bench`: every benchmark of the project, one after another, each side by side with its reference tool.

Each benchmark prints its own table (measure, ours, reference, ratio, goal);
this runner bounds each one in time, shows its output as it comes and ends
with a summary of which benchmarks ran. Benchmarks are never part of the test
suite: speed is measured here, not asserted in tests.
"""
from __future__ import annotations

import subprocess
import sys
import time
from typing import List, NamedTuple


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


def main(argv: List[str]) -> int:
    wanted = [b for b in BENCHES if not argv or any(a in b.module for a in argv)]
    summary = []
    for bench in wanted:
        print(f"\n=== {bench.module}: {bench.what}", flush=True)
        started = time.monotonic()
        try:
            code = subprocess.run([sys.executable, "-m", bench.module, *bench.args], timeout=bench.limit_s).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        summary.append((bench.module, code, time.monotonic() - started))
    print("\n=== summary")
    print(f"{'benchmark':<36} {'result':>8} {'seconds':>8}")
    for module, code, seconds in summary:
        print(f"{module.rsplit('.', 1)[-1]:<36} {('ok' if code == 0 else str(code)):>8} {seconds:8.1f}")
    return 0 if all(code == 0 for _, code, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
