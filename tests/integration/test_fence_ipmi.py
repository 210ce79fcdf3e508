"""fence_ipmi against real ipmi_sim BMCs (tests/rig/bmc), run the way Pacemaker runs it.

The agent is installed with `make install DESTDIR=...` (a wrapper script, as an
operator gets) and fed its options on stdin as name=value lines, exactly as
pacemaker-fenced does (action, plug, nodename, then the device's attributes).
Outcomes are checked in the BMC's power state file and chassis log, and with
ipmitool as an independent client.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.contract.conftest import make_install
from tests.integration.test_ipmi_adapter import ipmitool_power
from tests.rig.bmc import bmcrig
from tests.tools import pkgtree

pytestmark = [pytest.mark.integration, pytest.mark.ipmi]

MODULE = "computeha.fence.fence_ipmi"
RUN_TIMEOUT = 120.0


def install_fence_ipmi(root: Path, name: str = "fence_ipmi", python: str = sys.executable) -> Path:
    """`make install` of fence_ipmi into root/destdir/sbin; returns the executable.

    python must be able to import pyipmi (the project venv does; the system
    python3 needs python-ipmi installed first)."""
    site = pkgtree.build(root / "site")
    dest = root / "destdir"
    proc = make_install("install", site, PYTHON=python, OCF_AGENTS="", FENCE_AGENTS=f"{name}={MODULE}",
                        DESTDIR=str(dest), SBINDIR="/sbin")
    assert proc.returncode == 0, proc.stderr
    return dest / "sbin" / name


def pacemaker_stdin(action: str, device: Dict[str, str], target: str = "compute-1") -> str:
    """What pacemaker-fenced writes to a fence agent's stdin."""
    lines = {"action": action, "plug": target, "nodename": target, **device}
    return "".join(f"{k}={v}\n" for k, v in lines.items())


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float
    started_epoch: float


def run_agent(exe: Path, action: str, device: Dict[str, str], timeout: float = RUN_TIMEOUT) -> Run:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    epoch, start = time.time(), time.monotonic()
    proc = subprocess.run([str(exe)], input=pacemaker_stdin(action, device), capture_output=True, text=True,
                          env=env, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start, epoch)


def device_of(bmc: bmcrig.Bmc, **extra: str) -> Dict[str, str]:
    return {"ip": bmc.host, "ipport": str(bmc.port), "username": bmc.username, "password": bmc.password(),
            **extra}


def applied(bmc: bmcrig.Bmc) -> List[str]:
    return [c.split(" ", 1)[1] for c in bmc.chassis_calls() if " applied power " in c]


def assert_one_line_failure(res: Run, password: str, *needles: str) -> None:
    assert res.code == 1, (res.out, res.err)
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err and password not in res.err + res.out
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="session")
def fence_ipmi_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_fence_ipmi(tmp_path_factory.mktemp("fence-ipmi"))


@pytest.fixture
def stuck_bmc(bmc_factory) -> Iterator[bmcrig.Bmc]:
    bmc = bmc_factory.get("bmc-fence-stuck", stuck_on=True)
    bmc.set_power_file("on")
    yield bmc


def test_installed_wrapper_is_the_make_install_kind(fence_ipmi_exe: Path) -> None:
    text = fence_ipmi_exe.read_text()
    assert "written by 'make install'" in text and MODULE in text
    assert os.access(fence_ipmi_exe, os.X_OK)


def test_status_off_on_reboot_really_change_the_power(fence_ipmi_exe: Path, ipmi_bmc: bmcrig.Bmc) -> None:
    dev = device_of(ipmi_bmc)
    res = run_agent(fence_ipmi_exe, "status", dev)
    assert (res.code, res.out) == (0, "Status: ON\n"), res.err

    res = run_agent(fence_ipmi_exe, "off", dev)
    assert (res.code, res.out, res.err) == (0, "Success: Powered OFF\n", "")
    assert ipmi_bmc.power() == "off" and ipmitool_power(ipmi_bmc) == "off"

    res = run_agent(fence_ipmi_exe, "status", dev)
    assert (res.code, res.out) == (2, "Status: OFF\n")
    res = run_agent(fence_ipmi_exe, "off", dev)
    assert (res.code, res.out) == (0, "Success: Already OFF\n")

    res = run_agent(fence_ipmi_exe, "on", dev)
    assert (res.code, res.out) == (0, "Success: Powered ON\n")
    assert ipmi_bmc.power() == "on" and ipmitool_power(ipmi_bmc) == "on"

    before = len(applied(ipmi_bmc))
    res = run_agent(fence_ipmi_exe, "reboot", dev)
    assert (res.code, res.out) == (0, "Success: Rebooted\n"), res.err
    assert applied(ipmi_bmc)[before:] == ["applied power 0 (was 1)", "applied power 1 (was 0)"]
    assert ipmi_bmc.power() == "on"

    res = run_agent(fence_ipmi_exe, "monitor", dev)
    assert res.code == 0, res.err


def test_a_fence_ipmilan_device_switches_by_changing_only_its_type(fence_ipmi_exe: Path,
                                                                     ipmi_bmc: bmcrig.Bmc) -> None:
    legacy = {"ipaddr": ipmi_bmc.host, "ipport": str(ipmi_bmc.port), "login": ipmi_bmc.username,
              "passwd": ipmi_bmc.password(), "lanplus": "1", "cipher": "3", "privlvl": "operator",
              "method": "onoff", "power_wait": "0"}
    # fence_ipmilan accepts this device as it is (validate-all only: a real run of fence_ipmilan hands the
    # password to ipmitool with -P, visible to every user, which the suite's secret scan rightly flags)
    reference = subprocess.run(["/usr/sbin/fence_ipmilan"], input=pacemaker_stdin("validate-all", legacy),
                               capture_output=True, text=True, timeout=60)
    assert reference.returncode == 0, reference.stderr
    res = run_agent(fence_ipmi_exe, "off", legacy)
    assert (res.code, res.out, res.err) == (0, "Success: Powered OFF\n", "")
    assert ipmi_bmc.power() == "off"


def test_reboot_with_method_cycle(fence_ipmi_exe: Path, ipmi_bmc: bmcrig.Bmc) -> None:
    before = len(applied(ipmi_bmc))
    res = run_agent(fence_ipmi_exe, "reboot", device_of(ipmi_bmc, method="cycle"))
    assert (res.code, res.out) == (0, "Success: Rebooted\n"), res.err
    new = applied(ipmi_bmc)[before:]
    assert new[0] == "applied power 0 (was 1)"  # ipmi_sim runs a cycle as off, then on 1 s later
    deadline = time.monotonic() + 10
    while ipmi_bmc.power() != "on" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ipmi_bmc.power() == "on"


def test_wrong_password_fails_in_one_line_and_leaves_power_alone(fence_ipmi_exe: Path,
                                                                ipmi_bmc: bmcrig.Bmc) -> None:
    wrong = "not-" + ipmi_bmc.password()
    res = run_agent(fence_ipmi_exe, "off", device_of(ipmi_bmc, password=wrong))
    assert_one_line_failure(res, wrong, "wrong password")
    assert ipmi_bmc.power() == "on"


def test_unreachable_port_fails_within_the_login_timeout(fence_ipmi_exe: Path) -> None:
    port = bmcrig.free_udp_port()  # nothing listens there
    res = run_agent(fence_ipmi_exe, "off", {"ip": "127.0.0.1", "ipport": str(port), "username": "admin",
                                            "password": "pw-unused-1", "login_timeout": "3"})
    assert_one_line_failure(res, "pw-unused-1", f"127.0.0.1:{port}")
    assert res.seconds < 3 + 5  # login_timeout plus interpreter start: bounded, not hung


def test_silent_bmc_address_fails_within_the_login_timeout(fence_ipmi_exe: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:  # swallows every packet
        sink.bind(("127.0.0.1", 0))
        res = run_agent(fence_ipmi_exe, "status", {"ip": "127.0.0.1", "ipport": str(sink.getsockname()[1]),
                                                   "username": "admin", "password": "pw-unused-2",
                                                   "login_timeout": "2"})
    assert_one_line_failure(res, "pw-unused-2", "no answer")
    assert res.seconds < 2 + 5


def test_bmc_whose_power_never_goes_off_fails_within_the_deadline(fence_ipmi_exe: Path,
                                                                   stuck_bmc: bmcrig.Bmc) -> None:
    res = run_agent(fence_ipmi_exe, "off", device_of(stuck_bmc, power_timeout="2"))
    assert_one_line_failure(res, stuck_bmc.password(), "timed out waiting for power OFF", "still reports ON")
    assert "Success" not in res.out
    # the deadline: login_timeout 5 + power_timeout 2 + 5 s margin
    assert 2 <= res.seconds < 12
    assert stuck_bmc.power() == "on" and ipmitool_power(stuck_bmc) == "on"
    assert any("set power 0 ignored (stuck on)" in c for c in stuck_bmc.chassis_calls())


def test_reboot_of_a_stuck_bmc_fails(fence_ipmi_exe: Path, stuck_bmc: bmcrig.Bmc) -> None:
    res = run_agent(fence_ipmi_exe, "reboot", device_of(stuck_bmc, power_timeout="1"))
    assert_one_line_failure(res, stuck_bmc.password(), "power OFF")


def test_lanplus_only_bmc(fence_ipmi_exe: Path, ipmi_bmc_lanplus_only: bmcrig.Bmc) -> None:
    bmc = ipmi_bmc_lanplus_only
    res = run_agent(fence_ipmi_exe, "off", device_of(bmc))  # lanplus is the default
    assert (res.code, res.out) == (0, "Success: Powered OFF\n"), res.err
    assert bmc.power() == "off" and ipmitool_power(bmc) == "off"
    res = run_agent(fence_ipmi_exe, "status", device_of(bmc, lanplus="0"))
    assert_one_line_failure(res, bmc.password(), "lanplus")


def test_delay_is_honoured_before_the_power_request(fence_ipmi_exe: Path, ipmi_bmc: bmcrig.Bmc) -> None:
    res = run_agent(fence_ipmi_exe, "off", device_of(ipmi_bmc, delay="2"))
    assert (res.code, res.out) == (0, "Success: Powered OFF\n"), res.err
    # ipmi_sim logs every chassis call with its wall-clock time: the first one came after the delay
    first = float(next(c for c in ipmi_bmc.chassis_calls()
                       if float(c.split(" ", 1)[0]) >= res.started_epoch).split(" ", 1)[0])
    assert first - res.started_epoch >= 2.0
    assert ipmi_bmc.power() == "off"


def test_password_script_supplies_the_password(fence_ipmi_exe: Path, ipmi_bmc: bmcrig.Bmc,
                                                                   tmp_path: Path) -> None:
    script = tmp_path / "bmc-password"
    script.write_text(f"#!/bin/sh\nexec cat {ipmi_bmc.password_file}\n")
    script.chmod(0o700)
    dev = device_of(ipmi_bmc, passwd_script=str(script))
    del dev["password"]
    res = run_agent(fence_ipmi_exe, "off", dev)
    assert (res.code, res.out) == (0, "Success: Powered OFF\n"), res.err
    assert ipmi_bmc.power() == "off"


def test_cipher_the_bmc_does_not_offer_fails_in_one_line(fence_ipmi_exe: Path, ipmi_bmc: bmcrig.Bmc) -> None:
    res = run_agent(fence_ipmi_exe, "off", device_of(ipmi_bmc, cipher="17"))  # ipmi_sim has no SHA256
    assert_one_line_failure(res, ipmi_bmc.password(), "cipher suite 17")
    assert ipmi_bmc.power() == "on"


def test_privilege_too_low_for_power_control_fails_in_one_line(fence_ipmi_exe: Path,
                                                                ipmi_bmc: bmcrig.Bmc) -> None:
    res = run_agent(fence_ipmi_exe, "off", device_of(ipmi_bmc, privlvl="user"))
    assert_one_line_failure(res, ipmi_bmc.password(), "insufficient privilege")
    assert ipmi_bmc.power() == "on"


def test_bmc_that_stops_answering_times_out_within_the_deadline(fence_ipmi_exe: Path, bmc_factory) -> None:
    bmc = bmc_factory.get("bmc-fence-slow-reply", reply_delay=4.0)  # login is fast, chassis calls are not
    res = run_agent(fence_ipmi_exe, "status", device_of(bmc, login_timeout="1"))
    assert_one_line_failure(res, bmc.password(), "no answer", "chassis status")
    # budget: login_timeout 1 + power_timeout 20 + 5, but one request is bounded by login_timeout
    assert res.seconds < 1 + 5
