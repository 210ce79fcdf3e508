"""ipmi_sim BMCs on loopback for the tests and the cluster rig.

Each BMC gets its own directory with its own lan.conf, emu command file,
ipmi_sim state dir, power state file and chassis_control program (chassis.sh
next to this file), and its own UDP port. ipmi_sim is started in a new session
so that it and the chassis program's background children share one process
group, which is what stop() kills; its PID is recorded in ipmi_sim.pid.

Used from Python (fixture.py, the cluster rig) or from the shell:
    python -m tests.rig.bmc.bmcrig up --dir D [--count N] [--lanplus-only] ...
    python -m tests.rig.bmc.bmcrig down --dir D
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

HERE = Path(__file__).resolve().parent
CHASSIS_PROGRAM = HERE / "chassis.sh"
IPMI_SIM = "ipmi_sim"

# Smallest useful BMC: one MC at 0x20 with a SEL, enough for chassis commands.
EMU_COMMANDS = """\
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
"""
IPMI15_AUTHS = "none md2 md5 straight"


@dataclass(frozen=True)
class BmcSpec:
    """What kind of BMC to start."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free UDP port is picked
    username: str = "admin"
    password: str = ""  # "": a random one (ipmi_sim allows at most 20 bytes)
    lanplus_only: bool = False  # refuse IPMI 1.5 sessions
    stuck_on: bool = False  # accepts "power off" but keeps reporting on
    power_delay: float = 0.0  # seconds until a requested power change happens
    reply_delay: float = 0.0  # every chassis call is this much slower
    on_power_off: Sequence[str] = ()  # argv run when the power goes off
    on_power_on: Sequence[str] = ()  # argv run when the power goes on
    power: str = "on"  # initial state


@dataclass(frozen=True)
class Bmc:
    """A running BMC. The password itself is only in password_file."""

    name: str
    host: str
    port: int
    username: str
    password_file: Path
    dir: Path
    pid: int
    lanplus_only: bool = False

    @property
    def state_file(self) -> Path:
        return self.dir / "power"

    @property
    def chassis_log(self) -> Path:
        return self.dir / "chassis.log"

    def password(self) -> str:
        return self.password_file.read_text().rstrip("\n")

    def power(self) -> str:
        """The power state as the chassis program holds it: "on" or "off"."""
        return "on" if self.state_file.read_text().strip() == "1" else "off"

    def set_power_file(self, state: str) -> None:
        """Force the power state behind the BMC's back (test set-up)."""
        (self.dir / "power.pending").unlink(missing_ok=True)
        _write(self.state_file, "1\n" if state == "on" else "0\n")

    def set_behaviour(self, stuck_on: bool = False, power_delay: float = 0.0,
                      reply_delay: float = 0.0) -> None:
        """Change how the chassis behaves; takes effect on the next call."""
        _write_behaviour(self.dir, stuck_on, power_delay, reply_delay)

    def chassis_calls(self) -> list[str]:
        if not self.chassis_log.exists():
            return []
        return self.chassis_log.read_text().splitlines()

    def to_json(self) -> dict:
        d = asdict(self)
        d["password_file"] = str(self.password_file)
        d["dir"] = str(self.dir)
        return d


class RigError(RuntimeError):
    pass


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_behaviour(bmc_dir: Path, stuck_on: bool, power_delay: float,
                     reply_delay: float) -> None:
    _write(bmc_dir / "chassis.conf",
           f"STUCK_ON={int(stuck_on)}\nPOWER_DELAY={power_delay:g}\n"
           f"REPLY_DELAY={reply_delay:g}\n")


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _plain(path: Path) -> str:
    # ipmi_sim's config parser has no escaping inside quoted strings.
    s = str(path)
    if any(c.isspace() or c in "\"'\\$`" for c in s):
        raise RigError(f"rig path must not contain spaces or quotes: {s!r}")
    return s


def _lan_conf(spec: BmcSpec, bmc_dir: Path) -> str:
    auths = "" if spec.lanplus_only else IPMI15_AUTHS
    lines = [
        f'name "{spec.name}"',
        "set_working_mc 0x20",
        "  startlan 1",
        f"    addr {spec.host} {spec.port}",
        "    priv_limit admin",
    ]
    if not spec.lanplus_only:
        lines += [f"    allowed_auths_{p} {IPMI15_AUTHS}"
                  for p in ("callback", "user", "operator", "admin")]
    lines += [
        f"    guid {secrets.token_hex(16)}",
        "  endlan",
        f'  chassis_control "{_plain(CHASSIS_PROGRAM)} {_plain(bmc_dir)}"',
        f'  user 2 true "{spec.username}" "{spec.password}" admin 10 {auths}'.rstrip(),
        "",
    ]
    return "\n".join(lines)


def _hook_script(argv: Sequence[str]) -> str:
    return "#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in argv) + "\n"


def write_config(spec: BmcSpec, bmc_dir: Path) -> BmcSpec:
    """Write everything a BMC needs into bmc_dir; returns the spec with the
    port and password filled in."""
    if spec.port == 0:
        spec = replace(spec, port=free_udp_port(spec.host))
    if not spec.password:
        spec = replace(spec, password=secrets.token_urlsafe(12)[:16])
    for text in (spec.name, spec.username, spec.password):
        if '"' in text or "\n" in text or "\\" in text:
            raise RigError("BMC name, user and password must not contain quotes")
    bmc_dir.mkdir(parents=True, exist_ok=True)
    (bmc_dir / "state").mkdir(exist_ok=True)
    _write(bmc_dir / "lan.conf", _lan_conf(spec, bmc_dir), 0o600)
    _write(bmc_dir / "bmc.emu", EMU_COMMANDS)
    _write(bmc_dir / "password", spec.password + "\n", 0o600)
    _write_behaviour(bmc_dir, spec.stuck_on, spec.power_delay, spec.reply_delay)
    _write(bmc_dir / "power", "1\n" if spec.power == "on" else "0\n")
    (bmc_dir / "power.pending").unlink(missing_ok=True)
    for hook, argv in (("hook-off", spec.on_power_off), ("hook-on", spec.on_power_on)):
        if argv:
            _write(bmc_dir / hook, _hook_script(argv), 0o755)
        else:
            (bmc_dir / hook).unlink(missing_ok=True)
    return spec


def asf_ping(host: str, port: int, timeout: float) -> bool:
    """RMCP/ASF presence ping: True if the BMC answered with a pong."""
    # RMCP v1.0, seq 0xff (no ack), class ASF; ASF IANA 4542, type ping, tag 0
    ping = bytes([0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x00, 0x00, 0x00])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((host, port))
            s.send(ping)
            data = s.recv(512)
        except OSError:  # refused (not bound yet) or timeout
            return False
    return len(data) >= 9 and data[3] == 0x06 and data[8] == 0x40


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # a zombie has finished; only its parent's wait() is missing
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _is_our_ipmi_sim(pid: int, bmc_dir: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (bool(argv) and os.path.basename(argv[0]) == IPMI_SIM.encode()
            and str(bmc_dir / "lan.conf").encode() in argv)


def start(spec: BmcSpec, bmc_dir: Path, ready_timeout: float = 10.0) -> Bmc:
    """Start one BMC and wait until it answers an RMCP ping."""
    exe = shutil.which(IPMI_SIM)
    if exe is None:
        raise RigError("ipmi_sim not found (run tests/rig/bmc/install.sh)")
    bmc_dir = bmc_dir.resolve()
    spec = write_config(spec, bmc_dir)
    with open(bmc_dir / "ipmi_sim.log", "ab") as log:
        proc = subprocess.Popen(
            [exe, "-c", str(bmc_dir / "lan.conf"), "-f", str(bmc_dir / "bmc.emu"),
             "-s", str(bmc_dir / "state"), "-n"],
            cwd=bmc_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True)
    _write(bmc_dir / "ipmi_sim.pid", f"{proc.pid}\n")
    bmc = Bmc(name=spec.name, host=spec.host, port=spec.port, username=spec.username,
              password_file=bmc_dir / "password", dir=bmc_dir, pid=proc.pid,
              lanplus_only=spec.lanplus_only)
    _write(bmc_dir / "bmc.json", json.dumps(bmc.to_json(), indent=1) + "\n")
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RigError(f"ipmi_sim for {spec.name} exited with {proc.returncode}, "
                           f"see {bmc_dir / 'ipmi_sim.log'}")
        if asf_ping(spec.host, spec.port, 0.2):
            _CHILDREN[proc.pid] = proc
            return bmc
        time.sleep(0.02)
    stop(bmc_dir)
    raise RigError(f"ipmi_sim for {spec.name} not answering on {spec.host}:{spec.port} "
                   f"after {ready_timeout}s")


# Popen objects of BMCs started by this process, so stop() can reap them.
_CHILDREN: dict[int, subprocess.Popen] = {}


def stop(bmc_dir: Path, timeout: float = 5.0) -> bool:
    """Stop the BMC recorded in bmc_dir/ipmi_sim.pid (SIGTERM, then SIGKILL),
    with the chassis program's children in its process group.
    Returns False if it was not running."""
    bmc_dir = Path(bmc_dir).resolve()
    pid_file = bmc_dir / "ipmi_sim.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    running = _is_our_ipmi_sim(pid, bmc_dir)
    if running:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)  # started with start_new_session: pgid == pid
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                proc = _CHILDREN.get(pid)
                if proc is not None:
                    proc.poll()
                if not _pid_alive(pid):
                    break
                time.sleep(0.02)
            else:
                continue
            break
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    pid_file.unlink(missing_ok=True)
    return running


def bmc_dirs(base: Path) -> list[Path]:
    return sorted(p.parent for p in Path(base).glob("*/bmc.json"))


def load(bmc_dir: Path) -> Bmc:
    d = json.loads((Path(bmc_dir) / "bmc.json").read_text())
    d["password_file"] = Path(d["password_file"])
    d["dir"] = Path(d["dir"])
    return Bmc(**d)


def up(base: Path, specs: Iterable[BmcSpec]) -> list[Bmc]:
    """Start several BMCs under base/<name>; on failure stops those started."""
    started: list[Bmc] = []
    try:
        for spec in specs:
            started.append(start(spec, Path(base) / spec.name))
    except BaseException:
        for bmc in started:
            stop(bmc.dir)
        raise
    return started


def down(base: Path) -> int:
    """Stop every BMC under base; returns how many were running."""
    return sum(stop(d) for d in bmc_dirs(base))


def _main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.rig.bmc.bmcrig")
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="start BMCs bmc1..bmcN under --dir, print them as JSON")
    u.add_argument("--dir", required=True, type=Path)
    u.add_argument("--count", type=int, default=1)
    u.add_argument("--prefix", default="bmc")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--base-port", type=int, default=0, help="0: free ports")
    u.add_argument("--username", default="admin")
    u.add_argument("--password-file", type=Path,
                   help="file holding the password (default: random per BMC)")
    u.add_argument("--lanplus-only", action="store_true")
    u.add_argument("--stuck-on", action="store_true")
    u.add_argument("--power-delay", type=float, default=0.0)
    u.add_argument("--reply-delay", type=float, default=0.0)
    u.add_argument("--on-power-off", help="command (shell words) run at power off; "
                   "{name} is replaced by the BMC name")
    u.add_argument("--on-power-on", help="command run at power on, as --on-power-off")
    d = sub.add_parser("down", help="stop every BMC under --dir")
    d.add_argument("--dir", required=True, type=Path)
    s = sub.add_parser("status", help="list BMCs under --dir")
    s.add_argument("--dir", required=True, type=Path)
    a = p.parse_args(argv)

    if a.cmd == "up":
        password = a.password_file.read_text().rstrip("\n") if a.password_file else ""
        specs = []
        for i in range(1, a.count + 1):
            name = f"{a.prefix}{i}"
            hooks = [shlex.split(h.replace("{name}", name)) if h else []
                     for h in (a.on_power_off, a.on_power_on)]
            specs.append(BmcSpec(
                name=name, host=a.host, port=a.base_port + i - 1 if a.base_port else 0,
                username=a.username, password=password, lanplus_only=a.lanplus_only,
                stuck_on=a.stuck_on, power_delay=a.power_delay, reply_delay=a.reply_delay,
                on_power_off=hooks[0], on_power_on=hooks[1]))
        bmcs = up(a.dir, specs)
        print(json.dumps([b.to_json() for b in bmcs], indent=1))
    elif a.cmd == "down":
        print(f"stopped {down(a.dir)} BMC(s)")
    else:
        for bdir in bmc_dirs(a.dir):
            b = load(bdir)
            alive = _is_our_ipmi_sim(b.pid, b.dir)
            print(f"{b.name} {b.host}:{b.port} pid={b.pid} "
                  f"{'running' if alive else 'stopped'} power={b.power()}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
