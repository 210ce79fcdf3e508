"""The IPMI adapter against real ipmi_sim BMCs (tests/rig/bmc).

Power changes are checked three ways: through the adapter, in the BMC's
power state file, and with ipmitool -I lanplus as an independent client
(password from the BMC's password file with -f, never on a command line or in an environment).
"""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from computeha.ocf_lib.ipmi import (
    BmcTarget,
    IpmiAuthError,
    IpmiError,
    IpmiProtocolError,
    IpmiTimeout,
    IpmiUnreachable,
    open_session,
)
from tests.rig.bmc import bmcrig

pytestmark = [pytest.mark.integration, pytest.mark.ipmi]

TIMEOUT = 5.0


def target(bmc: bmcrig.Bmc, **overrides: object) -> BmcTarget:
    fields = dict(host=bmc.host, port=bmc.port, username=bmc.username,
                  password=bmc.password(), cipher=3)
    fields.update(overrides)
    return BmcTarget(**fields)  # type: ignore[arg-type]


def wait_until(probe: Callable[[], object], expected: object, timeout: float = 10.0) -> object:
    """Poll probe() until it returns expected (bounded); returns the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


def ipmitool_power(bmc: bmcrig.Bmc) -> str:
    out = subprocess.run(
        ["ipmitool", "-I", "lanplus", "-C", "3", "-H", bmc.host, "-p", str(bmc.port),
         "-U", bmc.username, "-f", str(bmc.password_file), "chassis", "power", "status"],
        capture_output=True, text=True, timeout=30, check=True).stdout
    return out.strip().rsplit(" ", 1)[-1]  # "Chassis Power is on"


def assert_clean_error(err: IpmiError, secret: str) -> None:
    text = str(err)
    assert "\n" not in text
    assert secret not in text
    assert secret not in repr(err)


def test_module_import_does_not_load_pyipmi() -> None:
    code = ("import sys, computeha.ocf_lib.ipmi as m; "
            "sys.exit(1 if 'pyipmi' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_get_and_set_power_really_change_the_bmc(ipmi_bmc: bmcrig.Bmc) -> None:
    with open_session(target(ipmi_bmc), TIMEOUT) as dev:
        assert dev.get_power() == "on"
        assert ipmitool_power(ipmi_bmc) == "on"

        dev.set_power("off")
        assert wait_until(dev.get_power, "off") == "off"
        assert ipmi_bmc.power() == "off"
        assert ipmitool_power(ipmi_bmc) == "off"

        dev.set_power("on")
        assert wait_until(dev.get_power, "on") == "on"
        assert ipmi_bmc.power() == "on"
        assert ipmitool_power(ipmi_bmc) == "on"
    calls = ipmi_bmc.chassis_calls()
    assert any("applied power 0 (was 1)" in c for c in calls)
    assert any("applied power 1 (was 0)" in c for c in calls)


def test_get_power_reads_the_live_state(ipmi_bmc: bmcrig.Bmc) -> None:
    with open_session(target(ipmi_bmc), TIMEOUT) as dev:
        assert dev.get_power() == "on"
        ipmi_bmc.set_power_file("off")  # changed behind the session's back
        assert dev.get_power() == "off"


def test_power_cycle_goes_off_then_on(ipmi_bmc: bmcrig.Bmc) -> None:
    with open_session(target(ipmi_bmc), TIMEOUT) as dev:
        dev.power_cycle()
        assert wait_until(dev.get_power, "on") == "on"
    applied = [c.split(" ", 1)[1] for c in ipmi_bmc.chassis_calls() if "applied" in c]
    assert applied[-2:] == ["applied power 0 (was 1)", "applied power 1 (was 0)"]


def test_ipmi15_session_works_on_a_bmc_that_allows_it(ipmi_bmc: bmcrig.Bmc) -> None:
    with open_session(target(ipmi_bmc, lanplus=False), TIMEOUT) as dev:
        dev.set_power("off")
        assert wait_until(dev.get_power, "off") == "off"
    assert ipmi_bmc.power() == "off"


def test_operator_privilege_can_control_power(ipmi_bmc: bmcrig.Bmc) -> None:
    with open_session(target(ipmi_bmc, privilege="operator"), TIMEOUT) as dev:
        dev.set_power("off")
        assert wait_until(dev.get_power, "off") == "off"


def test_wrong_password_is_an_auth_error_without_waiting(ipmi_bmc: bmcrig.Bmc) -> None:
    wrong = "not-" + ipmi_bmc.password()
    timeout = 20.0
    start = time.monotonic()
    with pytest.raises(IpmiAuthError) as info:
        open_session(target(ipmi_bmc, password=wrong), timeout)
    # answered by the BMC, not by waiting out the timeout
    assert time.monotonic() - start < timeout / 2
    assert "wrong password" in str(info.value)
    assert_clean_error(info.value, wrong)
    assert ipmi_bmc.power() == "on"


def test_unknown_user_is_an_auth_error(ipmi_bmc: bmcrig.Bmc) -> None:
    with pytest.raises(IpmiAuthError) as info:
        open_session(target(ipmi_bmc, username="nobody"), TIMEOUT)
    assert "nobody" in str(info.value)
    assert_clean_error(info.value, ipmi_bmc.password())


def test_wrong_kg_key_is_an_auth_error(ipmi_bmc: bmcrig.Bmc) -> None:
    with pytest.raises(IpmiAuthError) as info:
        open_session(target(ipmi_bmc, kg_key=b"0123456789abcdef"), TIMEOUT)
    assert "K_g" in str(info.value)
    assert_clean_error(info.value, "0123456789abcdef")


def test_cipher_17_is_rejected_by_ipmi_sim_as_unsupported(ipmi_bmc: bmcrig.Bmc) -> None:
    with pytest.raises(IpmiProtocolError) as info:
        open_session(target(ipmi_bmc, cipher=17), TIMEOUT)
    assert "cipher suite 17" in str(info.value)
    assert_clean_error(info.value, ipmi_bmc.password())


def test_closed_port_is_unreachable_within_the_timeout() -> None:
    port = bmcrig.free_udp_port()  # nothing listens there
    timeout = 3.0
    start = time.monotonic()
    with pytest.raises(IpmiUnreachable) as info:
        open_session(BmcTarget("127.0.0.1", port, "admin", "secret-pw"), timeout)
    assert time.monotonic() - start <= timeout + 1.0
    assert f"127.0.0.1:{port}" in str(info.value)
    assert_clean_error(info.value, "secret-pw")


def test_silent_port_is_unreachable_within_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:  # swallows packets
        sink.bind(("127.0.0.1", 0))
        timeout = 1.5
        start = time.monotonic()
        with pytest.raises(IpmiUnreachable):
            open_session(BmcTarget("127.0.0.1", sink.getsockname()[1], "admin", "pw"),
                         timeout)
        assert time.monotonic() - start <= timeout + 1.0


def test_stuck_bmc_accepts_off_but_keeps_reporting_on(bmc_factory) -> None:
    bmc = bmc_factory.get("bmc-stuck", stuck_on=True)
    with open_session(target(bmc), TIMEOUT) as dev:
        dev.set_power("off")  # accepted without error
        deadline = time.monotonic() + 1.0
        seen = set()
        while time.monotonic() < deadline:
            seen.add(dev.get_power())
            time.sleep(0.1)
    assert seen == {"on"}
    assert bmc.power() == "on"
    assert ipmitool_power(bmc) == "on"
    assert any("set power 0 ignored (stuck on)" in c for c in bmc.chassis_calls())


def test_slow_power_transition_needs_polling(bmc_factory) -> None:
    bmc = bmc_factory.get("bmc-slow-power", power_delay=1.0)
    bmc.set_power_file("on")
    with open_session(target(bmc), TIMEOUT) as dev:
        dev.set_power("off")
        assert dev.get_power() == "on"  # request accepted, not done yet
        assert wait_until(dev.get_power, "off") == "off"
    assert bmc.power() == "off"


def test_slow_bmc_reply_is_a_timeout_within_the_bound(bmc_factory) -> None:
    bmc = bmc_factory.get("bmc-slow-reply", reply_delay=3.0)
    timeout = 1.0
    dev = open_session(target(bmc), timeout)  # login does not touch the chassis
    start = time.monotonic()
    with pytest.raises(IpmiTimeout) as info:
        dev.get_power()
    dev.close()
    # get_power and close together stay within one timeout (plus slack)
    assert time.monotonic() - start <= timeout + 1.0
    assert "chassis status" in str(info.value)
    assert_clean_error(info.value, bmc.password())


def test_lanplus_only_bmc_works_with_cipher_3(ipmi_bmc_lanplus_only: bmcrig.Bmc) -> None:
    bmc = ipmi_bmc_lanplus_only
    with open_session(target(bmc, cipher=3), TIMEOUT) as dev:
        dev.set_power("off")
        assert wait_until(dev.get_power, "off") == "off"
    assert bmc.power() == "off"
    assert ipmitool_power(bmc) == "off"


def test_lanplus_only_bmc_refuses_ipmi15(ipmi_bmc_lanplus_only: bmcrig.Bmc) -> None:
    bmc = ipmi_bmc_lanplus_only
    with pytest.raises(IpmiProtocolError) as info:
        open_session(target(bmc, lanplus=False), TIMEOUT)
    assert "lanplus" in str(info.value)
    res = subprocess.run(["ipmitool", "-I", "lan", "-H", bmc.host, "-p", str(bmc.port),
                          "-U", bmc.username, "-f", str(bmc.password_file), "chassis", "power", "status"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode != 0


def _cmdlines() -> dict[int, bytes]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                pass  # exited meanwhile
    return out


def test_no_child_process_argv_holds_the_password(bmc_factory) -> None:
    # A slow chassis program stays alive long enough to be seen in /proc.
    bmc = bmc_factory.get("bmc-argv-scan", reply_delay=0.5)
    password = bmc.password().encode()
    seen: dict[int, bytes] = {}
    done = threading.Event()

    def scan() -> None:
        while not done.is_set():
            seen.update(_cmdlines())
            time.sleep(0.01)

    scanner = threading.Thread(target=scan, daemon=True)
    scanner.start()
    try:
        with open_session(target(bmc), TIMEOUT) as dev:
            dev.set_power("off")
            assert wait_until(dev.get_power, "off") == "off"
        assert ipmitool_power(bmc) == "off"
    finally:
        done.set()
        scanner.join(timeout=5)
    chassis = [c for c in seen.values() if bmcrig.CHASSIS_PROGRAM.name.encode() in c]
    ipmi_sim = [c for c in seen.values() if c.startswith(b"ipmi_sim") or b"/ipmi_sim\0" in c]
    assert chassis, "the scan never saw the chassis program"
    assert ipmi_sim, "the scan never saw ipmi_sim"
    assert not [c for c in seen.values() if password in c]


def test_debug_logging_never_shows_the_password(ipmi_bmc: bmcrig.Bmc,
                                                caplog: pytest.LogCaptureFixture) -> None:
    # python-ipmi logs its Session object (with the password) when closing.
    caplog.set_level(logging.DEBUG)
    with open_session(target(ipmi_bmc), TIMEOUT) as dev:
        dev.set_power("off")
        assert wait_until(dev.get_power, "off") == "off"
    assert any(r.name.startswith("pyipmi") for r in caplog.records)  # debug was on
    assert ipmi_bmc.password() not in caplog.text


def test_power_hooks_run_on_real_state_changes(bmc_factory, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    bmc = bmc_factory.get("bmc-hooks",
                          on_power_off=["sh", "-c", f"echo off >> {marks}/log"],
                          on_power_on=["sh", "-c", f"echo on >> {marks}/log"])
    bmc.set_power_file("on")
    with open_session(target(bmc), TIMEOUT) as dev:
        dev.set_power("off")
        assert wait_until(dev.get_power, "off") == "off"
        dev.set_power("off")  # no change: no hook
        dev.set_power("on")
        assert wait_until(dev.get_power, "on") == "on"
    assert (marks / "log").read_text().split() == ["off", "on"]
