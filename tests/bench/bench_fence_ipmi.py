"""Benchmark (not a test): fence_ipmi vs fence-agents' fence_ipmilan -P -C 3 on one ipmi_sim BMC.

Our agent is installed with `make install DESTDIR=<tmp>` (the wrapper an operator
gets) and plugged into the IPMI harness (tests/bench/bench_ipmi.py) as "ours";
the reference is fence_ipmilan with lanplus=1 cipher=3 and its own defaults.
Both get their options on stdin the way pacemaker-fenced passes them, and both
run against the same BMC, interleaved. Each repetition is checked in the BMC's
power state file and chassis log (a fast wrong answer cannot win):
  off     power off with confirmation (fence_ipmilan: power_wait 2 s, then status;
          fence_ipmi: set, then poll the chassis power state in the same session)
  reboot  off confirmed, then on confirmed

    .venv/bin/python -m tests.bench.bench_fence_ipmi [--reps 5] [--power-wait N]

Goal (issue 4): ours <= 0.25x the reference for both measures.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

from tests.bench import bench_ipmi
from tests.bench.rows import emit

GOAL = 0.25


def install_ours(root: Path) -> Path:
    from tests.integration.test_fence_ipmi import install_fence_ipmi

    return install_fence_ipmi(root)


def ratio_lines(rows: List[dict]) -> List[str]:
    lines = []
    for row in rows:
        ratio = statistics.median(row["ours"]) / statistics.median(row["reference"])
        verdict = "met" if ratio <= GOAL else "NOT met"
        lines.append(f"{row['measure']}: ours/reference = {ratio:.3f}x (goal <= {GOAL}x: {verdict})")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_fence_ipmi", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--power-wait", help="power_wait for fence_ipmilan (its default: 2)")
    a = p.parse_args(argv)

    ref_exe = shutil.which("fence_ipmilan") or shutil.which("fence_ipmilan", path="/usr/sbin:/sbin")
    if ref_exe is None:
        p.error("fence_ipmilan not found (tests/rig/bmc/install.sh installs fence-agents)")
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="bench-fence-ipmi-"))
    try:
        ours_exe = install_ours(root)
        extra = {"power_wait": a.power_wait} if a.power_wait is not None else None
        rows = bench_ipmi.run_bench(bench_ipmi.agent_measures([str(ours_exe)]),
                                    bench_ipmi.agent_measures([ref_exe], extra), a.reps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ref_name = "fence_ipmilan -P -C 3" + (f" power_wait={a.power_wait}" if extra else "")
    print(bench_ipmi.format_table(rows, "fence_ipmi (installed)", ref_name))
    print("\n".join(ratio_lines(rows)))
    # both sides pay the same machine load, but absolute times are only comparable at equal load
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, "
          f"{os.cpu_count()} CPUs")
    emit(bench_ipmi.summary_rows("fence_ipmi", rows, "fence_ipmi", ref_name, max_ratio=GOAL),
         f"fence_ipmi vs {ref_name}, median of {a.reps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
