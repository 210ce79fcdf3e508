"""Benchmark (not a test): rendering a large site vs crm_verify on the same CIB.

A site of 3 controllers + N computes (default 500) is validated, built and
rendered in each format; the CIB rendering is then checked with
`crm_verify --xml-file` (the real tool must accept it: the run fails
otherwise). Prints median seconds of each step over --reps runs.

    .venv/bin/python -m tests.bench.bench_templates [--computes 500] [--reps 3]
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import yaml

from computeha.crm_templates.render import parse_site, render
from tests.bench.rows import Row, emit

MAX_COMPUTES = 2000
MAX_REPS = 20


def site_text(computes: int) -> str:
    return yaml.safe_dump({
        "name": "bench",
        "controllers": [{"name": f"ctl{i}", "nodeid": i,
                         "bmc": {"address": f"10.0.0.{i}", "username": "admin",
                                 "password_script": f"/usr/local/sbin/bmc-pw ctl{i}"}} for i in (1, 2, 3)],
        "computes": [{"name": f"compute-{i}", "address": f"10.1.{i // 250}.{i % 250 + 1}",
                      "bmc": {"address": f"10.2.{i // 250}.{i % 250 + 1}", "username": "admin",
                              "password_cib_secret": True}} for i in range(1, computes + 1)],
        "cloud": {"cloud": "overcloud"},
    })


def timed(fn: Callable[[], object], reps: int) -> List[float]:
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def crm_verify(path: Path) -> None:
    proc = subprocess.run(["crm_verify", "--xml-file", str(path)], capture_output=True, text=True, timeout=600)
    errors = [line for line in proc.stderr.splitlines() if re.search(r"\berror\b", line, re.I)
              and "Errors found" not in line]
    if proc.returncode not in (0, 78) or errors:
        raise SystemExit(f"crm_verify rejected the rendering (rc {proc.returncode}): {proc.stderr[-1000:]}")


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--computes", type=int, default=500)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    computes = max(1, min(args.computes, MAX_COMPUTES))
    reps = max(1, min(args.reps, MAX_REPS))
    text = site_text(computes)
    site = parse_site(text)
    results: Dict[str, List[float]] = {"validate": timed(lambda: parse_site(text), reps)}
    for fmt in ("cib", "pcs", "crmsh"):
        results[f"render {fmt}"] = timed(lambda fmt=fmt: render(site, fmt), reps)
    with tempfile.TemporaryDirectory(prefix="computeha-bench-") as folder:
        cib = Path(folder) / "site.xml"
        cib.write_text(render(site, "cib"))
        results["crm_verify"] = timed(lambda: crm_verify(cib), reps)
        size = cib.stat().st_size
    print(f"site: 3 controllers + {computes} computes; CIB {size / 1024:.0f} KiB; median of {reps} runs")
    for name, values in results.items():
        print(f"  {name:<14} {statistics.median(values):8.3f} s   (min {min(values):.3f}, max {max(values):.3f})")
    verify = statistics.median(results["crm_verify"])
    emit([Row("templates", f"{name} 3+{computes} site", statistics.median(values), verify,
              reference_name="crm_verify", note=f"median of {reps}, CIB {size / 1024:.0f} KiB")
          for name, values in results.items() if name != "crm_verify"],
         "rendering vs crm_verify on the same CIB (no goal set: shown for scale)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
