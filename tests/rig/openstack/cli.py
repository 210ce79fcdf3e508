"""Command line for the OpenStack test rig (used by up.sh / down.sh).

    python -m tests.rig.openstack.cli up|down|status|guests
    python -m tests.rig.openstack.cli boot N [--host H ...]
    python -m tests.rig.openstack.cli kill-compute|start-compute|power-off|power-on HOST
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from tests.rig.openstack.cloud import OpenStackRig, RigNotInstalled


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="openstack-rig")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "down", "status", "guests"):
        sub.add_parser(name)
    boot = sub.add_parser("boot")
    boot.add_argument("count", type=int)
    boot.add_argument("--host", action="append")
    boot.add_argument("--flavor", default="m1.tiny")
    for name in ("kill-compute", "start-compute", "power-off", "power-on"):
        sub.add_parser(name).add_argument("host")
    args = ap.parse_args(argv)
    rig = OpenStackRig()
    t0 = time.monotonic()
    try:
        if args.cmd == "up":
            built = rig.up()
            print("rig %s in %.1fs; clouds.yaml: %s (cloud %s); logs: %s" % (
                "built" if built else "reused", time.monotonic() - t0, rig.clouds_yaml, rig.cloud_name, rig.logs))
        elif args.cmd == "down":
            rig.down()
        elif args.cmd == "status":
            print("installed: %s, control services healthy: %s" % (rig.installed(), rig.control_healthy()))
            for h in rig.compute_hosts:
                print("%s: power %s, nova-compute %s, %d guest record(s)" % (
                    h, rig.power_state(h), "running" if rig.compute_running(h) else "stopped", len(rig.guests(h))))
            mem = rig.memory_mib()
            print("memory (PSS MiB): %s; total %d" % (", ".join("%s=%d" % kv for kv in mem.items()),
                                                       sum(mem.values())))
            print("logs: %s" % rig.logs)
            return 0 if rig.healthy() else 1
        elif args.cmd == "guests":
            print(json.dumps({u: sorted(h) for u, h in rig.running_guests().items()}, indent=1, sort_keys=True))
        elif args.cmd == "boot":
            servers = rig.boot_servers(args.count, flavor=args.flavor, hosts=args.host)
            for s in servers:
                print(s.id, getattr(s, "OS-EXT-SRV-ATTR:host"), s.status)
        elif args.cmd == "kill-compute":
            rig.kill_compute(args.host)
        elif args.cmd == "start-compute":
            rig.start_compute(args.host)
        elif args.cmd == "power-off":
            rig.power_off(args.host)
        elif args.cmd == "power-on":
            rig.power_on(args.host)
    except RigNotInstalled as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
