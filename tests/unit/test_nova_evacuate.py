"""The NovaEvacuate OCF agent: metadata, parameters, and the worker's life cycle (real processes)."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from computeha.agents import evacuation_worker as worker
from computeha.agents.nova_evacuate import RESTART_LIMIT, NovaEvacuate
from computeha.ocf_lib import ocf
from computeha.ocf_lib.state import StateDir
from tests.unit.evacuation_test_worker import ENV as ATTRS_ENV
from tests.unit.evacuation_test_worker import FileAttrsNovaEvacuate

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "NovaEvacuate.xml"

LEGACY = {  # an existing CIB of the legacy agent, parameters unchanged
    "OCF_RESKEY_auth_url": "http://127.0.0.1:9/v3",
    "OCF_RESKEY_username": "admin",
    "OCF_RESKEY_password": "s3cret-pw",
    "OCF_RESKEY_tenant_name": "admin",
    "OCF_RESKEY_user_domain": "Default",
    "OCF_RESKEY_project_domain": "Default",
    "OCF_RESKEY_region_name": "RegionOne",
    "OCF_RESKEY_endpoint_type": "internalURL",
    "OCF_RESKEY_insecure": "0",
    "OCF_RESKEY_no_shared_storage": "1",
    "OCF_RESKEY_evacuate_delay": "5",
}


def run(agent, action, env, **extra):
    out, err = io.StringIO(), io.StringIO()
    code = ocf.run(agent, ["NovaEvacuate", action], {**env, **extra}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def env(tmp_path):
    attrs = tmp_path / "attrs.json"
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HA_RSCTMP": str(tmp_path / "rsctmp"),
            "OCF_RESOURCE_INSTANCE": "nova-evacuate", "HA_LOGFILE": str(tmp_path / "agent.log"),
            "OCF_RESKEY_CRM_meta_timeout": "20000", ATTRS_ENV: str(attrs), **LEGACY}
    os.makedirs(base["HA_RSCTMP"])
    yield base
    state = StateDir(base["HA_RSCTMP"], "NovaEvacuate", "nova-evacuate")
    pid = worker.worker_pid(state)
    if pid is not None:  # never leave a worker behind, whatever the test did
        os.killpg(pid, signal.SIGKILL)


def state_of(env) -> StateDir:
    return StateDir(env["HA_RSCTMP"], "NovaEvacuate", "nova-evacuate")


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_metadata_matches_the_golden_file():
    code, xml, _ = run(NovaEvacuate(), "meta-data", {})
    assert code == 0
    if os.environ.get("COMPUTEHA_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(xml)
    assert xml == GOLDEN.read_text(), "metadata changed: COMPUTEHA_UPDATE_GOLDEN=1 pytest ... rewrites it"
    for name in ("auth_url", "username", "password", "tenant_name", "user_domain", "project_domain",
                 "region_name", "endpoint_type", "insecure", "no_shared_storage", "evacuate_delay"):
        assert f'name="{name}"' in xml, name


def test_the_legacy_parameter_names_validate(env):
    code, _, err = run(NovaEvacuate(), "validate-all", env)
    assert code == 0, err


def test_missing_credentials_are_a_configuration_error(env):
    broken = {k: v for k, v in env.items() if k != "OCF_RESKEY_password"}
    code, _, err = run(NovaEvacuate(), "validate-all", broken)
    assert code == 6 and "password" in err
    assert run(NovaEvacuate(), "validate-all", env, OCF_RESKEY_max_parallel="0")[0] == 6


def test_start_monitor_stop_runs_one_worker_in_its_own_process_group(env):
    agent = FileAttrsNovaEvacuate()
    assert run(agent, "monitor", env)[0] == 7
    assert run(agent, "start", env)[0] == 0
    pid = worker.worker_pid(state_of(env))
    assert pid is not None and os.getpgid(pid) == pid and os.getsid(pid) == pid
    assert run(agent, "start", env)[0] == 0  # starting a started resource: the same worker
    assert worker.worker_pid(state_of(env)) == pid
    assert run(agent, "monitor", env, OCF_RESKEY_CRM_meta_interval="10000")[0] == 0
    # the password reached the worker through its environment, never its command line
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert LEGACY["OCF_RESKEY_password"] not in cmdline
    assert run(agent, "stop", env)[0] == 0
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") or worker._stat(pid)[0] == "Z", 5)
    assert run(agent, "monitor", env)[0] == 7
    assert run(agent, "stop", env)[0] == 0  # stopping a stopped resource


def test_the_worker_leaves_by_itself_when_the_resource_is_no_longer_active(env):
    agent = FileAttrsNovaEvacuate()
    assert run(agent, "start", env)[0] == 0
    pid = worker.worker_pid(state_of(env))
    state_of(env).remove(worker.ACTIVE)
    assert wait_for(lambda: worker.worker_pid(state_of(env)) is None, 10)
    assert pid is not None


def test_monitor_restarts_a_killed_worker_then_gives_up(env):
    agent = FileAttrsNovaEvacuate()
    assert run(agent, "start", env)[0] == 0
    for _ in range(RESTART_LIMIT):
        pid = worker.worker_pid(state_of(env))
        os.killpg(pid, signal.SIGKILL)
        assert wait_for(lambda: worker.worker_pid(state_of(env)) is None, 5)
        assert run(agent, "monitor", env, OCF_RESKEY_CRM_meta_interval="10000")[0] == 0
        new = worker.worker_pid(state_of(env))
        assert new is not None and new != pid
    os.killpg(worker.worker_pid(state_of(env)), signal.SIGKILL)
    assert wait_for(lambda: worker.worker_pid(state_of(env)) is None, 5)
    code, _, _ = run(agent, "monitor", env, OCF_RESKEY_CRM_meta_interval="10000")
    assert code == 1
    assert run(agent, "stop", env)[0] == 0


def test_a_second_worker_never_runs_beside_the_first(env):
    agent = FileAttrsNovaEvacuate()
    assert run(agent, "start", env)[0] == 0
    state = state_of(env)
    first = worker.worker_pid(state)
    code = f"import sys; sys.path[:0] = {[str(REPO)]!r}; from {agent.worker_module} import worker_main; worker_main()"
    # a second copy (e.g. a start racing a monitor) cannot take the lock and leaves at once
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, timeout=30)
    assert proc.returncode == 0
    assert worker.worker_pid(state) == first
    assert run(agent, "stop", env)[0] == 0


def test_idle_monitor_loads_no_openstack_library(env):
    assert run(FileAttrsNovaEvacuate(), "start", env)[0] == 0
    code = (
        "import sys, io\n"
        "from computeha.ocf_lib import ocf\n"
        "from computeha.agents.nova_evacuate import NovaEvacuate\n"
        "rc = ocf.run(NovaEvacuate(), ['NovaEvacuate', 'monitor'], dict(__import__('os').environ),"
        " stdout=io.StringIO(), stderr=io.StringIO())\n"
        "heavy = [m for m in ('keystoneauth1', 'novaclient', 'requests', 'yaml') if m in sys.modules]\n"
        "print(rc, heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60, cwd=str(REPO))
    assert proc.stdout.strip() == "0 []", proc.stderr
    assert run(FileAttrsNovaEvacuate(), "stop", env)[0] == 0


def test_worker_progress_file_roundtrip(env):
    """The restart bookkeeping survives damage: a garbled file counts as no restarts."""
    agent = FileAttrsNovaEvacuate()
    state = state_of(env)
    state.ensure()
    state.write_text(worker.ACTIVE, "1")
    state.write_text(worker.RESTARTS, "not json")
    assert run(agent, "monitor", env, OCF_RESKEY_CRM_meta_interval="10000")[0] == 0
    assert len(json.loads(state.read_text(worker.RESTARTS))) == 1
    assert run(agent, "stop", env)[0] == 0


def test_settings_take_every_default_from_the_parameter_table():
    from computeha.agents.evacuation_params import TABLE, Settings
    values, _ = TABLE.parse({})
    assert Settings.from_values(values) == Settings()
