"""The secret scanner can fail: it finds planted secrets in a child's argv, its environment, a log
file and an output text, and finds nothing in clean ones; the plugin fails a session with a leak.

Planted secrets go into a private Registry only, never the session's, so that the real scan of
this very session stays clean.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.tools import secret_scan

REPO = Path(__file__).resolve().parents[2]


def _planted() -> str:
    return "planted-" + secrets.token_hex(8)


def _registry(*values: str) -> secret_scan.Registry:
    reg = secret_scan.Registry()
    for value in values:
        assert reg.register(value, "planted")
    return reg


def _child(argv, env=None) -> subprocess.Popen:
    """A child that lives until its stdin closes (no fixed sleep)."""
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)


def _sample_until(scanner: secret_scan.Scanner, proc: subprocess.Popen, want) -> list:
    deadline = time.monotonic() + 10
    while True:
        scanner.sample_processes([os.getpid()])
        hits = want(scanner.hits())
        if hits or time.monotonic() > deadline:
            return hits
        time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(timeout=10)


CAT = ["cat"]


def test_secret_in_child_argv_is_found() -> None:
    secret = _planted()
    scanner = secret_scan.Scanner(_registry(secret))
    proc = _child([sys.executable, "-c", "import sys; sys.stdin.read()", "--password=" + secret])
    try:
        hits = _sample_until(scanner, proc, lambda hs: [h for h in hs if f"argv of pid {proc.pid}" in h.where])
    finally:
        _stop(proc)
    assert hits, scanner.summary()
    assert hits[0].label == "planted"
    assert secret not in str(hits[0]) and secret_scan.MASK in hits[0].context


def test_secret_in_child_environment_is_found() -> None:
    secret = _planted()
    scanner = secret_scan.Scanner(_registry(secret))
    env = dict(os.environ, OS_PASSWORD=secret)
    proc = _child(CAT, env=env)
    try:
        hits = _sample_until(scanner, proc, lambda hs: [h for h in hs if f"environment of pid {proc.pid}" in h.where])
    finally:
        _stop(proc)
    assert hits, scanner.summary()
    assert "OS_PASSWORD=" + secret_scan.MASK in hits[0].context


def test_grandchild_is_sampled() -> None:
    """Descendants, not only direct children: the agent's own children are scanned too."""
    secret = _planted()
    scanner = secret_scan.Scanner(_registry(secret))
    code = ("import subprocess, sys; p = subprocess.Popen(['cat', '-', '/dev/null'], stdin=sys.stdin, "
            "env={'TOKEN': sys.argv[1] + sys.argv[2]}); p.wait()")
    proc = _child([sys.executable, "-c", code, secret[:4], secret[4:]])  # whole only in the grandchild
    try:
        hits = _sample_until(scanner, proc, lambda hs: [h for h in hs if "(cat)" in h.where])
    finally:
        _stop(proc)
    assert hits, scanner.summary()


def test_clean_children_give_no_hits() -> None:
    secret = _planted()
    scanner = secret_scan.Scanner(_registry(secret))
    proc = _child([sys.executable, "-c", "import sys; sys.stdin.read()", "--password-file=/nonexistent"])
    try:
        scanner.sample_processes([os.getpid()])
        seen = {key[0] for key in scanner.processes}
    finally:
        _stop(proc)
    assert proc.pid in seen  # it was looked at ...
    assert scanner.hits() == []  # ... and is clean


def test_record_child_checks_argv_and_the_environment_handed_over() -> None:
    secret = _planted()
    scanner = secret_scan.Scanner(_registry(secret))
    scanner.record_child(["ipmitool", "-P", secret], {"PATH": "/bin"}, "subprocess")
    scanner.record_child(["stonith_admin"], {"PASSWORD": secret}, "subprocess")
    scanner.record_child(["stonith_admin", "--list"], {"PATH": "/bin"}, "subprocess")
    wheres = sorted(h.where for h in scanner.hits())
    assert wheres == ["argv of child ipmitool (subprocess)", "environment handed to child stonith_admin (subprocess)"]


def test_ocf_protocol_input_of_an_agent_is_exempt_but_not_what_it_hands_on(tmp_path: Path) -> None:
    """Pacemaker gives an OCF agent its password as OCF_RESKEY_password: not a leak. The agent's
    own child inheriting it is one."""
    secret = _planted()
    scanner = secret_scan.Scanner(_registry(secret))
    agent = tmp_path / "resource.d" / "test" / "Leaky"
    agent.parent.mkdir(parents=True)
    agent.write_text(f"#!{sys.executable}\nimport subprocess, sys\nsubprocess.Popen(['cat'], stdin=sys.stdin).wait()\n")
    agent.chmod(0o755)
    env = dict(os.environ, OCF_ROOT="/usr/lib/ocf", OCF_RESOURCE_INSTANCE="r1", OCF_RESKEY_password=secret)
    proc = _child([str(agent), "monitor"], env=env)
    try:
        hits = _sample_until(scanner, proc, lambda hs: [h for h in hs if "(cat)" in h.where])
        agent_hits = [h for h in scanner.hits() if f"pid {proc.pid} " in h.where]
    finally:
        _stop(proc)
    assert hits, scanner.summary()  # the agent's child got the password in its environment
    assert agent_hits == []  # the agent itself received it the OCF way
    assert scanner.ocf_exempt >= 1


def test_ocf_exemption_covers_only_the_ocf_reskey_variables() -> None:
    secret = _planted()
    scanner = secret_scan.Scanner(_registry(secret))
    ocf_env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "r1", "OCF_RESKEY_password": secret}
    scanner.record_child(["/usr/lib/ocf/resource.d/computeha/NovaEvacuate", "start"], ocf_env, "subprocess")
    assert scanner.hits() == []
    scanner.record_child(["/usr/lib/ocf/resource.d/computeha/NovaEvacuate", "start"],
                         dict(ocf_env, OS_PASSWORD=secret), "subprocess")
    scanner.record_child(["systemctl", "stop", "nova"], ocf_env, "subprocess")  # not an OCF agent
    scanner.record_child(["service", "nova-compute", "stop"], ocf_env, "subprocess")  # not one either
    wheres = sorted(h.where for h in scanner.hits())
    assert wheres == ["environment handed to child NovaEvacuate (subprocess)",
                      "environment handed to child service (subprocess)",
                      "environment handed to child systemctl (subprocess)"]


def test_log_files_are_scanned_incrementally(tmp_path: Path) -> None:
    secret = _planted()
    scanner = secret_scan.Scanner(_registry(secret))
    clean, dirty = tmp_path / "clean.log", tmp_path / "logs" / "agent.out"
    dirty.parent.mkdir()
    clean.write_text("fence_ipmi: Failed: authentication failed\n" * 100)
    dirty.write_text("starting\n")
    for path in (clean, dirty):
        scanner.scan_file(path)
    assert scanner.hits() == []
    with open(dirty, "a") as handle:  # leaked later in the session
        handle.write(f"connecting with password {secret}\n")
    scanner.scan_file(dirty)
    hits = scanner.hits()
    assert [h.where for h in hits] == [f"file {dirty}"]
    assert "password " + secret_scan.MASK in hits[0].context
    assert len(scanner.files) == 2


def test_which_files_count_as_logs(tmp_path: Path) -> None:
    rig, tmp = tmp_path / "rig", tmp_path / "tmp"
    wanted = [rig / "logs" / "nova-api.log", rig / "nodes" / "c0" / "log" / "pacemaker.log", rig / "mariadb.err",
              rig / "nodes" / "c0" / "var-log-pacemaker" / "corosync", tmp / "t0" / "fence.debug",
              tmp / "t0" / "stderr.txt", tmp / "t1" / "run.out"]
    unwanted = [rig / "etc" / "nova" / "nova.conf", rig / "clouds.yaml", rig / "secrets" / "bmc-password",
                rig / "venv" / "logs" / "x.log", tmp / "t0" / "password", tmp / "t0" / "lan.conf"]
    for path in wanted + unwanted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert sorted(secret_scan.log_files([rig], [tmp])) == sorted(wanted)


def test_a_secret_registered_late_is_found_in_earlier_texts() -> None:
    secret = _planted()
    registry = secret_scan.Registry()
    scanner = secret_scan.Scanner(registry)
    scanner.check_text(f"Failed: login as admin/{secret} refused", "fence_compute stderr")
    assert scanner.hits() == []
    registry.register(secret, "cloud admin password")
    assert [h.label for h in scanner.hits()] == ["cloud admin password"]


def test_percent_encoded_secret_is_found() -> None:
    secret = "pa ss/w@rd:" + secrets.token_hex(4)
    scanner = secret_scan.Scanner(_registry(secret))
    from urllib.parse import quote
    scanner.check_text("rabbit://computeha:" + quote(secret, safe="") + "@127.0.0.1:5672/", "argv")
    assert len(scanner.hits()) == 1


def test_short_values_are_not_secrets() -> None:
    registry = secret_scan.Registry()
    assert not registry.register("abc")
    assert not registry.register("")
    assert registry.register("abcdef")


def test_rig_credential_files_are_read(tmp_path: Path) -> None:
    os_rig, cluster, bmc_tmp = tmp_path / "openstack", tmp_path / "cluster", tmp_path / "pytest" / "bmc0"
    (os_rig / "etc" / "nova").mkdir(parents=True)
    (os_rig / "rabbit").mkdir()
    (cluster / "secrets").mkdir(parents=True)
    bmc_tmp.mkdir(parents=True)
    (os_rig / "clouds.yaml").write_text(json.dumps(
        {"clouds": {"admin": {"auth": {"auth_url": "http://127.0.0.1:5000/v3", "password": "admin-pw-1"}}}}))
    (os_rig / "etc" / "nova" / "nova.conf").write_text(
        "[database]\nconnection = mysql+pymysql://computeha:db-pw-22@127.0.0.1:3306/nova\n"
        "[keystone_authtoken]\npassword = svc-pw-333\nusername = nova\n")
    (os_rig / "rabbit" / "rabbitmq.conf").write_text("default_user = computeha\ndefault_pass = rabbit-pw-4\n")
    (cluster / "secrets" / "bmc-password").write_text("bmc-pw-55555\n")
    (cluster / "secrets" / "bmc-password.sh").write_text("#!/bin/sh\ncat /x/bmc-password\n")
    (bmc_tmp / "password").write_text("ipmi-pw-666\n")
    found = dict(secret_scan.credential_files([os_rig, cluster], [tmp_path / "pytest"]))
    assert set(found) == {"admin-pw-1", "db-pw-22", "svc-pw-333", "rabbit-pw-4", "bmc-pw-55555", "ipmi-pw-666"}


def test_rig_pids_and_descendants(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    proc = _child(CAT)
    try:
        (tmp_path / "run" / "svc.pid").write_text(f"{proc.pid} 12345\n")
        pids = secret_scan.rig_pids([tmp_path])
        assert pids == {proc.pid}
        table = secret_scan.process_table()
        assert proc.pid in secret_scan.descendants([os.getpid()], table)
        assert os.getppid() not in secret_scan.descendants([os.getpid()], table)
    finally:
        _stop(proc)


PLUGIN_TEST = """
    import subprocess, sys
    from tests.tools import secret_scan

    SECRET = {secret!r}

    def test_configures_a_password():
        secret_scan.register(SECRET, "test password")
        argv = {argv}
        subprocess.run(argv, check=True)
"""


@pytest.mark.parametrize("leak", [True, False])
def test_plugin_fails_a_session_that_leaks(tmp_path: Path, leak: bool) -> None:
    """A whole pytest session with the plugin: a child with the password on its command line
    fails the session and is listed masked; without the leak the session passes."""
    secret = _planted()
    argv = ["true", "--password", secret] if leak else ["true", "--password-file", "/dev/null"]
    test_file = tmp_path / "test_leak.py"
    test_file.write_text(textwrap.dedent(PLUGIN_TEST.format(secret=secret, argv=argv)))
    env = dict(os.environ, PYTHONPATH=str(REPO), COMPUTEHA_SECRET_SCAN="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.tools.secret_scan_plugin",
         "--rootdir", str(tmp_path), "-c", os.devnull, "--basetemp", str(tmp_path / "bt"), str(test_file)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert "1 passed" in out, out
    summary = [line for line in out.splitlines() if line.startswith("secret scan:") and "processes" in line]
    assert summary, out
    assert secret not in out  # the report itself never shows the secret
    if leak:
        assert result.returncode == 1, out
        assert "secret 'test password' found in argv of child true (subprocess)" in out, out
        assert " 0 hits" not in summary[-1], out
    else:
        assert result.returncode == 0, out
        assert " 0 hits" in summary[-1], out
