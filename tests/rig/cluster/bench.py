"""Timings and memory of the cluster rig (a measurement, not a test).

    python -m tests.rig.cluster.bench [--keep]

Brings a fresh rig up (tearing down a running one), then on compute-0: BMC power loss ->
fence confirmed -> power on -> rejoined; on the last compute: partition -> fence confirmed
-> heal + power on -> rejoined. Prints one JSON document; tears the rig down unless --keep.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Dict

from tests.rig.cluster.cluster import Cluster


def _scenario(rig: Cluster, node: str, partition: bool) -> Dict[str, float]:
    already = len(rig.successful_fences(node))
    t0 = time.monotonic()
    if partition:
        rig.partition(node)
    else:
        rig.power_off(node)
    rig.wait_fenced(node, timeout=300, already=already)
    fenced = time.monotonic() - t0
    rig.wait_node(node, online=False, timeout=120)
    if partition:
        rig.heal(node)
    t1 = time.monotonic()
    rig.power_on(node)
    rig.wait_node(node, online=True, timeout=300)
    rejoined = time.monotonic() - t1
    rig.wait_converged(timeout=300)
    return {"to_fence_confirmed_s": round(fenced, 2), "power_on_to_online_s": round(rejoined, 2),
            "power_on_to_converged_s": round(time.monotonic() - t1, 2)}


def main(argv: "list[str]") -> int:
    rig = Cluster()
    rig.down(quiet=True)
    rig.up()
    result: Dict[str, object] = {"bring_up": {k: round(v, 2) for k, v in rig.timings.items()},
                                 "nodes": [n.name for n in rig.layout.nodes]}
    mem = rig.memory_kib()
    result["memory_mib"] = {k: round(v / 1024, 1) for k, v in mem.items()}
    result["memory_total_mib"] = round(sum(mem.values()) / 1024, 1)
    computes = [n.name for n in rig.layout.computes]
    result["power_loss"] = _scenario(rig, computes[0], partition=False)
    result["partition"] = _scenario(rig, computes[-1], partition=True)
    t = time.monotonic()
    if "--keep" not in argv:
        rig.down(quiet=True)
        result["tear_down_s"] = round(time.monotonic() - t, 2)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
