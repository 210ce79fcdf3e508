"""fence_ipmi with the real tools: fence-agents' metadata.rng, stonith_admin --metadata / --validate.

stonith_admin only finds agents in /usr/sbin, so (as root only) the agent is
installed there with `make install` under a name no package uses, and removed
afterwards with `make uninstall`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.contract.conftest import make_install, need
from tests.integration.test_fence_ipmi import MODULE, install_fence_ipmi
from tests.tools import pkgtree

pytestmark = pytest.mark.tools

FENCE_RNG = "/usr/share/cluster/relaxng/metadata.rng"
TEST_NAME = "fence_computeha_ipmi_test"
ENV = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin", "LC_ALL": "C"}


def run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, env=ENV, **kwargs)


@pytest.fixture(scope="module")
def installed_metadata(tmp_path_factory: pytest.TempPathFactory) -> str:
    exe = install_fence_ipmi(tmp_path_factory.mktemp("fence-ipmi-tools"))
    proc = subprocess.run([str(exe)], input="action=metadata\n", capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def system_fence_ipmi() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("installing into /usr/sbin needs root")
    root = Path(tempfile.mkdtemp(prefix="computeha-fence-ipmi-"))
    os.chmod(root, 0o755)
    site = pkgtree.build(root / "site")
    variables = dict(PYTHON=sys.executable, OCF_AGENTS="", FENCE_AGENTS=f"{TEST_NAME}={MODULE}", SBINDIR="/usr/sbin")
    proc = make_install("install", site, **variables)
    assert proc.returncode == 0, proc.stderr
    try:
        yield TEST_NAME
    finally:
        make_install("uninstall", site, **variables)
        shutil.rmtree(root, ignore_errors=True)
    assert not os.path.exists(f"/usr/sbin/{TEST_NAME}")


def test_installed_metadata_validates_against_fence_agents_rng(installed_metadata: str) -> None:
    need("xmllint")
    proc = subprocess.run(["xmllint", "--noout", "--relaxng", FENCE_RNG, "-"], input=installed_metadata,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '<parameter name="ipaddr" unique="0" required="0" deprecated="1">' in installed_metadata


def test_rng_check_rejects_a_broken_document(installed_metadata: str) -> None:
    need("xmllint")
    broken = installed_metadata.replace('<content type="integer" default="623" />',
                                        '<content type="port" default="623" />')
    assert broken != installed_metadata
    proc = subprocess.run(["xmllint", "--noout", "--relaxng", FENCE_RNG, "-"], input=broken,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0


def test_stonith_admin_reads_the_metadata(system_fence_ipmi: str) -> None:
    need("stonith_admin")
    proc = run(["stonith_admin", "--metadata", "--agent", system_fence_ipmi])
    assert proc.returncode == 0, proc.stderr
    assert f'name="{system_fence_ipmi}"' in proc.stdout
    assert 'name="lanplus"' in proc.stdout and 'name="passwd"' in proc.stdout


def test_stonith_admin_validate_accepts_good_and_rejects_bad_options(system_fence_ipmi: str) -> None:
    need("stonith_admin")
    base = ["stonith_admin", "--validate", "--agent", system_fence_ipmi]
    good = run(base + ["--option", "ipaddr=192.0.2.10", "--option", "login=admin", "--option", "passwd=pw",
                       "--option", "lanplus=1", "--option", "cipher=3", "--option", "pcmk_host_list=compute-1"])
    assert good.returncode == 0, good.stdout + good.stderr
    bad = run(base + ["--option", "login=admin", "--option", "cipher=4", "--option", "privlvl=root"])
    assert bad.returncode != 0
    output = bad.stdout + bad.stderr
    assert "cipher" in output and "privlvl" in output, output
