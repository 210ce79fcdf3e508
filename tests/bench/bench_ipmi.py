"""Benchmark (not a test): fencing speed against one ipmi_sim BMC.

Times N repetitions of "power off with confirmation" and "reboot" with
  ours:      by default the IPMI adapter directly (one session: set, then poll
             until the state matches); or any fence agent executable;
  reference: fence-agents' fence_ipmilan with lanplus and cipher 3.
Every repetition starts from power on and is checked afterwards in the BMC's
power state file and chassis log, so a fast wrong answer cannot win.

Fence agents get all options on stdin as name=value lines, the way Pacemaker
calls them (fence-agents reads stdin only when argv is empty, so lanplus=1 and
cipher=3 are the stdin forms of -P -C 3): no password on our command line.
Note: fence_ipmilan itself passes the password to ipmitool with -P; the bench
uses a throwaway random password on a loopback-only BMC.

    .venv/bin/python -m tests.bench.bench_ipmi [--reps 5] [--power-wait 0]
        [--ours adapter | module:computeha.fence.fence_ipmi | PATH]

Plug in another "ours": a Measure is a function (bmc) -> seconds, e.g.
    run_bench({"off": my_off, "reboot": my_reboot}, reps=5)
or agent_measures(["path/to/fence_agent"]) for an executable fence agent.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from tests.bench.rows import Row, emit
from tests.rig.bmc import bmcrig

Measure = Callable[[bmcrig.Bmc], float]
MEASURES = ("off", "reboot")
MAX_REPS = 50
AGENT_TIMEOUT = 120.0
ADAPTER_TIMEOUT = 10.0
POLL_INTERVAL = 0.05


class BenchError(RuntimeError):
    pass


# -- ours: the adapter ---------------------------------------------------------
def _adapter_target(bmc: bmcrig.Bmc):
    from computeha.ocf_lib.ipmi import BmcTarget

    return BmcTarget(host=bmc.host, port=bmc.port, username=bmc.username,
                     password=bmc.password(), cipher=3)


def _set_and_confirm(dev, state: str, deadline: float) -> None:
    dev.set_power(state)
    while dev.get_power() != state:
        if time.monotonic() >= deadline:
            raise BenchError(f"power did not reach {state}")
        time.sleep(POLL_INTERVAL)


def adapter_off(bmc: bmcrig.Bmc) -> float:
    from computeha.ocf_lib.ipmi import open_session

    start = time.monotonic()
    with open_session(_adapter_target(bmc), ADAPTER_TIMEOUT) as dev:
        _set_and_confirm(dev, "off", start + AGENT_TIMEOUT)
    return time.monotonic() - start


def adapter_reboot(bmc: bmcrig.Bmc) -> float:
    from computeha.ocf_lib.ipmi import open_session

    start = time.monotonic()
    with open_session(_adapter_target(bmc), ADAPTER_TIMEOUT) as dev:
        _set_and_confirm(dev, "off", start + AGENT_TIMEOUT)
        _set_and_confirm(dev, "on", start + AGENT_TIMEOUT)
    return time.monotonic() - start


ADAPTER: Dict[str, Measure] = {"off": adapter_off, "reboot": adapter_reboot}


# -- fence agents on stdin -----------------------------------------------------
def agent_measures(argv: Sequence[str], extra: Optional[Dict[str, str]] = None
                   ) -> Dict[str, Measure]:
    """Measures that run a fence agent (argv without options) per action."""

    def run(bmc: bmcrig.Bmc, action: str) -> float:
        opts = {"ip": bmc.host, "ipport": str(bmc.port), "username": bmc.username,
                "password": bmc.password(), "lanplus": "1", "cipher": "3",
                "action": action, **(extra or {})}
        stdin = "".join(f"{k}={v}\n" for k, v in opts.items())
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "LC_ALL": "C", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
        start = time.monotonic()
        res = subprocess.run(list(argv), input=stdin, env=env, capture_output=True,
                             text=True, timeout=AGENT_TIMEOUT)
        elapsed = time.monotonic() - start
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["?"])[-1]
            raise BenchError(f"{argv[0]} {action} exited {res.returncode}: {last}")
        return elapsed

    return {"off": lambda bmc: run(bmc, "off"), "reboot": lambda bmc: run(bmc, "reboot")}


# -- harness -------------------------------------------------------------------
def _applied(bmc: bmcrig.Bmc) -> List[str]:
    return [c.split(" ", 1)[1] for c in bmc.chassis_calls() if " applied power " in c]


def _one(bmc: bmcrig.Bmc, measure: str, fn: Measure) -> float:
    bmc.set_power_file("on")
    before = len(_applied(bmc))
    seconds = fn(bmc)
    new = _applied(bmc)[before:]
    if bmc.power() != ("off" if measure == "off" else "on"):
        raise BenchError(f"{measure}: BMC ended {bmc.power()}")
    expected = ["applied power 0 (was 1)"]
    if measure == "reboot":
        expected.append("applied power 1 (was 0)")
    if [c for c in new if "(was" in c and c.split()[2] != c.split()[-1].rstrip(")")] != expected:
        raise BenchError(f"{measure}: unexpected power changes {new}")
    return seconds


def run_bench(ours: Dict[str, Measure], reference: Dict[str, Measure], reps: int,
              bmc: Optional[bmcrig.Bmc] = None) -> List[dict]:
    """Time each measure reps times for ours and the reference on one BMC
    (a fresh one if none is given); returns one row per measure."""
    if not 1 <= reps <= MAX_REPS:
        raise BenchError(f"reps must be within 1..{MAX_REPS}")
    own_dir = None
    if bmc is None:
        own_dir = Path(tempfile.mkdtemp(prefix="bench-ipmi-"))
        bmc = bmcrig.start(bmcrig.BmcSpec(name="bench"), own_dir / "bench")
    try:
        rows = []
        for measure in MEASURES:
            times = {"ours": [], "reference": []}
            for _ in range(reps):  # interleaved, so drift hits both alike
                times["ours"].append(_one(bmc, measure, ours[measure]))
                times["reference"].append(_one(bmc, measure, reference[measure]))
            rows.append({"measure": measure, **times})
        return rows
    finally:
        if own_dir is not None:
            bmcrig.stop(bmc.dir)
            shutil.rmtree(own_dir, ignore_errors=True)


def format_table(rows: List[dict], ours_name: str, ref_name: str) -> str:
    def cell(ts: List[float]) -> str:
        return f"{statistics.median(ts):.3f} ({min(ts):.3f}-{max(ts):.3f})"

    head = ("measure", f"ours: {ours_name}", f"reference: {ref_name}", "ratio ref/ours")
    lines = [head]
    for r in rows:
        ratio = statistics.median(r["reference"]) / statistics.median(r["ours"])
        lines.append((f"{r['measure']} (n={len(r['ours'])})", cell(r["ours"]),
                      cell(r["reference"]), f"{ratio:.1f}x"))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out) + "\nseconds: median (min-max)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_ipmi", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--ours", default="adapter",
                   help="'adapter' (default), 'module:PKG.MOD' (a fence agent run as "
                        "python -m PKG.MOD) or the path of a fence agent executable")
    p.add_argument("--reference", default="fence_ipmilan")
    p.add_argument("--power-wait", help="power_wait for the reference (its default: 2)")
    a = p.parse_args(argv)

    ref_exe = shutil.which(a.reference) or shutil.which(a.reference, path="/usr/sbin")
    if ref_exe is None:
        p.error(f"{a.reference} not found (tests/rig/bmc/install.sh installs fence-agents)")
    extra = {"power_wait": a.power_wait} if a.power_wait is not None else None
    reference = agent_measures([ref_exe], extra)
    if a.ours == "adapter":
        ours, ours_name = ADAPTER, "adapter"
    elif a.ours.startswith("module:"):
        module = a.ours.split(":", 1)[1]
        ours, ours_name = agent_measures([sys.executable, "-m", module]), module
    else:
        ours, ours_name = agent_measures([a.ours]), Path(a.ours).name
    ref_name = Path(ref_exe).name + (f" power_wait={a.power_wait}" if extra else "")
    rows = run_bench(ours, reference, a.reps)
    print(format_table(rows, ours_name, ref_name))
    emit(summary_rows("ipmi", rows, ours_name, ref_name), f"{ours_name} vs {ref_name}, median of {a.reps}")
    return 0


def summary_rows(bench: str, rows: List[dict], ours_name: str, ref_name: str,
                 max_ratio: Optional[float] = None) -> List[Row]:
    """The merged-table rows of run_bench's result (medians, ratio ours/reference)."""
    return [Row(bench, f"{r['measure']} ({ours_name})", statistics.median(r["ours"]),
                statistics.median(r["reference"]), reference_name=ref_name, max_ratio=max_ratio,
                note=f"median of {len(r['ours'])}") for r in rows]


if __name__ == "__main__":
    sys.exit(main())
