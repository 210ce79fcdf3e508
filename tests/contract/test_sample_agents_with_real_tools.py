"""The protocol layer checked by the real tools: xmllint schemas, ocf-tester, crm_resource, stonith_admin."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.contract.conftest import Installed, need

pytestmark = pytest.mark.tools

DTD_DIR = "/usr/share/resource-agents"
RA_RNG = "/usr/share/resource-agents/metadata.rng"
PCS_OCF_RNG = "/usr/share/pcs/data/ocf-1.1.rng"
FENCE_RNG = "/usr/share/cluster/relaxng/metadata.rng"
ENV = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin", "LC_ALL": "C"}


def run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120,
                          env=kwargs.pop("env", ENV), **kwargs)


def xmllint(document: str, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["xmllint", "--noout", *args, "-"], input=document, capture_output=True,
                          text=True, timeout=60, cwd=cwd)


@pytest.fixture(scope="module")
def ocf_xml(installed: Installed) -> str:
    proc = run([installed.ocf_agent, "meta-data"], env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and proc.stderr == ""
    return proc.stdout


@pytest.fixture(scope="module")
def fence_xml(installed: Installed) -> str:
    proc = run([installed.fence_agent], input="action=metadata\n", env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_ocf_metadata_is_valid_against_dtd_and_both_rngs(ocf_xml: str) -> None:
    need("xmllint")
    assert '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">' in ocf_xml
    for args, cwd in ((("--valid",), DTD_DIR), (("--relaxng", RA_RNG), None), (("--relaxng", PCS_OCF_RNG), None)):
        proc = xmllint(ocf_xml, *args, cwd=cwd)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"


def test_schema_check_rejects_a_broken_document(ocf_xml: str) -> None:
    """The validation above can fail: a select content type is outside the DTD."""
    need("xmllint")
    broken = ocf_xml.replace('type="integer"', 'type="select"', 1)
    assert xmllint(broken, "--valid", cwd=DTD_DIR).returncode != 0


def test_fence_metadata_is_valid_against_fence_agents_rng(fence_xml: str) -> None:
    need("xmllint")
    proc = xmllint(fence_xml, "--relaxng", FENCE_RNG)
    assert proc.returncode == 0, proc.stderr
    assert '<parameter name="port" unique="0" required="0" deprecated="1">' in fence_xml
    assert 'obsoletes="port"' in fence_xml


def test_ocf_tester_passes_on_the_sample_agent(installed: Installed, tmp_path: Path) -> None:
    need("ocf-tester", "xmllint")
    rsctmp = tmp_path / "rsctmp"
    rsctmp.mkdir()
    env = {**ENV, "HA_RSCTMP": str(rsctmp)}
    proc = run(["ocf-tester", "-n", "sample1", "-o", "label=x", "-o", "count=4", installed.ocf_agent], env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "passed all tests" in output, output


def test_ocf_tester_notices_a_configuration_the_agent_rejects(installed: Installed, tmp_path: Path) -> None:
    need("ocf-tester")
    env = {**ENV, "HA_RSCTMP": str(tmp_path)}
    proc = run(["ocf-tester", "-n", "sample1", "-o", "count=400", installed.ocf_agent], env=env)
    assert proc.returncode != 0


def test_crm_resource_reads_metadata_and_validates(system_installed: Installed) -> None:
    need("crm_resource")
    agent = f"ocf:{system_installed.provider}:ComputehaSample"
    proc = run(["crm_resource", "--show-metadata", agent])
    assert proc.returncode == 0, proc.stderr
    assert "<resource-agent" in proc.stdout and 'name="count"' in proc.stdout
    base = ["crm_resource", "--validate", "--class", "ocf", "--provider", system_installed.provider,
            "--agent", "ComputehaSample"]
    good = run(base + ["--option", "count=4", "--option", "flag=yes"])
    assert good.returncode == 0, good.stdout + good.stderr
    bad = run(base + ["--option", "count=40", "--option", "flag=maybe", "--output-as=xml"])
    assert bad.returncode != 0
    # both problems are reported, not just the first
    assert "count" in bad.stdout and "flag" in bad.stdout, bad.stdout


def test_stonith_admin_reads_metadata_and_validates(system_installed: Installed, tmp_path: Path) -> None:
    need("stonith_admin")
    proc = run(["stonith_admin", "--metadata", "--agent", "fence_computeha_sample"])
    assert proc.returncode == 0, proc.stderr
    assert 'name="fence_computeha_sample"' in proc.stdout
    good = run(["stonith_admin", "--validate", "--agent", "fence_computeha_sample",
                "--option", f"state_dir={tmp_path}", "--option", "plug=node1"])
    assert good.returncode == 0, good.stdout + good.stderr
    bad = run(["stonith_admin", "--validate", "--agent", "fence_computeha_sample",
               "--option", "plug=node1", "--option", "insecure=perhaps"])
    assert bad.returncode != 0
    assert "state_dir" in bad.stdout + bad.stderr


def test_fence_agent_delay_is_honoured_for_off_only(installed: Installed, tmp_path: Path) -> None:
    import time
    started = time.monotonic()
    proc = run([installed.fence_agent], input=f"action=status\nplug=n1\nstate_dir={tmp_path}\ndelay=2\n")
    assert proc.returncode == 0 and "Status: ON" in proc.stdout
    assert time.monotonic() - started < 2
    started = time.monotonic()
    proc = run([installed.fence_agent], input=f"action=off\nplug=n1\nstate_dir={tmp_path}\ndelay=2\n")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 2
    assert (tmp_path / "n1").read_text() == "off"


def test_make_uninstall_removes_exactly_what_install_wrote(site_tree: Path, tmp_path: Path) -> None:
    from tests.contract.conftest import make_install
    dest = tmp_path / "dest"
    foreign = dest / "sbin" / "unrelated_tool"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("#!/bin/sh\n")
    variables = dict(DESTDIR=str(dest), OCF_ROOT="/ocf", SBINDIR="/sbin")
    assert make_install("install", site_tree, **variables).returncode == 0
    installed_files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert installed_files == ["ocf/resource.d/computeha/ComputehaSample", "sbin/fence_computeha_sample",
                               "sbin/unrelated_tool"]
    for name in installed_files[:2]:
        assert (dest / name).stat().st_mode & 0o777 == 0o755
        assert (dest / name).read_text().splitlines()[0].endswith(" -I")
    assert make_install("uninstall", site_tree, **variables).returncode == 0
    left = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert left == ["sbin/unrelated_tool"]


def test_make_install_refuses_to_overwrite_a_packaged_fence_agent(site_tree: Path, tmp_path: Path) -> None:
    from tests.contract.conftest import make_install
    dest = tmp_path / "dest"
    packaged = dest / "sbin" / "fence_computeha_sample"
    packaged.parent.mkdir(parents=True)
    packaged.write_text("#!/bin/sh\necho packaged\n")
    variables = dict(DESTDIR=str(dest), OCF_ROOT="/ocf", SBINDIR="/sbin")
    proc = make_install("install", site_tree, **variables)
    assert proc.returncode != 0
    assert "REPLACE=1" in proc.stderr and "FENCE_COMPUTE_NAME" in proc.stderr
    assert packaged.read_text() == "#!/bin/sh\necho packaged\n"
    assert not (dest / "ocf").exists(), "nothing may be written when one target is refused"
    proc = make_install("install", site_tree, REPLACE="1", **variables)
    assert proc.returncode == 0, proc.stderr
    assert "computeha agent wrapper" in packaged.read_text()
    assert make_install("uninstall", site_tree, **variables).returncode == 0
    assert packaged.read_text() == "#!/bin/sh\necho packaged\n", "uninstall restores the replaced original"
