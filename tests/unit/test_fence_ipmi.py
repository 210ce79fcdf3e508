"""fence_ipmi: protocol forms, fence_ipmilan aliases, validation and the verified
state machine against a fake BMC session that lags, fails, lies and hangs.

The fake replaces only ``ipmi.open_session`` (the adapter boundary); everything
above it (parsing, validation, the library's state machine, exit codes, output)
is the real code. Claims about real BMCs are in tests/integration.
"""
from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

from computeha.fence import fence_ipmi
from computeha.ocf_lib import fence, ipmi

SECRET = "s3cret-Pw-1"
BASE = {"ip": "192.0.2.10", "username": "admin", "password": SECRET}


class FakeSession:
    """A PowerDevice as open_session returns it, with scripted misbehaviour.

    lag: get_power calls that still show the old state after a change;
    stuck_on: accepts off, keeps reporting on; fail_set / fail_get: raise that
    error; cycle_off_reads: how many reads see OFF during a power cycle.
    """

    def __init__(self, target: ipmi.BmcTarget, timeout: float, power: str = "on", lag: int = 0,
                 stuck_on: bool = False, fail_set: Optional[Exception] = None,
                 fail_get: Optional[Exception] = None, cycle_off_reads: int = 3, hang: bool = False) -> None:
        self.target = target
        self.timeout = timeout
        self.power = power
        self.lag = lag
        self.stuck_on = stuck_on
        self.fail_set = fail_set
        self.fail_get = fail_get
        self.cycle_off_reads = cycle_off_reads
        self.hang = hang
        self.calls: List[str] = []
        self.timeouts: List[float] = []
        self.closed = 0
        self._pending: Optional[str] = None
        self._pending_reads = 0
        self._cycle_reads: Optional[int] = None

    def get_power(self) -> str:
        self.calls.append("get")
        self.timeouts.append(self.timeout)
        if self.fail_get is not None:
            raise self.fail_get
        if self.hang:  # like the adapter: silent until the armed timeout, then a typed error
            time.sleep(min(self.timeout, 5.0))
            raise ipmi.IpmiTimeout(f"no answer from the BMC within {self.timeout:g}s while reading the chassis status")
        if self._cycle_reads is not None:
            if self._cycle_reads > 0:
                self._cycle_reads -= 1
                return "off"
            self._cycle_reads = None
            self.power = "on"
        if self._pending is not None:
            if self._pending_reads > 0:
                self._pending_reads -= 1
            else:
                self.power, self._pending = self._pending, None
        return self.power

    def set_power(self, state: str) -> None:
        self.calls.append(f"set {state}")
        self.timeouts.append(self.timeout)
        if self.fail_set is not None:
            raise self.fail_set
        if state == "off" and self.stuck_on:
            return
        self._pending, self._pending_reads = state, self.lag

    def power_cycle(self) -> None:
        self.calls.append("cycle")
        self._cycle_reads = self.cycle_off_reads

    def close(self) -> None:
        self.calls.append("close")
        self.closed += 1


class FakeBmc:
    """Stands in for ipmi.open_session; records every session it opens."""

    def __init__(self, open_error: Optional[BaseException] = None, **behaviour: object) -> None:
        self.open_error = open_error
        self.behaviour = behaviour
        self.sessions: List[FakeSession] = []
        self.targets: List[ipmi.BmcTarget] = []
        self.open_timeouts: List[float] = []

    def __call__(self, target: ipmi.BmcTarget, timeout: float) -> FakeSession:
        self.targets.append(target)
        self.open_timeouts.append(timeout)
        if self.open_error is not None:
            raise self.open_error
        session = FakeSession(target, timeout, **self.behaviour)  # type: ignore[arg-type]
        self.sessions.append(session)
        return session

    @property
    def session(self) -> FakeSession:
        assert len(self.sessions) == 1, f"expected one session, got {len(self.sessions)}"
        return self.sessions[0]


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


def run_stdin(options: Dict[str, str], env: Optional[Dict[str, str]] = None, lines: str = "") -> Result:
    text = "".join(f"{k}={v}\n" for k, v in options.items()) + lines
    out, err = io.StringIO(), io.StringIO()
    code = fence.run(fence_ipmi.IpmiFence(), ["fence_ipmi"], env or {}, stdin=io.StringIO(text),
                     stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


def run_argv(args: Sequence[str]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = fence.run(fence_ipmi.IpmiFence(), ["fence_ipmi", *args], {}, stdin=io.StringIO(""),
                     stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def bmc(monkeypatch: pytest.MonkeyPatch) -> FakeBmc:
    fake = FakeBmc()
    monkeypatch.setattr(fence_ipmi.ipmi, "open_session", fake)
    return fake


def use(monkeypatch: pytest.MonkeyPatch, fake: FakeBmc) -> FakeBmc:
    monkeypatch.setattr(fence_ipmi.ipmi, "open_session", fake)
    return fake


def assert_one_line_failure(res: Result, *needles: str) -> None:
    assert res.code == 1
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err
    assert SECRET not in res.err + res.out
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- metadata ----------------------------------------------------------------------

def metadata_root() -> ET.Element:
    res = run_stdin({"action": "metadata"})
    assert res.code == 0
    return ET.fromstring(res.out)


def test_metadata_names_fence_ipmilan_parameters_and_our_defaults() -> None:
    root = metadata_root()
    assert root.get("name") == "fence_ipmi"
    params = {p.get("name"): p for p in root.iter("parameter")}
    for legacy, new in (("ipaddr", "ip"), ("login", "username"), ("passwd", "password"),
                        ("passwd_script", "password_script"), ("port", "plug")):
        assert params[legacy].get("deprecated") == "1"
        assert params[new].get("obsoletes") == legacy
    defaults = {name: p.find("content").get("default") for name, p in params.items()}
    assert defaults["lanplus"] == "1"
    assert defaults["cipher"] == "3"
    assert defaults["power_wait"] == "0"
    assert defaults["ipport"] == "623"
    assert defaults["method"] == "onoff"
    assert defaults["privlvl"] == "administrator"
    assert params["lanplus"].find("getopt").get("mixed") == "-P, --lanplus"
    assert params["ipport"].find("getopt").get("mixed") == "-u, --ipport=[port]"
    assert params["cipher"].find("getopt").get("mixed") == "-C, --cipher=[cipher]"


def test_metadata_advertises_power_actions_and_no_list() -> None:
    actions = {a.get("name"): a for a in metadata_root().iter("action")}
    assert {"on", "off", "reboot", "status", "monitor", "metadata", "validate-all"} <= set(actions)
    assert "list" not in actions and "list-status" not in actions
    assert actions["on"].get("automatic") == "0"  # power fencing, not fabric: no automatic unfencing


def test_metadata_and_validate_do_not_import_pyipmi() -> None:
    code = ("import io, sys\n"
            "from computeha.fence import fence_ipmi\n"
            "from computeha.ocf_lib import fence\n"
            "for text in ('action=metadata\\n', 'action=validate-all\\nip=h\\n'):\n"
            "    assert fence.run(fence_ipmi.AGENT, ['x'], {}, stdin=io.StringIO(text), stdout=io.StringIO(),"
            " stderr=io.StringIO()) == 0\n"
            "sys.exit(3 if 'pyipmi' in sys.modules else 0)\n")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# --- input forms and aliases --------------------------------------------------------

def test_fence_ipmilan_stdin_names_map_onto_the_session(bmc: FakeBmc) -> None:
    res = run_stdin({"action": "status", "ipaddr": "192.0.2.7", "ipport": "6230", "login": "ops",
                     "passwd": SECRET, "lanplus": "1", "cipher": "17", "privlvl": "operator",
                     "hexadecimal_kg": "0x0a0B", "plug": "compute-1"})
    assert res.code == 0 and res.out == "Status: ON\n"
    t = bmc.targets[0]
    assert (t.host, t.port, t.username, t.password) == ("192.0.2.7", 6230, "ops", SECRET)
    assert (t.cipher, t.privilege, t.lanplus, t.kg_key) == (17, "operator", True, b"\x0a\x0b")


def test_new_names_win_over_aliases_and_lanplus_defaults_on(bmc: FakeBmc) -> None:
    res = run_stdin({"action": "status", "ipaddr": "192.0.2.1", "ip": "192.0.2.2", **{"username": "u"}})
    assert res.code == 0
    t = bmc.targets[0]
    assert (t.host, t.port, t.lanplus, t.cipher, t.privilege) == ("192.0.2.2", 623, True, 3, "administrator")


def test_lanplus_off_on_stdin_selects_ipmi15(bmc: FakeBmc) -> None:
    assert run_stdin({**BASE, "action": "status", "lanplus": "0"}).code == 0
    assert bmc.targets[0].lanplus is False


def test_argv_short_options_as_fence_ipmilan_takes_them(bmc: FakeBmc) -> None:
    res = run_argv(["-a", "192.0.2.9", "-u", "6231", "-l", "admin", "-p", SECRET, "-P", "-C", "3",
                    "-L", "user", "-o", "status"])
    assert res.code == 0, res.err
    t = bmc.targets[0]
    assert (t.host, t.port, t.username, t.password, t.privilege) == ("192.0.2.9", 6231, "admin", SECRET, "user")


def test_argv_long_options_and_legacy_long_names(bmc: FakeBmc) -> None:
    res = run_argv(["--ipaddr=192.0.2.3", "--login", "admin", "--password-script", "/bin/false",
                    "--password", SECRET, "--action=off", "--method", "cycle"])
    assert res.code == 0, res.err
    assert bmc.targets[0].host == "192.0.2.3"
    assert bmc.session.calls[:2] == ["get", "set off"]  # method=cycle only changes reboot


def test_plug_is_ignored_unless_port_as_ip(bmc: FakeBmc) -> None:
    assert run_stdin({**BASE, "action": "status", "plug": "compute-1"}).code == 0
    assert run_stdin({"action": "status", "port_as_ip": "1", "port": "192.0.2.44", "username": "a"}).code == 0
    assert [t.host for t in bmc.targets] == ["192.0.2.10", "192.0.2.44"]


def test_password_script_first_line_is_the_password(bmc: FakeBmc, tmp_path: Path) -> None:
    script = tmp_path / "pw.sh"
    script.write_text(f"#!/bin/sh\necho '{SECRET}'\necho second-line\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    res = run_stdin({"action": "status", "ip": "192.0.2.5", "passwd_script": str(script), "verbose": "1"})
    assert res.code == 0, res.err
    assert bmc.targets[0].password == SECRET
    assert SECRET not in res.err


def test_compat_only_options_are_accepted(bmc: FakeBmc) -> None:
    res = run_stdin({**BASE, "action": "status", "auth": "md5", "ipmitool_path": "/usr/bin/ipmitool",
                     "ipmitool_timeout": "2", "sudo": "1", "retry_on": "1", "power_wait": "2"})
    assert res.code == 0
    assert "unknown option" not in res.err


def test_unknown_stdin_option_is_a_warning_not_a_failure(bmc: FakeBmc) -> None:
    res = run_stdin({**BASE, "action": "status", "no_such_option": "x"})
    assert res.code == 0 and "no_such_option" in res.err


# --- validation ----------------------------------------------------------------------

def test_validate_all_reports_every_value_problem_without_contacting_the_bmc(bmc: FakeBmc) -> None:
    res = run_stdin({**BASE, "action": "validate-all", "cipher": "4", "method": "sometimes",
                     "ipport": "70000", "hexadecimal_kg": "zz", "privlvl": "root"})
    assert res.code == 1
    for name in ("cipher", "method", "ipport", "hexadecimal_kg", "privlvl"):
        assert f"{name}:" in res.err, name
    assert bmc.targets == []


def test_validate_all_reports_every_cross_field_problem(bmc: FakeBmc) -> None:
    res = run_stdin({"action": "validate-all", "username": "a", "password": "p" * 21,
                     "privlvl": "callback", "target": "0x82", "hexadecimal_kg": "00" * 20, "lanplus": "0"})
    assert res.code == 1
    assert "ip: is required" in res.err
    assert "password: is longer than 20 bytes" in res.err and "p" * 21 not in res.err
    assert "privlvl: callback cannot control chassis power" in res.err
    assert "target: IPMI bridging is not supported" in res.err
    assert "hexadecimal_kg: needs lanplus" in res.err
    assert bmc.targets == []


def test_validate_all_accepts_a_good_configuration(bmc: FakeBmc) -> None:
    res = run_stdin({**BASE, "action": "validate-all", "hexadecimal_kg": "00" * 20})
    assert (res.code, res.err) == (0, "")
    assert bmc.targets == []


def test_an_invalid_configuration_fails_an_action_before_any_session(bmc: FakeBmc) -> None:
    res = run_stdin({"action": "off", "password": SECRET})
    assert_one_line_failure(res, "ip: is required")
    assert bmc.targets == []


def test_kg_bytes() -> None:
    assert fence_ipmi.kg_bytes("0x0102") == b"\x01\x02"
    assert fence_ipmi.kg_bytes("ff" * 20) == b"\xff" * 20
    assert fence_ipmi.kg_bytes("") is None


# --- the state machine ---------------------------------------------------------------

def test_off_waits_for_a_lagging_bmc_in_one_session(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(lag=3))
    res = run_stdin({**BASE, "action": "off"})
    assert (res.code, res.out) == (0, "Success: Powered OFF\n")
    s = fake.session
    assert s.calls == ["get", "set off", "get", "get", "get", "get", "close"]
    assert s.closed == 1


def test_off_when_already_off_sets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(power="off"))
    res = run_stdin({**BASE, "action": "off"})
    assert (res.code, res.out) == (0, "Success: Already OFF\n")
    assert fake.session.calls == ["get", "close"]


def test_bmc_that_accepts_off_but_stays_on_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(stuck_on=True))
    res = run_stdin({**BASE, "action": "off", "power_timeout": "1"})
    assert_one_line_failure(res, "timed out waiting for power OFF", "still reports ON")
    assert "Success" not in res.out
    assert fake.session.calls.count("set off") == 1
    assert fake.session.calls.count("get") >= 3
    assert fake.session.closed == 1


def test_reboot_confirms_off_then_on(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(lag=1))
    res = run_stdin({**BASE})  # default action: reboot
    assert (res.code, res.out) == (0, "Success: Rebooted\n")
    assert fake.session.calls == ["get", "set off", "get", "get", "get", "set on", "get", "get", "close"]


def test_reboot_of_a_stuck_bmc_never_powers_on_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(stuck_on=True))
    res = run_stdin({**BASE, "action": "reboot", "power_timeout": "1"})
    assert_one_line_failure(res, "power OFF")
    assert "set on" not in fake.session.calls


def test_reboot_cycle_sends_one_cycle_and_needs_off_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(cycle_off_reads=1))
    res = run_stdin({**BASE, "method": "cycle"})
    assert (res.code, res.out) == (0, "Success: Rebooted\n")
    # the watch sees OFF once, the cycle brings power back by itself: nothing else is sent
    assert fake.session.calls == ["get", "cycle", "get", "get", "close"]


def test_reboot_cycle_powers_on_if_the_machine_stays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(cycle_off_reads=4))
    res = run_stdin({**BASE, "method": "cycle"})
    assert (res.code, res.out) == (0, "Success: Rebooted\n")
    calls = fake.session.calls
    assert calls.count("cycle") == 1 and "set off" not in calls and "set on" in calls


def test_reboot_cycle_fails_when_off_is_never_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(cycle_off_reads=0))
    res = run_stdin({**BASE, "method": "cycle", "power_timeout": "1"})
    assert_one_line_failure(res, "never reported power OFF", "method=onoff")
    assert fake.session.calls.count("cycle") == 1


@pytest.mark.parametrize("action,power,code,out", [
    ("status", "on", 0, "Status: ON\n"), ("status", "off", 2, "Status: OFF\n"),
    ("monitor", "off", 0, ""), ("on", "off", 0, "Success: Powered ON\n")])
def test_status_monitor_on(monkeypatch: pytest.MonkeyPatch, action: str, power: str, code: int, out: str) -> None:
    fake = use(monkeypatch, FakeBmc(power=power))
    res = run_stdin({**BASE, "action": action})
    assert (res.code, res.out) == (code, out)
    assert fake.session.closed == 1


def test_list_is_not_an_action(bmc: FakeBmc) -> None:
    res = run_stdin({**BASE, "action": "list"})
    assert_one_line_failure(res, "list")
    assert bmc.targets == []


@pytest.mark.parametrize("error,needle", [
    (ipmi.IpmiAuthError("login refused: wrong password"), "wrong password"),
    (ipmi.IpmiUnreachable("no answer to RMCP ping within 5s"), "RMCP ping"),
    (ipmi.IpmiProtocolError("BMC does not support cipher suite 17"), "cipher suite 17"),
    (ImportError("No module named 'pyipmi'", name="pyipmi"), "python-ipmi"),
])
def test_login_failures_are_one_line(monkeypatch: pytest.MonkeyPatch, error: BaseException, needle: str) -> None:
    use(monkeypatch, FakeBmc(open_error=error))
    assert_one_line_failure(run_stdin({**BASE, "action": "off"}), needle)


def test_failing_power_request_is_one_line_and_session_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(fail_set=ipmi.IpmiProtocolError("BMC refused requesting power off: "
                                                                    "Invalid data field (cc=0xcc)")))
    res = run_stdin({**BASE, "action": "off"})
    assert_one_line_failure(res, "cc=0xcc")
    assert fake.session.closed == 1


def test_hanging_bmc_requests_are_bounded_by_login_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use(monkeypatch, FakeBmc(hang=True))
    started = time.monotonic()
    res = run_stdin({**BASE, "action": "status", "login_timeout": "1"})
    assert_one_line_failure(res, "no answer", "chassis status")
    # login and the one request were each armed with login_timeout, not the whole budget
    assert fake.open_timeouts == [1.0] and fake.session.timeouts == [1.0]
    assert fake.session.closed == 1
    assert time.monotonic() - started < 1.0 + 3.0


def test_request_timeouts_shrink_to_what_is_left() -> None:
    """Each request is armed with min(login_timeout, time left); none starts without time."""
    from computeha.ocf_lib.deadline import Deadline, DeadlineExceeded

    now = [0.0]
    ctx = fence.FenceContext(agent="fence_ipmi", action="off", values=None, plug="", nodename="", env={},
                             deadline=Deadline(10.0, clock=lambda: now[0]), log=None, runner=None)
    session = FakeSession(ipmi.BmcTarget("h"), 99.0)
    conn = fence_ipmi._Session(session, ctx, op_timeout=5.0)
    seen = []
    for t in (0.0, 4.0, 7.5, 9.0):
        now[0] = t
        conn.power()
        seen.append(session.timeout)
    assert seen == [5.0, 5.0, 2.5, 1.0]
    now[0] = 9.95
    with pytest.raises(DeadlineExceeded):
        conn.power()
    assert len(session.calls) == 4


def test_installed_module_entry_point_runs(tmp_path: Path) -> None:
    """`python -m computeha.fence.fence_ipmi` is what the wrapper calls: metadata on stdin."""
    proc = subprocess.run([sys.executable, "-m", "computeha.fence.fence_ipmi"], input="action=metadata\n",
                          capture_output=True, text=True, timeout=60, env={**os.environ, "LC_ALL": "C"})
    assert proc.returncode == 0 and proc.stderr == ""
    assert ET.fromstring(proc.stdout).get("name") == "fence_ipmi"
