"""Fence protocol: stdin/argv parsing and the verified power state machine.

The device is a fake that can lag (changes state only after some polls),
fail (raises on set), lie (accepts a change but never makes it) and hang
(get_power blocks past the deadline).
"""
from __future__ import annotations

import io
import time
from contextlib import contextmanager
from typing import Dict, List, Optional

import pytest

from computeha.ocf_lib import fence
from computeha.ocf_lib.params import Kind, Param, ParamTable


class FakeDevice:
    def __init__(self, state: str = "on", lag_polls: int = 0, fail_set: bool = False, lie: bool = False,
                 hang_s: float = 0.0, fail_on: bool = False) -> None:
        self.state = state
        self.pending: Optional[str] = None
        self.lag_polls = lag_polls
        self.polls_left = 0
        self.fail_set = fail_set
        self.fail_on = fail_on
        self.lie = lie
        self.hang_s = hang_s
        self.calls: List[str] = []

    def get(self) -> str:
        self.calls.append("get")
        if self.hang_s:
            time.sleep(self.hang_s)
        if self.pending is not None:
            if self.polls_left <= 0:
                self.state, self.pending = self.pending, None
            else:
                self.polls_left -= 1
        return self.state

    def set(self, target: str) -> None:
        self.calls.append("set-" + target)
        if self.fail_set or (self.fail_on and target == "on"):
            raise fence.FenceError(f"device refused power {target}")
        if not self.lie:
            self.pending, self.polls_left = target, self.lag_polls


class FakeAgent(fence.FenceAgent):
    name = "fence_fake"
    shortdesc = "fake"
    longdesc = "fake power switch"
    table = ParamTable([
        Param("ip", Kind.STRING, "address", short_opt="a", metavar="ip", aliases=("ipaddr",), required=True),
        Param("username", Kind.STRING, "login", short_opt="l", aliases=("login",), metavar="name"),
        Param("password", Kind.STRING, "password", short_opt="p", secret=True, aliases=("passwd",), metavar="pw"),
        Param("password_script", Kind.STRING, "password script", short_opt="S", metavar="script"),
        Param("lanplus", Kind.BOOLEAN, "lanplus", short_opt="P", default=True),
    ])

    def __init__(self, device: FakeDevice) -> None:
        self.device = device
        self.seen_values = None

    @contextmanager
    def connect(self, ctx):
        self.seen_values = ctx.values
        yield self.device

    def get_power(self, ctx, conn):
        return conn.get()

    def set_power(self, ctx, conn, state):
        conn.set(state)


def run(agent: fence.FenceAgent, stdin: str = "", argv: Optional[List[str]] = None,
        env: Optional[Dict[str, str]] = None):
    out, err = io.StringIO(), io.StringIO()
    code = fence.run(agent, ["fence_fake", *(argv or [])], env or {}, stdin=io.StringIO(stdin),
                     stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_off_is_verified_by_polling_a_lagging_device() -> None:
    device = FakeDevice(lag_polls=3)
    code, out, _ = run(FakeAgent(device), "action=off\nip=10.0.0.1\n")
    assert code == 0 and out.strip() == "Success: Powered OFF"
    assert device.state == "off" and device.calls.count("get") >= 4


def test_already_off_is_reported_without_touching_the_device() -> None:
    device = FakeDevice(state="off")
    code, out, _ = run(FakeAgent(device), "action=off\nip=x\n")
    assert code == 0 and out.strip() == "Success: Already OFF"
    assert not any(c.startswith("set") for c in device.calls)


def test_a_device_that_lies_fails_at_the_deadline() -> None:
    device = FakeDevice(lie=True)
    started = time.monotonic()
    code, out, err = run(FakeAgent(device), "action=off\nip=x\npower_timeout=1\n")
    assert code == 1 and "Success" not in out
    assert "timed out waiting for power OFF" in err and "still reports ON" in err
    assert time.monotonic() - started < 5


def test_a_failing_device_gives_exit_1_with_one_line() -> None:
    code, _, err = run(FakeAgent(FakeDevice(fail_set=True)), "action=off\nip=x\n")
    assert code == 1
    assert [line for line in err.splitlines() if "Failed:" in line] == [err.strip().splitlines()[-1]]
    assert "device refused power off" in err


def test_a_hanging_device_is_cut_off_by_the_deadline() -> None:
    device = FakeDevice(lie=True, hang_s=0.3)
    started = time.monotonic()
    code, _, _ = run(FakeAgent(device), "action=off\nip=x\npower_timeout=1\n")
    assert code == 1 and time.monotonic() - started < 4


def test_reboot_is_off_then_on_and_a_failed_on_still_succeeds() -> None:
    device = FakeDevice(lag_polls=1)
    code, out, _ = run(FakeAgent(device), "action=reboot\nip=x\n")
    assert code == 0 and out.strip() == "Success: Rebooted"
    assert [c for c in device.calls if c.startswith("set")] == ["set-off", "set-on"]
    device = FakeDevice(fail_on=True)
    code, out, err = run(FakeAgent(device), "action=reboot\nip=x\n")
    assert code == 0 and device.state == "off" and "power on after reboot failed" in err


def test_reboot_fails_when_off_fails() -> None:
    code, out, _ = run(FakeAgent(FakeDevice(lie=True)), "action=reboot\nip=x\npower_timeout=1\n")
    assert code == 1 and "Rebooted" not in out


@pytest.mark.parametrize("state,code", [("on", 0), ("off", 2)])
def test_status_prints_and_exits_by_state(state: str, code: int) -> None:
    rc, out, _ = run(FakeAgent(FakeDevice(state=state)), "action=status\nip=x\n")
    assert rc == code and out.strip() == f"Status: {state.upper()}"


def test_stdin_parsing_rules() -> None:
    agent = FakeAgent(FakeDevice(state="off"))
    text = ("# a comment\n\n  action = status\nipaddr=\"10.1.1.1\"\nip=10.2.2.2\nlogin=admin\n"
            "nodename=compute-1\nunknown_key=1\npower-timeout=7\nlanplus=0\n")
    code, out, err = run(agent, text)
    assert code == 2 and out.strip() == "Status: OFF"
    assert agent.seen_values.ip == "10.2.2.2" and agent.seen_values.username == "admin"
    assert agent.seen_values.power_timeout == 7 and agent.seen_values.lanplus is False
    assert "unknown_key" in err and "nodename" not in err


def test_argv_mode_uses_the_same_table() -> None:
    agent = FakeAgent(FakeDevice(state="on"))
    code, out, _ = run(agent, argv=["-o", "status", "-a", "10.0.0.9", "-l", "root", "--power-timeout=3", "-P"])
    assert code == 0 and out.strip() == "Status: ON"
    assert agent.seen_values.ip == "10.0.0.9" and agent.seen_values.lanplus is True
    assert run(agent, argv=["--bogus"])[0] == 1


def test_a_stray_positional_argument_is_warned_about_and_ignored() -> None:
    """fence-agents' own harness passes boolean flags with a value (`-P 1`); fencing.py warns and goes on."""
    agent = FakeAgent(FakeDevice(state="off"))
    code, out, err = run(agent, argv=["-o", "status", "-a", "10.0.0.9", "-P", "1", "stray-secret"])
    assert code == 2 and out.strip() == "Status: OFF"
    assert agent.seen_values.lanplus is True
    assert "ignoring 2 unexpected positional argument(s) (not shown)" in err and "stray-secret" not in err


def test_manpage_prints_the_metadata_xml_as_fence_agents_does() -> None:
    agent = FakeAgent(FakeDevice())
    code, out, _ = run(agent, "action=manpage\n")
    assert code == 0 and out == agent.metadata() and out.lstrip().startswith("<?xml")


def test_an_agent_answers_to_its_installed_name() -> None:
    from computeha.fence.fence_compute import FenceCompute
    agent = fence.answer_to(FenceCompute(), "/usr/sbin/fence_computeha")
    assert agent.name == "fence_computeha" and 'name="fence_computeha"' in agent.metadata()
    assert "fence_computeha" in agent.usage().splitlines()[0]
    for argv0 in ("/usr/lib/python3/fence_compute.py", "python3", ""):
        assert fence.answer_to(FenceCompute(), argv0).name == "fence_compute"


def test_unknown_action_uses_the_text_pacemaker_recognises() -> None:
    code, _, err = run(FakeAgent(FakeDevice()), "action=explode\nip=x\n")
    assert code == 1 and "Unrecognised action" in err


def test_only_exit_codes_0_1_2_exist_and_validation_is_complete() -> None:
    code, _, err = run(FakeAgent(FakeDevice()), "action=validate-all\nlanplus=maybe\npower_timeout=-1\n")
    assert code == 1
    assert "ip" in err and "lanplus" in err and "power_timeout" in err
    assert run(FakeAgent(FakeDevice()), "action=validate-all\nip=x\n")[0] == 0


def test_metadata_and_help_need_nothing_else() -> None:
    code, out, _ = run(FakeAgent(FakeDevice()), "action=metadata\n")
    assert code == 0 and '<action name="reboot"' in out and '<action name="on" automatic="0"' in out
    code, out, _ = run(FakeAgent(FakeDevice()), argv=["-h"])
    assert code == 0 and "--ip=[ip]" in out
    code, out, _ = run(FakeAgent(FakeDevice()), argv=["-V"])
    assert code == 0 and out.strip()


def test_fabric_agents_advertise_unfencing_and_no_reboot() -> None:
    class Fabric(FakeAgent):
        fabric = True
        has_plug = True
    code, out, _ = run(Fabric(FakeDevice()), "action=metadata\n")
    assert '<action name="on" automatic="1"' in out and 'name="reboot"' not in out
    assert 'name="plug"' in out and 'name="port"' in out
    code, _, err = run(Fabric(FakeDevice()), "action=reboot\nip=x\nplug=n1\n")
    assert code == 1 and "Unrecognised action" in err


def test_password_script_runs_without_a_shell_and_stays_secret(tmp_path) -> None:
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho sup3r-secret-pw\n")
    script.chmod(0o755)
    agent = FakeAgent(FakeDevice(state="on"))
    code, out, err = run(agent, f"action=status\nip=x\npassword_script={script}\nverbose=1\n")
    assert code == 0 and agent.seen_values.password == "sup3r-secret-pw"
    assert "sup3r-secret-pw" not in out + err
    code, _, err = run(FakeAgent(FakeDevice()), f"action=status\nip=x\npassword_script={tmp_path}/absent\n")
    assert code == 1 and "password_script" in err


def test_secret_values_never_reach_stderr_even_when_verbose() -> None:
    class Leaky(FakeAgent):
        def get_power(self, ctx, conn):
            ctx.log.debug("connecting with %s", ctx.values.password)
            raise fence.FenceError(f"login failed for password {ctx.values.password}")
    code, _, err = run(Leaky(FakeDevice()), "action=status\nip=x\npassword=Pa55word-xyz\nverbose=1\n")
    assert code == 1 and "Pa55word-xyz" not in err and "****" in err


def test_delay_applies_to_off_only() -> None:
    started = time.monotonic()
    assert run(FakeAgent(FakeDevice()), "action=status\nip=x\ndelay=1\n")[0] == 0
    assert time.monotonic() - started < 1
    started = time.monotonic()
    assert run(FakeAgent(FakeDevice()), "action=off\nip=x\ndelay=1\n")[0] == 0
    assert time.monotonic() - started >= 1


def test_validate_all_reports_table_and_agent_problems_together() -> None:
    from tests.contract.sample_agents import SampleFence
    code, _, err = run(SampleFence(), "action=validate-all\ninsecure=perhaps\n")
    assert code == 1
    assert "insecure" in err and "state_dir" in err and "plug" in err
