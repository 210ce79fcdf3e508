"""The installed NovaCompute under the real tools: ocf-tester, with the rig's nova-compute as its child.

The agent is installed with `make install DESTDIR=...` (system python3, as in
production) and ocf-tester drives it through meta-data (as nobody),
validate-all, probe, start, start again, monitor, stop, stop again, and
unsupported actions. Outside a cluster the record cannot be read; with no
fence evidence in Nova the agent starts nova-compute anyway (and says so).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.contract.conftest import make_install, need
from tests.tools import pkgtree

pytestmark = [pytest.mark.integration, pytest.mark.openstack, pytest.mark.tools]

ENV = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin", "LC_ALL": "C"}


@pytest.fixture(scope="module")
def installed_agent():
    # ocf-tester runs meta-data as nobody: the whole tree must be reachable (pytest's tmp is 0700)
    root = Path(tempfile.mkdtemp(prefix="computeha-novacompute-"))
    os.chmod(root, 0o755)
    site = pkgtree.build(root / "site")
    dest = root / "dest"
    proc = make_install("install", site, DESTDIR=str(dest), OCF_ROOT="/ocf", SBINDIR="/sbin",
                        PROVIDER="computeha", OCF_AGENTS="NovaCompute=computeha.agents.nova_compute",
                        FENCE_AGENTS="")
    assert proc.returncode == 0, proc.stderr
    for folder, _dirs, _files in os.walk(root):
        os.chmod(folder, 0o755)
    agent = dest / "ocf" / "resource.d" / "computeha" / "NovaCompute"
    assert agent.exists()
    yield agent
    shutil.rmtree(root, ignore_errors=True)


def test_ocf_tester_passes_with_the_rigs_nova_compute(openstack_rig, installed_agent: Path, tmp_path: Path) -> None:
    need("ocf-tester", "xmllint")
    rig = openstack_rig
    host = rig.compute_hosts[-1]
    rig.restore_computes()
    rig.kill_compute(host)
    cmd = rig.compute_command(host)
    rsctmp = tmp_path / "rsctmp"
    rsctmp.mkdir()
    options = {
        "nova_compute_command": shlex.join(cmd.argv),
        "nova_compute_env": shlex.join(f"{k}={v}" for k, v in sorted(cmd.env.items())),
        "user": "root" if os.getuid() == 0 else os.environ.get("USER", ""),
        "output_file": str(rig.logs / f"ocf-tester-nova-compute-{host}.out"),
        "cloud": rig.cloud_name,
        "clouds_yaml": str(rig.clouds_yaml),
        "stop_grace": "30",
        # ocf-tester exports a 20 s timeout; a real nova-compute needs longer to start and heartbeat
        # on a busy 2-core CI machine. Pacemaker gives the advertised 600 s.
        "CRM_meta_timeout": "300000",
    }
    args = ["ocf-tester", "-n", "nc-tester"]
    for key, value in options.items():
        args += ["-o", f"{key}={value}"]
    try:
        proc = subprocess.run(args + [str(installed_agent)], capture_output=True, text=True, timeout=900,
                              env={**ENV, "HA_RSCTMP": str(rsctmp)})
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output
        assert "passed all tests" in output, output
        # it really ran nova-compute: Nova saw the host come up and the stop left it down
        svc = rig.compute_service(host)
        assert svc.status == "enabled" and not svc.forced_down
    finally:
        subprocess.run([str(installed_agent), "stop"], env={**ENV, "HA_RSCTMP": str(rsctmp),
                       "OCF_RESOURCE_INSTANCE": "nc-tester", **{f"OCF_RESKEY_{k}": v for k, v in options.items()}},
                       capture_output=True, timeout=120)
        rig.restore_computes()


def test_ocf_tester_fails_when_the_host_name_is_wrong(openstack_rig, installed_agent: Path, tmp_path: Path) -> None:
    """The check above can fail: a host Nova does not know makes validation and start fail."""
    need("ocf-tester")
    rig = openstack_rig
    args = ["ocf-tester", "-n", "nc-tester-bad", "-o", "host=no-such-host", "-o", "user=root",
            "-o", "nova_compute_command=/bin/true", "-o", f"cloud={rig.cloud_name}",
            "-o", f"clouds_yaml={rig.clouds_yaml}", str(installed_agent)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**ENV, "HA_RSCTMP": str(tmp_path)})
    assert proc.returncode != 0
    assert "no-such-host" in proc.stdout + proc.stderr
