"""Life and death of one rig node: boot, power loss, and the ipmi_sim chassis hook.

A node is a network namespace plus a mount/UTS namespace held open by an "anchor" process
(``sleep infinity``); everything the node runs is started with ``nsenter`` into the anchor's
namespaces. Power loss SIGKILLs every process in the node's network namespace except the
anchor, which is what makes a BMC power-off really kill pacemaker-remoted and nova-compute.

Command line (used by the BMC's chassis_control program and by ``cluster.py``)::

    python -m tests.rig.cluster.node chassis RIG_DIR NODE get power
    python -m tests.rig.cluster.node chassis RIG_DIR NODE set power 0|1
    python -m tests.rig.cluster.node boot RIG_DIR NODE
    python -m tests.rig.cluster.node kill RIG_DIR NODE

Imports are kept light: ipmi_sim runs the hook for every "power status" request.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from tests.rig.cluster.config import REPO, Layout, Node, Service

RUN_SUBDIRS = {  # /run inside the node: (mode, owned by hacluster)
    "crm": (0o750, True),
    "resource-agents": (0o1755, False),
    "fence-agents": (0o1755, False),
    "lock": (0o1777, False),
    "pacemaker": (0o770, True),
}

BASE_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "HOME": "/root",
}


def anchor_pid(layout: Layout, node: Node) -> int:
    return int((layout.node_dir(node) / "anchor.pid").read_text())


def nsenter(layout: Layout, node: Node) -> List[str]:
    return ["nsenter", "-t", str(anchor_pid(layout, node)), "-n", "-m", "-u", "--"]


def power_file(layout: Layout, node: Node) -> Path:
    return layout.node_dir(node) / "power"


def power_state(layout: Layout, node: Node) -> int:
    try:
        return int(power_file(layout, node).read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def set_power_state(layout: Layout, node: Node, value: int) -> None:
    tmp = power_file(layout, node).with_suffix(".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, power_file(layout, node))


def _hacluster_ids() -> "tuple[int, int]":
    import grp
    import pwd

    return pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid


def prepare_run_dir(layout: Layout, node: Node) -> None:
    """Recreate the node's volatile /run skeleton (a fresh tmpfs on a real host)."""
    uid, gid = _hacluster_ids()
    run = layout.node_dir(node) / "run"
    run.mkdir(exist_ok=True)
    for sub, (mode, owned) in RUN_SUBDIRS.items():
        p = run / sub
        p.mkdir(exist_ok=True)
        os.chmod(p, mode)
        if owned:
            os.chown(p, uid, gid)


def _wipe_volatile(layout: Layout, node: Node) -> None:
    run = layout.node_dir(node) / "run"
    for dirpath, dirnames, filenames in os.walk(run, topdown=False):
        for f in filenames:
            try:
                os.unlink(os.path.join(dirpath, f))
            except FileNotFoundError:
                pass
        for d in dirnames:
            try:
                os.rmdir(os.path.join(dirpath, d))
            except OSError:
                pass
    subprocess.run(nsenter(layout, node) + ["find", "/dev/shm", "-mindepth", "1", "-delete"],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=10, check=False)


def netns_pids(layout: Layout, node: Node) -> List[int]:
    out = subprocess.run(["ip", "netns", "pids", layout.netns(node)], capture_output=True,
                         text=True, timeout=10, check=False).stdout
    return [int(p) for p in out.split()]


def kill_all(layout: Layout, node: Node, timeout: float = 15.0) -> int:
    """Pull the plug: SIGKILL everything in the node but its anchor; returns the kill count."""
    anchor = anchor_pid(layout, node)
    killed = 0
    deadline = time.monotonic() + timeout
    while True:
        victims = [p for p in netns_pids(layout, node) if p != anchor]
        if not victims:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node.name}: processes survive SIGKILL: {victims}")
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.05)  # let the kernel tear them down before re-listing (forks may race)
    for pidfile in (layout.node_dir(node) / "pids").glob("*.pid"):
        pidfile.unlink()
    _wipe_volatile(layout, node)
    return killed


def _spawn(layout: Layout, node: Node, name: str, argv: List[str], env: Dict[str, str],
           cwd: Optional[str] = None) -> int:
    d = layout.node_dir(node)
    log = open(d / "log" / f"{name}.out", "ab")
    try:
        proc = subprocess.Popen(nsenter(layout, node) + argv, env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        log.close()
    (d / "pids" / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _run_in(layout: Layout, node: Node, argv: List[str], timeout: float = 10.0
            ) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(nsenter(layout, node) + argv, env=dict(BASE_ENV), capture_output=True,
                          text=True, timeout=timeout, check=False)


def _wait_corosync(layout: Layout, node: Node, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _run_in(layout, node, ["corosync-cfgtool", "-s"]).returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{node.name}: corosync not ready after {timeout}s")


def boot(layout: Layout, node: Node) -> None:
    """Start the node's stack: what its init system would do at power-on."""
    d = layout.node_dir(node)
    (d / "pids").mkdir(exist_ok=True)
    run_hooks(layout, node, node.power_on_hooks)  # "the hardware is powered" comes first
    prepare_run_dir(layout, node)
    subprocess.run(["ip", "-n", layout.netns(node), "link", "set", "eth0", "up"],
                   check=True, timeout=10)
    pcmk_env = dict(BASE_ENV, PCMK_logfile=str(d / "log" / "pacemaker.log"),
                    PCMK_logfacility="none", PCMK_blackbox="no")
    if node.is_controller:
        _spawn(layout, node, "corosync", ["corosync", "-f"], dict(BASE_ENV))
        _wait_corosync(layout, node)
        _spawn(layout, node, "pacemakerd", ["pacemakerd"], pcmk_env)
    else:
        _spawn(layout, node, "pacemaker-remoted", [str(layout.remoted)], pcmk_env)
    for svc in node.services:
        start_service(layout, node, svc)


def start_service(layout: Layout, node: Node, svc: Service) -> int:
    env = dict(BASE_ENV)
    env.update(svc.env)
    return _spawn(layout, node, svc.name, list(svc.argv), env, cwd=svc.cwd)


def run_hooks(layout: Layout, node: Node, hooks: List[Service]) -> None:
    """Power hooks run in the BMC's context (not inside the node) and must finish."""
    for hook in hooks:
        env = dict(BASE_ENV)
        env.update(hook.env)
        with open(layout.node_dir(node) / "log" / f"{hook.name}.out", "ab") as log:
            subprocess.run(hook.argv, env=env, cwd=hook.cwd, stdin=subprocess.DEVNULL,
                           stdout=log, stderr=subprocess.STDOUT, timeout=120, check=False)


def _detached_boot(layout: Layout, node: Node) -> None:
    """Boot in a separate session so ipmi_sim's popen returns at once (it waits for EOF)."""
    log = open(layout.node_dir(node) / "log" / "boot.out", "ab")
    try:
        subprocess.Popen([layout.python, "-m", "tests.rig.cluster.node", "boot",
                          layout.rig_dir, node.name],
                         cwd=str(REPO), env=dict(BASE_ENV, PYTHONPATH=str(REPO)),
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    finally:
        log.close()


def bmc_fault_file(layout: Layout, node: Node) -> Path:
    return layout.node_dir(node) / "bmc" / "faults.json"


def bmc_faults(layout: Layout, node: Node) -> Dict[str, float]:
    """Injected BMC misbehaviour, re-read on every call so tests can switch it on and off:
    ``{"stuck_on": 1}`` (power off accepted, power stays on), ``{"stay_off": 1}`` (power on
    accepted, the node stays off: a host that does not come back), ``{"reply_delay": s}``
    (every call answers s seconds late)."""
    try:
        raw = json.loads(bmc_fault_file(layout, node).read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in raw.items() if k in ("stuck_on", "stay_off", "reply_delay")}


def chassis(layout: Layout, node: Node, args: List[str]) -> int:
    """ipmi_sim chassis_control protocol: ``get power`` -> ``power:0|1``; ``set power V``."""
    with open(layout.node_dir(node) / "bmc" / "chassis.log", "a") as f:
        f.write(f"{time.time():.3f} {' '.join(args)}\n")
    if not args:
        return 1
    op, rest = args[0], args[1:]
    if op == "check":
        return 0
    faults = bmc_faults(layout, node)
    if faults.get("reply_delay", 0) > 0:  # a slow BMC: ipmi_sim waits for us, so does its client
        time.sleep(faults["reply_delay"])
    if op == "get":
        for item in rest:
            if item == "power":
                print(f"power:{power_state(layout, node)}")
            elif item == "boot":
                print("boot:default")
            else:
                return 1
        return 0
    if op == "set":
        pairs = list(zip(rest[0::2], rest[1::2], strict=False))  # an odd last word is ignored
        for key, value in pairs:
            if key == "power":
                old, new = power_state(layout, node), int(value)
                if (new == 0 and faults.get("stuck_on")) or (new == 1 and faults.get("stay_off")):
                    with open(layout.node_dir(node) / "bmc" / "chassis.log", "a") as f:
                        f.write(f"{time.time():.3f} power {new} accepted but ignored (injected fault)\n")
                    continue
                set_power_state(layout, node, new)
                if old == 1 and new == 0:
                    kill_all(layout, node)
                    run_hooks(layout, node, node.power_off_hooks)
                elif old == 0 and new == 1:
                    _detached_boot(layout, node)
            elif key not in ("reset", "boot", "shutdown", "identify"):
                return 1
        return 0
    return 1


def main(argv: List[str]) -> int:
    cmd, rig_dir, name, rest = argv[0], argv[1], argv[2], argv[3:]
    layout = Layout.load(rig_dir)
    node = layout.node(name)
    if cmd == "chassis":
        return chassis(layout, node, rest)
    if cmd == "boot":
        boot(layout, node)
        return 0
    if cmd == "kill":
        print(kill_all(layout, node))
        return 0
    print(f"unknown command {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
