"""fence_compute as a process against the real Keystone + Nova rig.

The rig has no Pacemaker: the agent runs through the TEST-ONLY entry point
tests.fakes.fence_compute_file_attrs, which keeps the cluster record in a JSON
file instead of the CIB (the real-cluster tests use crm_attribute). Options go
on stdin, as pacemaker-fenced sends them; the password is never on argv.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.nova import NovaBadRequest
from computeha.ocf_lib.nova_auth import AuthConfig
from computeha.ocf_lib.nova_client import NovaClient
from tests.fakes.file_attributes import ENV, FileAttributes
from tests.integration.nova_rig_helpers import admin_credentials, boot_on, get_rig, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.openstack]

REPO = Path(__file__).resolve().parents[2]
HOST = "compute-1"  # the host these tests fence (restored afterwards)


class Agent:
    def __init__(self, rig, attrs_file: Path) -> None:
        self.rig = rig
        self.creds = admin_credentials(rig)
        self.attrs_file = attrs_file
        self.attrs = FileAttributes(str(attrs_file))
        self.children: Set[int] = set()

    def options(self, **extra: str) -> List[str]:
        c = self.creds
        lines = [f"auth_url={c['auth_url']}", f"login={c['username']}", f"passwd={c['password']}",
                 f"tenant_name={c['project_name']}", "user-domain=Default", "project-domain=Default",
                 f"region_name={c['region_name']}", f"endpoint_type={c['interface']}URL", "record_only=1",
                 "no_shared_storage=0", "insecure=0", f"token_cache={self.attrs_file.parent / 'tokens'}"]
        lines += [f"{k}={v}" for k, v in extra.items()]
        return lines

    def run(self, lines: List[str], timeout: float = 120, watch_cmdlines: Optional[List[str]] = None,
            argv: Optional[List[str]] = None) -> subprocess.CompletedProcess:
        env = dict(os.environ, **{ENV: str(self.attrs_file), "PYTHONPATH": str(REPO)})
        proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.fence_compute_file_attrs", *(argv or [])],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=str(REPO))
        stop = threading.Event()
        seen: List[str] = []
        if watch_cmdlines is not None:
            threading.Thread(target=_scan_cmdlines, args=(proc.pid, stop, seen), daemon=True).start()
        try:
            out, err = proc.communicate("\n".join(lines) + "\n", timeout=timeout)
        finally:
            stop.set()
        if watch_cmdlines is not None:
            watch_cmdlines.extend(seen)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def record(self, node: str = HOST):
        return rec.parse(self.attrs.get(node, rec.ATTRIBUTE))


def _scan_cmdlines(root_pid: int, stop: threading.Event, seen: List[str]) -> None:
    """Collect the command lines of the agent and all its descendants while it runs."""
    while not stop.is_set():
        for pid in _descendants(root_pid) | {root_pid}:
            try:
                seen.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
        time.sleep(0.005)


def _descendants(root: int) -> Set[int]:
    parents: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found: Set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


@pytest.fixture(scope="module")
def rig(request):
    return get_rig(request)


@pytest.fixture
def agent(rig, tmp_path):
    a = Agent(rig, tmp_path / "attrs.json")
    yield a
    rig.restore_computes()


@pytest.fixture
def nova(rig):
    return NovaClient.from_config(AuthConfig.from_values({"cloud": rig.cloud_name,
                                                          "clouds_yaml": str(rig.clouds_yaml)}))


def _svc(nova, host: str = HOST):
    found = nova.compute_services(host)
    assert len(found) == 1
    return found[0]


def test_off_marks_nova_and_records_then_is_idempotent(agent, nova, rig):
    rig.power_off(HOST)
    result = agent.run(agent.options(action="off", plug=HOST))
    assert result.returncode == 0, result.stderr
    assert "Success: Powered OFF" in result.stdout
    svc = _svc(nova)
    assert svc.forced_down and svc.state == "down" and svc.status == "disabled"
    assert svc.disabled_reason.startswith("computeha: fenced ") and "evacuation requested" in svc.disabled_reason
    record = agent.record()
    assert record.state == rec.REQUESTED and abs(record.since - time.time()) < 120

    status = agent.run(agent.options(action="status", plug=HOST))
    assert status.returncode == 2 and "Status: OFF" in status.stdout

    again = agent.run(agent.options(action="off", plug=HOST))
    assert again.returncode == 0 and "Success: Already OFF" in again.stdout
    assert _svc(nova).updated_at == svc.updated_at  # nothing written the second time
    assert agent.record() == record


def test_off_on_admin_disabled_host_still_records(agent, nova, rig):
    nova.set_enabled(_svc(nova), False, "maintenance window")
    rig.power_off(HOST)
    result = agent.run(agent.options(action="off", plug=HOST))
    assert result.returncode == 0, result.stderr
    svc = _svc(nova)
    assert svc.forced_down and svc.disabled_reason == "maintenance window"
    assert agent.record().state == rec.REQUESTED


def test_on_succeeds_at_once_untouched_then_the_host_returns(agent, nova, rig):
    server = boot_on(rig, HOST, "fc-on")
    try:
        rig.power_off(HOST)
        assert agent.run(agent.options(action="off", plug=HOST)).returncode == 0
        # NovaEvacuate claimed the host and is working: `on` (unfencing) succeeds at once and changes
        # nothing, neither in Nova nor in the record (NovaCompute holds nova-compute meanwhile)
        running = rec.new(rec.RUNNING, "ctl-2").format()
        agent.attrs.set(HOST, rec.ATTRIBUTE, running)
        before = _svc(nova)
        early = agent.run(agent.options(action="on", plug=HOST, power_timeout="4"))
        assert early.returncode == 0, early.stderr
        assert _svc(nova) == before and before.forced_down
        assert agent.attrs.get(HOST, rec.ATTRIBUTE) == running

        # NovaEvacuate's work, done here with the adapter: evacuate and wait for `done`
        nova.evacuate(server.id)
        wait_for(lambda: nova.server(server.id).host != HOST and nova.server(server.id).task_state is None, 90,
                 "server evacuated", interval=0.5)
        agent.attrs.set(HOST, rec.ATTRIBUTE, rec.new(rec.DONE, "1/1").format())

        unfence = agent.run(agent.options(action="on", plug=HOST))
        assert unfence.returncode == 0, unfence.stderr
        # fence_compute `on` is read-only: force-up would be refused anyway while `done` records remain
        assert _svc(nova).forced_down
        with pytest.raises(NovaBadRequest):
            nova.force_down(_svc(nova), False)

        # NovaCompute `start` (done here by the test): start nova-compute while still forced down,
        # wait for `completed`, then force up, enable, clear the record
        rig.power_on(HOST)
        wait_for(lambda: all(m.status == "completed" for m in nova.migrations(source_host=HOST,
                                                                             instance_uuid=server.id)),
                 90, "migrations completed", interval=0.5)
        svc = nova.force_down(_svc(nova), False)
        svc = nova.set_enabled(svc, True)
        agent.attrs.delete(HOST, rec.ATTRIBUTE)
        wait_for(lambda: _svc(nova).state == "up", 60, "service up")
        svc = _svc(nova)
        assert (svc.status, svc.forced_down) == ("enabled", False)
        status = agent.run(agent.options(action="status", plug=HOST))
        assert status.returncode == 0 and "Status: ON" in status.stdout
        again = agent.run(agent.options(action="on", plug=HOST))
        assert again.returncode == 0 and "Already ON" in again.stdout
    finally:
        rig.restore_computes()
        rig.delete_servers([server.id])


def test_old_microversion_path(agent, nova, rig):
    rig.power_off(HOST)
    result = agent.run(agent.options(action="off", plug=HOST, nova_max_microversion="2.52", verbose="1"))
    assert result.returncode == 0, result.stderr
    svc = _svc(nova)
    assert svc.forced_down and svc.status == "disabled" and svc.disabled_reason.startswith("computeha:")
    assert agent.record().state == rec.REQUESTED
    old = NovaClient.from_config(AuthConfig.from_values({"cloud": rig.cloud_name, "clouds_yaml": str(rig.clouds_yaml),
                                                         "nova_max_microversion": "2.52"}))
    assert _svc(old).id.isdigit()
    agent.attrs.set(HOST, rec.ATTRIBUTE, rec.new(rec.DONE, "0/0").format())
    assert agent.run(agent.options(action="on", plug=HOST, nova_max_microversion="2.52")).returncode == 0


def test_monitor_list_and_status_read_only(agent, nova, rig):
    result = agent.run(agent.options(action="monitor"))
    assert result.returncode == 0, result.stderr
    listed = agent.run(agent.options(action="list"))
    assert listed.returncode == 0
    assert sorted(line.split(",")[0] for line in listed.stdout.splitlines()) == sorted(rig.compute_hosts)
    status = agent.run(agent.options(action="status", plug=HOST))
    assert status.returncode == 0 and "Status: ON" in status.stdout
    unknown = agent.run(agent.options(action="status", plug="nosuch-host"))
    assert unknown.returncode == 1 and "nosuch-host" in unknown.stderr
    deep = agent.run(agent.options(action="validate-all", check_level="10", plug=HOST))
    assert deep.returncode == 0, deep.stderr


def test_wrong_password_and_no_secret_anywhere(agent, rig, tmp_path):
    password = agent.creds["password"]
    debug = tmp_path / "debug.log"
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\nprintf '%s\\n' \"$(cat " + str(tmp_path / "pw") + ")\"\n")
    script.chmod(0o700)
    (tmp_path / "pw").write_text(password)
    (tmp_path / "pw").chmod(0o600)
    cmdlines: List[str] = []
    lines = [line for line in agent.options(action="monitor", verbose="1", debug_file=str(debug))
             if not line.startswith("passwd=")] + [f"password_script={script}"]
    ok = agent.run(lines, watch_cmdlines=cmdlines)
    assert ok.returncode == 0, ok.stderr
    assert any("fence_compute_file_attrs" in c for c in cmdlines)  # the scan saw the agent itself

    bad = agent.options(action="monitor", verbose="1", debug_file=str(debug))
    bad = [f"passwd={password}x-wrong" if line.startswith("passwd=") else line for line in bad]
    refused = agent.run(bad, watch_cmdlines=cmdlines)
    assert refused.returncode == 1 and "401" in refused.stderr and "Traceback" not in refused.stderr
    text = ok.stdout + ok.stderr + refused.stdout + refused.stderr + debug.read_text()
    assert password not in text
    assert all(password not in c for c in cmdlines)
    assert debug.read_text().strip(), "the debug log was written"


def test_argv_form_and_cloud_yaml(agent, rig):
    c = agent.creds
    # argv form (for debugging; the password then sits on the command line, so use a cloud entry)
    result = agent.run([], argv=["-o", "status", "-n", HOST, "--cloud", rig.cloud_name,
                                 "--clouds-yaml", str(rig.clouds_yaml), "-e", c["interface"]])
    assert result.returncode == 0, result.stderr
    assert "Status: ON" in result.stdout
