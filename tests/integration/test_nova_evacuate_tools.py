"""NovaEvacuate installed with `make install` and checked by the real tools: ocf-tester, xmllint.

ocf-tester runs start/monitor/stop (twice, and on a stopped resource) on the
installed wrapper with the system python; the worker it starts is a real
process. Nova is not needed for that: Keystone is contacted only by the worker,
and only once a host is flagged.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.contract.conftest import SYSTEM_PYTHON, need
from tests.tools import pkgtree

pytestmark = pytest.mark.tools

REPO = pkgtree.REPO
ENV = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin", "LC_ALL": "C"}
DTD_DIR = "/usr/share/resource-agents"


@pytest.fixture(scope="module")
def installed_agent():
    root = Path(tempfile.mkdtemp(prefix="computeha-evacuate-"))
    os.chmod(root, 0o755)
    site = pkgtree.build(root / "site")
    dest = root / "destdir"
    proc = subprocess.run(["make", "-s", "-C", str(REPO), "install", f"PYTHON={SYSTEM_PYTHON}", f"SYS_PATH={site}",
                           "OCF_AGENTS=NovaEvacuate=computeha.agents.nova_evacuate", "FENCE_AGENTS=",
                           f"DESTDIR={dest}", "OCF_ROOT=/ocf", "SBINDIR=/sbin", "PROVIDER=computeha"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"{SYSTEM_PYTHON} lacks a dependency of the agent: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    for folder, _dirs, _files in os.walk(root):
        os.chmod(folder, 0o755)
    yield dest / "ocf" / "resource.d" / "computeha" / "NovaEvacuate"
    shutil.rmtree(root, ignore_errors=True)


def test_metadata_is_valid_against_the_dtd(installed_agent):
    need("xmllint")
    xml = subprocess.run([str(installed_agent), "meta-data"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    proc = subprocess.run(["xmllint", "--noout", "--valid", "-"], input=xml, capture_output=True, text=True,
                          timeout=60, cwd=DTD_DIR)
    assert proc.returncode == 0, proc.stderr


def test_ocf_tester_passes(installed_agent, tmp_path):
    need("ocf-tester", "xmllint")
    rsctmp = tmp_path / "rsctmp"
    rsctmp.mkdir()
    os.chmod(tmp_path, 0o755)
    env = {**ENV, "HA_RSCTMP": str(rsctmp)}
    args = ["ocf-tester", "-n", "nova-evacuate-test",
            "-o", "auth_url=http://127.0.0.1:9/v3", "-o", "username=admin", "-o", "password=not-used-here",
            "-o", "tenant_name=admin", "-o", "no_shared_storage=0", "-o", "evacuate_delay=0",
            str(installed_agent)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "passed all tests" in output, output
    # and nothing is left running: every worker ocf-tester caused was stopped
    leftovers = subprocess.run(["pgrep", "-f", "computeha.agents.evacuation_worker"], capture_output=True,
                               text=True).stdout.split()
    assert [p for p in leftovers if str(rsctmp) in _environ(p)] == []


def _environ(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_records_through_the_real_cib_tools(tmp_path):
    """The production record store (cibadmin + crm_attribute) on a CIB file: the engine reads every
    node's record in one query, claims and finishes through crm_attribute."""
    need("cibadmin", "crm_attribute")
    import logging

    from computeha.agents.evacuation_engine import Engine
    from computeha.agents.evacuation_params import Settings
    from computeha.agents.evacuation_store import CibRecords, ProgressStore
    from computeha.ocf_lib import evacuation_record as er
    from computeha.ocf_lib.runner import Runner
    from computeha.ocf_lib.state import StateDir
    from tests.unit.evacuation_fakes import MiniNova

    cib = tmp_path / "cib.xml"
    cib.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True, env=ENV,
                                  timeout=30, check=True).stdout)
    env = {**ENV, "CIB_file": str(cib)}
    for node in ('<node id="1" uname="ctl-1"/>', '<node id="compute-0" uname="compute-0" type="remote"/>',
                 '<node id="compute-1" uname="compute-1" type="remote"/>'):
        subprocess.run(["cibadmin", "--create", "-o", "nodes", "-X", node], env=env, timeout=30, check=True)
    records = CibRecords(Runner(env))
    assert records.get_all(er.ATTRIBUTE) == {}
    records.set("compute-0", er.ATTRIBUTE, er.new(er.REQUESTED, "fence_compute").format())
    records.set("compute-1", er.ATTRIBUTE, "done;1;2/2")
    assert set(records.get_all(er.ATTRIBUTE)) == {"compute-0", "compute-1"}

    nova = MiniNova()
    ids = [nova.add_server("compute-0").id for _ in range(3)]
    nova.fence("compute-0")
    s = Settings(poll_interval=0.1, confirm_interval=0.02, mass_failure_share=0)
    engine = Engine(nova, records, s, ProgressStore(StateDir(str(tmp_path), "NovaEvacuate", "cib")),
                    logging.getLogger("test-evacuation"), "ctl-1")
    try:
        assert engine.run_until_idle(30)
    finally:
        engine.close()
    assert all(nova.evacuations.get(i) == 1 for i in ids)
    final = er.parse(records.get("compute-0", er.ATTRIBUTE))
    assert final.state == er.DONE and final.detail == "3/3"
    assert records.get("compute-1", er.ATTRIBUTE) == "done;1;2/2"  # other nodes untouched
