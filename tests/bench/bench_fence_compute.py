"""Benchmark (not a test): fence_compute `off` (and `status`), ours vs fence-agents', on the rig.

Both agents run as fresh processes against the same real Keystone + Nova rig
and the same compute host, side by side (alternating which goes first), with
every option on stdin the way pacemaker-fenced passes them: the password is
never on a command line. Before each run the host is put back to
enabled / not forced down; after each `off` the bench checks in Nova that the
service really is forced down and disabled, so a fast wrong answer cannot win.

Reference: /usr/sbin/fence_compute from Debian's fence-agents, which needs
python3-novaclient and python3-keystoneclient (tests/bench/setup_fence_compute_reference.sh).
As shipped on Debian 12 it crashes on Python 3.11 (`inspect.getargspec` was
removed); the bench runs it unchanged through a one-line shim that aliases
getargspec to getfullargspec. Its attrd_updater call fails without a cluster,
which it ignores; ours keeps its record in the test-only file store
(tests.fakes.fence_compute_file_attrs), as in the rig integration tests.

    .venv/bin/python -m tests.bench.bench_fence_compute [--reps 5] [--host compute-2]
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
from typing import Callable, Dict, List

from tests.bench.rows import Row, emit

REPO = Path(__file__).resolve().parents[2]
REFERENCE = "/usr/sbin/fence_compute"
GOAL = 0.5  # ours / reference for `off` (issue 5)
SHIM = ("import inspect, runpy, sys; inspect.getargspec = inspect.getfullargspec; "
        f"sys.argv = [{REFERENCE!r}]; runpy.run_path({REFERENCE!r}, run_name='__main__')")
MAX_REPS = 20
TIMEOUT = 120.0


class BenchError(RuntimeError):
    pass


def _options(creds: Dict[str, str], host: str, action: str, extra: List[str] = ()) -> str:
    lines = [f"auth_url={creds['auth_url']}", f"login={creds['username']}", f"passwd={creds['password']}",
             f"tenant_name={creds['project_name']}", "user-domain=Default", "project-domain=Default",
             f"region_name={creds['region_name']}", f"endpoint_type={creds['interface']}", f"plug={host}",
             f"action={action}", "record_only=1", *extra]
    return "\n".join(lines) + "\n"


def _timed(argv: List[str], stdin: str, env: Dict[str, str]) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=TIMEOUT, cwd=str(REPO))
    elapsed = time.monotonic() - start
    if proc.returncode not in (0, 2):
        raise BenchError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--host", default="compute-2")
    args = ap.parse_args(argv)
    reps = max(1, min(args.reps, MAX_REPS))
    if not os.path.exists(REFERENCE):
        raise SystemExit(f"{REFERENCE} missing: run tests/bench/setup_fence_compute_reference.sh")

    from computeha.ocf_lib.nova_auth import AuthConfig
    from computeha.ocf_lib.nova_client import NovaClient
    from tests.fakes.file_attributes import ENV as ATTRS_ENV
    from tests.integration.nova_rig_helpers import admin_credentials
    from tests.rig.openstack.cloud import OpenStackRig
    from tests.rig.openstack.fixture import _lock_session

    rig = OpenStackRig()
    lock = _lock_session(rig)  # one user of the rig at a time (as the test sessions)
    if lock is None:
        raise SystemExit("another session holds the OpenStack rig lock")
    rig.up(say=lambda m: None)
    creds = admin_credentials(rig)
    nova = NovaClient.from_config(AuthConfig.from_values({"cloud": rig.cloud_name,
                                                          "clouds_yaml": str(rig.clouds_yaml)}))
    host = args.host
    workdir = tempfile.mkdtemp(prefix="bench-fc-")
    attrs_file = os.path.join(workdir, "attrs.json")
    env = dict(os.environ, PYTHONPATH=str(REPO), **{ATTRS_ENV: attrs_file})
    env_ref = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

    def service():
        found = nova.compute_services(host)
        if len(found) != 1:
            raise BenchError(f"no single compute service for {host}")
        return found[0]

    def reset() -> None:
        svc = service()
        if svc.forced_down:
            svc = nova.force_down(svc, False)
        if svc.status != "enabled":
            nova.set_enabled(svc, True)
        if os.path.exists(attrs_file):
            os.unlink(attrs_file)

    def verify_off(who: str) -> None:
        svc = service()
        if not (svc.forced_down and svc.status == "disabled"):
            raise BenchError(f"{who} off returned but Nova shows forced_down={svc.forced_down} status={svc.status}")

    token_dir = os.path.join(workdir, "tokens")
    ours_opts = [f"token_cache={token_dir}"]
    agents: Dict[str, Callable[[str], float]] = {
        "ours": lambda action: _timed([sys.executable, "-m", "tests.fakes.fence_compute_file_attrs"],
                                      _options(creds, host, action, ours_opts), env),
        "reference": lambda action: _timed(["/usr/bin/python3", "-c", SHIM], _options(creds, host, action), env_ref),
    }
    measures = ("off cold", "status", "off warm")
    results: Dict[str, Dict[str, List[float]]] = {m: {"ours": [], "reference": []} for m in measures}
    try:
        for rep in range(reps):
            order = ["ours", "reference"] if rep % 2 == 0 else ["reference", "ours"]
            for who in order:
                # cold: no cached Keystone token (the reference never caches one)
                shutil.rmtree(token_dir, ignore_errors=True)
                reset()
                results["off cold"][who].append(agents[who]("off"))
                verify_off(who)
                # warm: the periodic monitor/status ran before the fencing, as in a cluster
                reset()
                results["status"][who].append(agents[who]("status"))
                results["off warm"][who].append(agents[who]("off"))
                verify_off(who)
            print(f"rep {rep + 1}/{reps}: " + ", ".join(
                f"{m} ours {results[m]['ours'][-1]:.2f}s reference {results[m]['reference'][-1]:.2f}s"
                for m in measures), flush=True)
    finally:
        reset()
    print(f"\nfence_compute on {host}, {reps} repetitions, median seconds (min-max)")
    print(f"{'measure':<10} {'ours':>16} {'reference':>16} {'ratio':>7}")
    for measure, by in results.items():
        ours, ref = statistics.median(by["ours"]), statistics.median(by["reference"])
        print(f"{measure:<10} {ours:>7.2f} ({min(by['ours']):.2f}-{max(by['ours']):.2f}) "
              f"{ref:>7.2f} ({min(by['reference']):.2f}-{max(by['reference']):.2f}) {ours / ref:>6.2f}x")
    notes = {"off cold": "no cached Keystone token on either side", "off warm": "after a status run (token cached)"}
    emit([Row("fence_compute", f"{measure} on {host}", statistics.median(by["ours"]),
              statistics.median(by["reference"]),
              reference_name="fence-agents fence_compute", max_ratio=GOAL if measure.startswith("off") else None,
              note="; ".join(x for x in (notes.get(measure, ""), f"median of {reps}") if x))
          for measure, by in results.items()], f"fence_compute vs fence-agents' on {host}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
