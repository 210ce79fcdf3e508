"""End-to-end recovery time on the real rigs: power loss -> every instance ACTIVE elsewhere,
broken down into detection, fence, Nova mark-down, evacuation issue and rebuild, plus the
return to service (power on -> nova-compute re-enabled).

    python -m tests.bench.bench_e2e [--reps 3] [--servers 5] [--json FILE]

Brings both rigs up (reusing running ones), configures the cluster from our rendering
(tests.e2e.scenario), cuts the power of the first compute ``--reps`` times, and tears down
what it started. Times are observed by polling (about 0.5-1.5 s resolution on a loaded box).
There is no reference tool for the whole chain: the reference column stays empty.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Dict, List, Optional

from tests.bench.rows import Row, emit
from tests.e2e.scenario import Recovery, Stack

GOAL_TOTAL_S = 60.0  # power loss -> all ACTIVE, a few instances, loaded 2-core box


def breakdown(rec: Recovery) -> Dict[str, Optional[float]]:
    tl = rec.timeline

    def span(a: str, b: str) -> Optional[float]:
        return tl[b] - tl[a] if a in tl and b in tl else None

    return {
        "detection": tl.get("detected"),
        "fence (detected -> fence confirmed)": span("detected", "fenced"),
        "Nova mark-down (cut -> forced down)": tl.get("nova_down"),
        "evacuation issue (requested -> first evacuate)": span("requested", "evacuation_issued"),
        "rebuild (first evacuate -> all ACTIVE)": span("evacuation_issued", "all_active"),
        "total: power loss -> all ACTIVE": tl.get("all_active"),
        "return to service (power on -> re-enabled)": span("powered_on", "reenabled"),
    }


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--servers", type=int, default=5)
    ap.add_argument("--json", help="write every run's timeline here")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    stack = Stack(say=lambda m: print(f"[{time.monotonic() - t0:6.1f}s] {m}", flush=True))
    runs: List[Dict[str, Optional[float]]] = []
    rc = 0
    try:
        stack.bring_up()
        host = stack.hosts[0]
        for i in range(args.reps):
            stack.restore()
            servers = stack.boot(args.servers, host, prefix=f"bench-e2e-{i}")
            try:
                rec = stack.power_loss(host, servers, power_on="fenced")
            finally:
                stack.cloud.delete_servers(servers, timeout=180)
            runs.append(breakdown(rec))
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump(runs, fh, indent=1)
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", flush=True)
        rc = 1
    finally:
        try:
            stack.down()
        except Exception as exc:
            print(f"FAILED to tear down: {exc}", flush=True)
            rc = 1
    if runs:
        print(f"\nend-to-end recovery, {args.servers} instances, {len(runs)} run(s): median (min-max) s")
        print(f"{'measure':<50} {'ours':>18} {'reference':>10} {'ratio':>6} {'goal':>8}")
        for measure in runs[0]:
            values = [r[measure] for r in runs if r[measure] is not None]
            if not values:
                ours = "not seen"
            else:
                ours = f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"
            goal = f"<= {GOAL_TOTAL_S:.0f}" if measure.startswith("total") else ""
            print(f"{measure:<50} {ours:>18} {'-':>10} {'-':>6} {goal:>8}")
        summary = []
        for measure in runs[0]:
            values = [r[measure] for r in runs if r[measure] is not None]
            summary.append(Row("e2e", measure, statistics.median(values) if values else None,
                               max_value=GOAL_TOTAL_S if measure.startswith("total") else None,
                               note=(f"median of {len(values)}, {args.servers} instances, no reference tool"
                                     if values else "not seen")))
        emit(summary, "end-to-end recovery (no reference tool for the whole chain)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
