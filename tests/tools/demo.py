"""`make demo`: the main job, for real.

Brings up the OpenStack rig and the cluster rig (or reuses running ones), configures the
cluster from our own crm_templates rendering, boots instances on one compute, cuts that
compute's power through its BMC, and narrates the recovery as it is observed: fenced over
IPMI, forced down in Nova, instances evacuated and ACTIVE elsewhere, node powered on,
nova-compute held by NovaCompute until the evacuation is done, then re-enabled. Ends with
a summary of the timings and tears down what it started. Exit status 0 only if every step
was seen and the end state checks out.

Options: --keep (leave what it started running), --servers N (default 3).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from tests.e2e.scenario import STEPS, Recovery, Stack

T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def check_end_state(stack: Stack, rec: Recovery) -> List[str]:
    """What is wrong with the end state (empty when the recovery is right)."""
    problems = []
    for sid, st in stack.servers_state(rec.servers).items():
        if st["status"] != "ACTIVE" or st["host"] == rec.host or st["power_state"] != 1:
            problems.append(f"server {sid}: {st}")
    evacuated = {m.instance_uuid for m in stack.migrations(rec.host)}
    missing = set(rec.servers) - evacuated
    if missing:
        problems.append(f"no evacuation record for {sorted(missing)}")
    if er_done_not_seen(rec):
        problems.append(f"the cluster record never said done (seen: {rec.records})")
    if rec.nova_compute_started_before_done:
        problems.append("nova-compute started before the evacuation was done")
    zombies = stack.cloud.zombies()
    if zombies:
        problems.append(f"instances running on two hosts: {zombies}")
    return problems


def er_done_not_seen(rec: Recovery) -> bool:
    return "done" not in rec.records


def summary(rec: Recovery) -> str:
    tl = rec.timeline
    lines = ["", "Timeline (seconds after the power cut; observed by polling, +-1 s):"]
    order = sorted(STEPS, key=lambda sl: tl.get(sl[0], float("inf")))
    for step, label in order:
        at = tl.get(step)
        lines.append(f"  {'-' if at is None else f'{at:6.1f}':>6}  {label}")

    def span(a: str, b: str) -> str:
        return "n/a" if a not in tl or b not in tl else f"{tl[b] - tl[a]:.1f} s"

    lines += ["", "Recovery (power loss -> all instances ACTIVE elsewhere):",
              f"  detection          {tl.get('detected', float('nan')):.1f} s",
              f"  fence              {span('detected', 'fenced')}",
              f"  Nova mark-down     {tl.get('nova_down', float('nan')):.1f} s after the cut",
              f"  evacuation issue   {span('fenced', 'evacuation_issued')} after the fence",
              f"  rebuild            {span('evacuation_issued', 'all_active')}",
              f"  total              {tl.get('all_active', float('nan')):.1f} s",
              f"  return to service  {span('powered_on', 'reenabled')} (power on -> re-enabled)",
              f"  cluster record     {' -> '.join(rec.records)} -> cleared"]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="leave what the demo started running")
    ap.add_argument("--servers", type=int, default=3)
    args = ap.parse_args(argv)

    stack = Stack(say=say)
    rc = 1
    try:
        say("computeha demo: Instance HA on a real Nova and a real Pacemaker cluster")
        stack.bring_up()
        victim = stack.hosts[0]
        say(f"cluster ready: NovaEvacuate on {stack.evacuate_running_on()}, nova-compute "
            f"under NovaCompute on {', '.join(stack.hosts)}")
        say(f"booting {args.servers} instances on {victim}...")
        servers = stack.boot(args.servers, victim, prefix="demo")
        say(f"  {len(servers)} instances ACTIVE on {victim}")
        rec = stack.power_loss(victim, servers, power_on="fenced")
        problems = check_end_state(stack, rec)
        print(summary(rec), flush=True)
        if problems:
            say("FAILED: the end state is wrong:")
            for p in problems:
                say(f"  - {p}")
        else:
            placed = {st['host'] for st in stack.servers_state(servers).values()}
            say(f"OK: {len(servers)} instances evacuated to {', '.join(sorted(placed))}, "
                f"{victim} back in service, no instance ran twice")
            rc = 0
        stack.cloud.delete_servers(servers, timeout=120)
    except KeyboardInterrupt:
        say("interrupted")
        rc = 130
    except Exception as exc:  # the demo says what failed, in one line, and exits non-zero
        say(f"FAILED: {type(exc).__name__}: {exc}")
        rc = 1
    finally:
        if args.keep:
            say("--keep: leaving the rigs running (make rig-down stops them)")
        else:
            try:
                stack.down()
            except Exception as exc:
                say(f"FAILED to tear down: {exc}")
                rc = rc or 1
    say("demo finished" + ("" if rc == 0 else f" with errors (exit {rc})"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
