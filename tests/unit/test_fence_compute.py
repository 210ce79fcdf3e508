"""fence_compute behaviour against the in-memory Nova and attribute store."""
from __future__ import annotations

import io
import os
from typing import List, Optional

import pytest

from computeha.fence.fence_compute import FenceCompute
from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib import fence
from computeha.ocf_lib.nova import NovaError
from computeha.ocf_lib.nova_auth import AuthConfig
from tests.fakes.fake_nova import FakeNova
from tests.fakes.memory_attributes import MemoryAttributes
from tests.unit.fake_clock import FakeClock

PASSWORD = "s3cr3t-Pa55word"
CREDS = ["auth_url=http://127.0.0.1:5000/v3", "login=admin", f"passwd={PASSWORD}", "tenant_name=admin"]


class Harness:
    def __init__(self, nova: Optional[FakeNova] = None, attrs=None) -> None:
        self.nova = nova or FakeNova()
        self.attrs = attrs if attrs is not None else MemoryAttributes()
        self.configs: List[AuthConfig] = []
        self.clock = FakeClock()  # deadlines and retries run out without real waiting

        def nova_factory(ctx, config):
            self.configs.append(config)
            return self.nova

        self.agent = FenceCompute(nova_factory=nova_factory, attributes_factory=lambda ctx: self.attrs,
                                  clock=lambda: 1700000000.0, who="ctl-1")

    def run(self, lines: List[str] = (), argv: Optional[List[str]] = None, env=None):
        out, err = io.StringIO(), io.StringIO()
        code = fence.run(self.agent, ["fence_compute", *(argv or [])], env or {},
                         stdin=io.StringIO("\n".join(lines) + "\n"), stdout=out, stderr=err,
                         clock=self.clock, sleep=self.clock.sleep)
        self.out, self.err = out.getvalue(), err.getvalue()
        return code

    def record(self, node: str = "compute-0"):
        return rec.parse(self.attrs.get(node, rec.ATTRIBUTE))

    def svc(self, host: str = "compute-0"):
        return self.nova.services[host].view()


@pytest.fixture
def h() -> Harness:
    return Harness()


def act(action: str, plug: str = "compute-0", *extra: str) -> List[str]:
    return CREDS + [f"action={action}", f"plug={plug}", *extra]


# --- off ------------------------------------------------------------------------------

def test_off_forces_down_disables_and_records(h):
    h.nova.kill_compute("compute-0")
    assert h.run(act("off")) == 0, h.err
    svc = h.svc()
    assert svc.forced_down and svc.state == "down" and svc.status == "disabled"
    assert svc.disabled_reason.startswith("computeha: fenced 2023-11-14T22:13:20Z by ctl-1")
    record = h.record()
    assert record.state == rec.REQUESTED and record.since == 1700000000 and "ctl-1" in record.detail
    # one request at 2.53+: forced_down and disabled saved together
    assert [c[0] for c in h.nova.writes()] == ["force_down_and_disable"]
    assert [c[0] for c in h.nova.calls] == ["compute_services", "force_down_and_disable"]
    assert "Success: Powered OFF" in h.out


def test_off_before_2_53_forces_down_then_disables():
    h = Harness(FakeNova(max_mv="2.52"))
    assert h.run(act("off")) == 0, h.err
    assert [c[0] for c in h.nova.writes()] == ["force_down", "set_enabled"]
    svc = h.svc()
    assert svc.forced_down and svc.status == "disabled" and svc.id.isdigit()
    assert h.record().state == rec.REQUESTED


def test_off_twice_is_idempotent_without_writes(h):
    assert h.run(act("off")) == 0
    h.nova.calls.clear()
    assert h.run(act("off")) == 0, h.err
    assert "Success: Already OFF" in h.out
    assert h.nova.writes() == []


def test_off_on_admin_disabled_host_still_records_and_keeps_admin_reason(h):
    # legacy defect: a host an admin had disabled was never recorded for evacuation
    h.nova.services["compute-0"].status = "disabled"
    h.nova.services["compute-0"].disabled_reason = "maintenance by bob"
    h.nova.kill_compute("compute-0", noticed=True)
    assert h.run(act("off")) == 0, h.err
    svc = h.svc()
    assert svc.forced_down and svc.disabled_reason == "maintenance by bob"
    assert h.record().state == rec.REQUESTED
    assert [c[0] for c in h.nova.writes()] == ["force_down"]


def test_off_after_finished_evacuation_requests_again(h):
    h.attrs.set("compute-0", rec.ATTRIBUTE, "done;1600000000;3/3")
    h.nova.services["compute-0"].forced_down = True
    h.nova.services["compute-0"].status = "disabled"
    h.nova.services["compute-0"].disabled_reason = "computeha: fenced earlier"
    assert h.run(act("off")) == 0, h.err
    assert h.record().state == rec.REQUESTED and h.record().since == 1700000000
    assert h.svc().disabled_reason.startswith("computeha: fenced 2023")


def test_off_keeps_a_running_claim(h):
    h.attrs.set("compute-0", rec.ATTRIBUTE, "running;1690000000;ctl-2")
    assert h.run(act("off")) == 0, h.err
    assert h.record().state == rec.RUNNING  # NovaEvacuate's claim is not reset
    assert h.svc().forced_down


def test_off_retries_transient_nova_errors(h):
    h.nova.inject_5xx("force_down_and_disable", times=2)
    h.nova.inject_timeout("compute_services", times=1)
    assert h.run(act("off")) == 0, h.err
    assert h.svc().forced_down and h.record().state == rec.REQUESTED
    assert [c[0] for c in h.nova.writes()] == ["force_down_and_disable"] * 3
    assert "retrying" in h.err


def test_off_fails_when_nova_unreachable(h):
    h.nova.reachable = False
    assert h.run(act("off", "compute-0", "power_timeout=1", "login_timeout=1")) == 1
    assert "Nova unavailable" in h.err and "Traceback" not in h.err
    assert h.record() is None
    assert h.clock.slept == [0.2, 0.4, 0.8, 1.6, 2.0]  # backed off until the 7 s budget (fake clock)


def test_off_fails_when_record_cannot_be_read_back(h):
    class Lossy(MemoryAttributes):
        def get(self, node, name):
            return None  # writes vanish: the cluster never confirms

    h.attrs = Lossy()
    assert h.run(act("off", "compute-0", "power_timeout=1", "login_timeout=1")) == 1
    assert "recording the evacuation of compute-0" in h.err


def test_off_auth_error_is_one_line_failure(h):
    h.nova.auth_ok = False
    assert h.run(act("off")) == 1
    assert "401" in h.err and h.err.count("\n") == 1


def test_record_goes_on_the_pacemaker_node_name(h):
    # pcmk_host_map gave the Nova name as plug; nodename is the Pacemaker node
    h.nova = FakeNova(hosts=("compute-0.cloud.example",))
    assert h.run(CREDS + ["action=off", "plug=compute-0.cloud.example", "nodename=compute-0"]) == 0, h.err
    assert h.record("compute-0").state == rec.REQUESTED
    assert h.attrs.get("compute-0.cloud.example", rec.ATTRIBUTE) is None


def test_off_maps_short_pacemaker_name_to_fqdn(h):
    h.nova = FakeNova(hosts=("compute-0.a.example", "compute-1.a.example"))
    assert h.run(act("off", "compute-0")) == 0, h.err
    assert h.nova.services["compute-0.a.example"].forced_down
    assert h.record("compute-0").state == rec.REQUESTED


def test_ambiguous_name_is_an_error(h):
    h.nova = FakeNova(hosts=("compute-0.a.example", "compute-0.b.example"))
    assert h.run(act("off", "compute-0")) == 1
    assert "ambiguous" in h.err and "compute-0.a.example" in h.err
    assert h.nova.writes() == []
    assert h.run(act("off", "compute-0", "domain=b.example")) == 0, h.err
    assert h.nova.services["compute-0.b.example"].forced_down
    assert not h.nova.services["compute-0.a.example"].forced_down


def test_unknown_host_fails(h):
    assert h.run(act("off", "nosuch")) == 1
    assert "nosuch" in h.err and h.nova.writes() == []


# --- status ----------------------------------------------------------------------------

def test_status_on_off_and_unknown(h):
    assert h.run(act("status")) == 0 and "Status: ON" in h.out
    # forced down and disabled but no record: not OFF (it must be fenced properly)
    h.nova.services["compute-0"].forced_down = True
    h.nova.services["compute-0"].status = "disabled"
    assert h.run(act("status")) == 0
    h.attrs.set("compute-0", rec.ATTRIBUTE, "done;1;2/2")
    assert h.run(act("status")) == 2 and "Status: OFF" in h.out
    h.nova.reachable = False
    assert h.run(act("status", "compute-0", "login_timeout=1", "power_timeout=1")) == 1
    h.nova.reachable = True
    assert h.run(act("status", "nosuch")) == 1


# --- on --------------------------------------------------------------------------------

def test_on_without_record_succeeds_at_once_read_only(h):
    assert h.run(act("on")) == 0, h.err
    assert "Success: Already ON" in h.out and h.nova.writes() == []


def test_on_succeeds_at_once_and_touches_nothing_while_the_evacuation_is_pending(h):
    # unfencing must never wait: NovaCompute holds nova-compute until the evacuation is finished
    nova = FakeNova(auto_progress=4)
    h.nova = nova
    sid = nova.add_server("compute-0")
    h.run(act("off"))
    nova.evacuate(sid)  # in flight
    before = h.attrs.get("compute-0", rec.ATTRIBUTE)
    nova.calls.clear()
    assert h.run(act("on", "compute-0", "power_timeout=20")) == 0, h.err
    assert nova.calls == []  # no polling of the evacuation: nothing was even read
    assert "Success: Already ON" in h.out
    assert nova.writes() == [] and h.svc().forced_down
    assert h.attrs.get("compute-0", rec.ATTRIBUTE) == before


def test_on_with_failed_record_lets_host_return(h):
    h.attrs.set("compute-0", rec.ATTRIBUTE, "failed;1700000100;1/2 NoValidHost")
    assert h.run(act("on")) == 0, h.err


def test_on_does_not_need_nova(h):
    h.run(act("off"))
    h.nova.reachable = False
    assert h.run(act("on", "compute-0", "power_timeout=1", "login_timeout=1")) == 0, h.err


def test_enable_disable_aliases(h):
    assert h.run(act("disable")) == 0 and h.svc().forced_down
    h.attrs.set("compute-0", rec.ATTRIBUTE, "done;1;0/0")
    assert h.run(act("enable")) == 0


def test_reboot_is_not_offered(h):
    assert h.run(act("reboot")) == 1
    assert "Unrecognised action" in h.err


# --- monitor / list ------------------------------------------------------------------------

def test_monitor_really_checks_nova(h):
    assert h.run(CREDS + ["action=monitor"]) == 0
    assert ("check", ()) in h.nova.calls
    h.nova.auth_ok = False
    assert h.run(CREDS + ["action=monitor"]) == 1 and "401" in h.err


def test_list_prints_pacemaker_names(h):
    h.nova = FakeNova(hosts=("compute-0.x.example", "compute-1.x.example"))
    assert h.run(CREDS + ["action=list", "domain=x.example"]) == 0
    assert h.out.splitlines() == ["compute-0,compute-0.x.example", "compute-1,compute-1.x.example"]
    h.nova.services["compute-1.x.example"].forced_down = True
    h.nova.services["compute-1.x.example"].status = "disabled"
    assert h.run(CREDS + ["action=list-status", "host_map=n1:compute-1.x.example", "domain=x.example"]) == 0
    assert h.out.splitlines() == ["compute-0,compute-0.x.example,ON", "n1,compute-1.x.example,OFF"]


# --- parameters ------------------------------------------------------------------------------

def test_legacy_stdin_aliases(h):
    assert h.run(["auth-url=https://k.example:5000/v3", "login=alice", "passwd=pw-12345", "tenant_name=proj",
                  "user-domain=UD", "project-domain=PD", "endpoint_type=publicURL", "region_name=R2",
                  "port=compute-1", "action=status", "record_only=1", "no_shared_storage=1",
                  "compute-domain=", "insecure=0"]) == 0, h.err
    cfg = h.configs[-1]
    assert (cfg.auth_url, cfg.username, cfg.password, cfg.project_name) == ("https://k.example:5000/v3", "alice",
                                                                           "pw-12345", "proj")
    assert (cfg.user_domain, cfg.project_domain, cfg.interface, cfg.region_name) == ("UD", "PD", "public", "R2")
    assert cfg.verify is True


def test_argv_form_with_short_and_long_options(h):
    assert h.run(argv=["-o", "status", "-n", "compute-2", "-k", "http://127.0.0.1:5000/v3", "-l", "admin",
                       "-p", "pw-12345", "-t", "admin", "-u", "Default", "-P", "Default", "-e", "internalURL",
                       "--insecure"]) == 0, h.err
    assert h.configs[-1].verify is False and h.configs[-1].interface == "internal"
    assert "Status: ON" in h.out


@pytest.mark.parametrize("value,verify", [("0", True), ("no", True), ("false", True), ("1", False), ("yes", False)])
def test_insecure_is_a_real_boolean(h, value, verify):
    assert h.run(act("status", "compute-0", f"insecure={value}")) == 0, h.err
    assert h.configs[-1].verify is verify


@pytest.mark.parametrize("lines,needle", [
    (["action=off", "plug=compute-0", "login=a", "passwd=b12", "tenant_name=p"], "auth_url: is required"),
    (CREDS[:2] + ["action=off", "plug=compute-0", "tenant_name=p"], "password: is required"),
    (act("off", "compute-0", "endpoint_type=sideways"), "endpoint_type: must be one of"),
    (act("off", "compute-0", "insecure=perhaps"), "insecure: value 'perhaps' is not a boolean"),
    (["auth_url=http://k:5000/v2.0", *CREDS[1:], "action=off", "plug=c"], "Keystone v2.0"),
    (CREDS + ["action=off"], "plug: is required for action off"),
    (act("off", "compute-0", "record_only=maybe"), "record_only: must be"),
    (act("off", "compute-0", "host_map=broken"), "host_map: entry 'broken'"),
    (act("off", "compute-0", "power_timeout=soon"), "power_timeout: value 'soon'"),
    (act("off", "compute-0", "nova_max_microversion=latest"), "nova_max_microversion: must look like"),
])
def test_bad_parameters_fail_clearly(h, lines, needle):
    assert h.run(lines) == 1
    assert needle in h.err, h.err
    assert "Traceback" not in h.err and h.nova.calls == []


def test_validate_all(h):
    assert h.run(CREDS + ["action=validate-all"]) == 0, h.err
    assert h.nova.calls == []  # level 0: no network
    assert h.run(["action=validate-all", "login=a"]) == 1 and "auth_url" in h.err
    h.nova.auth_ok = False
    assert h.run(CREDS + ["action=validate-all", "check_level=10"]) == 1 and "401" in h.err
    assert h.nova.writes() == []
    h.nova.auth_ok = True
    assert h.run(CREDS + ["action=validate-all", "check_level=10", "plug=nosuch"]) == 1 and "nosuch" in h.err
    assert h.run(CREDS + ["action=validate-all", "check_level=10", "plug=compute-1"]) == 0, h.err


def test_record_only_disabled_does_nothing(h):
    assert h.run(["action=off", "plug=compute-0", "record_only=disabled"]) == 0
    assert h.nova.calls == [] and h.record() is None


def test_password_script(h, tmp_path):
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho from-script-pw\n")
    script.chmod(0o700)
    lines = [CREDS[0], CREDS[1], CREDS[3], f"password_script={script}", "action=status", "plug=compute-0"]
    assert h.run(lines, env=dict(os.environ)) == 0, h.err
    assert h.configs[-1].password == "from-script-pw"


def test_secret_never_in_output(h):
    class Leaky(FakeNova):
        def compute_services(self, host=None):
            raise NovaError(f"server echoed {PASSWORD} back")

    h.nova = Leaky()
    assert h.run(act("off", "compute-0", "verbose=1")) == 1
    assert PASSWORD not in h.err + h.out and "****" in h.err
