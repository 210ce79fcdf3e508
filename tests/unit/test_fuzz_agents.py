"""Property-based fuzzing of every agent's inputs: OCF environments, fence stdin and fence argv.

Every agent listed in tests/tools/agents.py that exists in the checkout, plus the two sample
agents, is run in-process (ocf.run / fence.run with StringIO streams) on generated inputs.
Properties of every run:

- the run returns; no exception escapes and no "Traceback" is printed;
- the library's last-resort handler is never reached ("internal error": an agent or library bug);
- the exit code is documented: OCF 0-7 and 190; fence 0, 1, 2 (2 only for status);
- OCF errors of the core actions carry an `ocf-exit-reason:` line, and every such line is one line;
  fence errors print a reason on stderr (unless quiet);
- no secret (canary passwords, tokens, K_g keys) appears in stdout, stderr or the log files;
- a start with an invalid parameter never succeeds; meta-data is XML.

Isolation: the agents get a Runner that refuses every program (so password_script, crm_attribute,
service commands fail fast, as on a node without them), and an audit hook refuses, for the
fuzzing thread only, any other child process, every DNS lookup of a name and every connection
(as an unreachable loopback endpoint would). stdout/stderr of the process are captured too.
Inputs that would reach a real device or cloud (fence on/off/status..., OCF start) are made to
stop before it: a common parameter is made invalid, or fence_compute gets record_only=2.
HA_RSCTMP, HA_LOGFILE and every file-like parameter point into the test's tmp folder.

The total of generated inputs is counted and asserted (>= 10,000) by the last test.
Bugs found here get a focused reproducer below: xfail(strict=True) while open, a plain
regression test once fixed; fuzz_strategies.avoid_known_issues defuses only the open ones.
"""
from __future__ import annotations

import io
import ipaddress
import os
import socket
import sys
import threading
from collections import Counter
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from computeha.ocf_lib import fence, ocf
from computeha.ocf_lib import log as ocflog
from computeha.ocf_lib.runner import RunError, Runner
from tests.contract import sample_agents
from tests.tools import agents as agent_list
from tests.tools import secret_scan
from tests.unit import fuzz_strategies as fz

OCF_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 190}
FENCE_CODES = {0, 1, 2}
CORE_ACTIONS = {"start", "stop", "monitor", "validate-all"}
MIN_TOTAL = 10_000


secret_scan.register(fz.CANARY_CORE, "fuzz canary password")

COUNTS: Counter = Counter()


def _ocf_agents() -> List[ocf.OcfAgent]:
    found = [agent_list.load(ref) for ref in agent_list.AGENTS if ref.protocol == "ocf"]
    return [a for a in found if a is not None] + [sample_agents.SampleOcf()]


def _fence_agents() -> List[fence.FenceAgent]:
    found = [agent_list.load(ref) for ref in agent_list.AGENTS if ref.protocol == "fence"]
    return [a for a in found if a is not None] + [sample_agents.SampleFence()]


OCF_AGENTS = _ocf_agents()
FENCE_AGENTS = _fence_agents()

# Generated inputs in total, shared out among the agents present (so the total holds however many
# agents exist), sized so that the file stays well under 90 s on 2 busy cores.
# COMPUTEHA_FUZZ_SCALE multiplies it: 0.1 for a quick look, 10 for a long hunt.
TARGET = 11_000
_SCALE = float(os.environ.get("COMPUTEHA_FUZZ_SCALE", "1") or 1)
_SHARE = {"ocf": 0.44, "stdin": 0.30, "argv": 0.26}
EXAMPLES = {form: max(1, -(-int(TARGET * _SCALE * share) // len(OCF_AGENTS if form == "ocf" else FENCE_AGENTS)))
            for form, share in _SHARE.items()}


# --- sandbox ----------------------------------------------------------------------------

class _Sandbox:
    owner: Optional[int] = None
    refused: Counter = Counter()


_SPAWN_EVENTS = {"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.fork",
                 "os.forkpty"}


def _loopback(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple) -> None:
    if _Sandbox.owner is None or _Sandbox.owner != threading.get_ident():
        return
    if event in _SPAWN_EVENTS:
        _Sandbox.refused["spawn"] += 1
        raise PermissionError(1, "fuzz sandbox: no programs are run")
    if event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if host is not None and not _is_ip(str(host)):
            _Sandbox.refused["dns"] += 1
            raise socket.gaierror(socket.EAI_NONAME, "fuzz sandbox: no name lookups")
    elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[1] if len(args) > 1 else None
        host = address[0] if isinstance(address, tuple) and address else address
        _Sandbox.refused["loopback" if _loopback(host) else "remote"] += 1
        raise ConnectionRefusedError(111, "fuzz sandbox: connection refused")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%")[0])
        return True
    except ValueError:
        return False


class SandboxRunner(Runner):
    """The agents' Runner, refusing every program before it starts (as on a node without it).
    (What a real run hands its children is checked by
    test_agent_children_do_not_inherit_secret_parameters.)"""

    def run(self, argv, timeout, stdin=None, extra_env=None):  # type: ignore[override]
        _Sandbox.refused["program"] += 1
        raise RunError(f"cannot run {os.path.basename(str(argv[0])) if argv else '?'}: fuzz sandbox")


if not getattr(sys, "_computeha_fuzz_audit", False):
    sys.addaudithook(_audit)
    sys._computeha_fuzz_audit = True  # type: ignore[attr-defined]


@contextmanager
def sandbox() -> Iterator[None]:
    _Sandbox.owner = threading.get_ident()
    try:
        yield
    finally:
        _Sandbox.owner = None


@pytest.fixture
def fuzz_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                 "OS_CLIENT_CONFIG_FILE", "OS_CLOUD"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "rsctmp").mkdir()
    (tmp_path / "empty-bin").mkdir()
    (tmp_path / "existing.conf").write_text("[DEFAULT]\nhost = compute-fuzz\n")
    (tmp_path / "empty").write_text("")
    (tmp_path / "power").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nova-compute").write_text("#!/bin/sh\nexit 0\n")  # found by which(), never run
    (tmp_path / "bin" / "nova-compute").chmod(0o755)
    return tmp_path


def _settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def _logs_clean(tmp: Path) -> None:
    """Log and debug files the runs wrote never hold a canary."""
    for path in tmp.rglob("*"):
        if path.is_file() and path.suffix in (".log", ""):
            data = path.read_bytes()
            assert fz.CANARY_CORE.encode() not in data, f"secret in {path}"


# --- OCF --------------------------------------------------------------------------------

def check_ocf(argv: List[str], env: Dict[str, str], forced: bool, code: object, out: str, err: str) -> None:
    action = argv[1] if len(argv) > 1 else ""
    both = out + err
    assert isinstance(code, int) and code in OCF_CODES, code
    assert "Traceback" not in both
    assert "internal error" not in err, err
    assert fz.CANARY_CORE not in both, "a secret was printed"
    reasons = [line for line in err.split("\n") if line.startswith("ocf-exit-reason:")]
    for line in reasons:
        assert len(line.splitlines()) == 1 and line[len("ocf-exit-reason:"):].strip(), repr(line)
    if code not in (0, 7) and action in CORE_ACTIONS:
        assert reasons, f"exit {code} without ocf-exit-reason: {err!r}"
    if forced:
        assert code != 0, "start succeeded with an invalid parameter"
    if action == "meta-data":
        assert code == 0 and etree.fromstring(out.encode()).tag == "resource-agent"


@pytest.mark.parametrize("agent", OCF_AGENTS, ids=lambda a: a.info.name)
def test_ocf_environments(agent: ocf.OcfAgent, fuzz_dir: Path) -> None:
    tmp = str(fuzz_dir)

    @_settings(EXAMPLES["ocf"])
    @given(fz.cases())
    def one(data: bytes) -> None:
        argv, env, forced = fz.ocf_case(data, agent, tmp)
        COUNTS["ocf"] += 1
        ocflog._secrets.clear()  # each real run is a fresh process: no secret is masked by an earlier run
        out, err, stray = io.StringIO(), io.StringIO(), io.StringIO()
        with sandbox(), redirect_stdout(stray), redirect_stderr(stray):
            code = ocf.run(agent, argv, env, out, err, runner_factory=SandboxRunner)
        check_ocf(argv, env, forced, code, out.getvalue(), err.getvalue() + stray.getvalue())

    one()
    _logs_clean(fuzz_dir)


# --- fence ------------------------------------------------------------------------------

def check_fence(agent: fence.FenceAgent, inp: fence.FenceInput, forced: bool, code: object, out: str,
                err: str) -> None:
    both = out + err
    assert isinstance(code, int) and code in FENCE_CODES, code
    assert "Traceback" not in both
    assert "internal error" not in err, err
    assert fz.CANARY_CORE not in both, "a secret was printed"
    action = fz.effective_action(agent, inp)
    if code == 2:
        assert action == "status", f"exit 2 for {action!r}"
    quiet = str(inp.raw.get("quiet", "")).strip().lower() in ("1", "yes", "true", "on", "y", "ja")
    if code == 1 and not quiet:
        assert err.strip(), "failed without a reason on stderr"
    if forced and not any(k == "record_only" for k in inp.raw):
        assert code == 1, "a device action ran with an invalid parameter"
    if action == "metadata" and not (inp.want_help or inp.want_version):
        assert code == 0 and etree.fromstring(out.encode()).tag == "resource-agent"


def _run_fence(agent: fence.FenceAgent, argv: List[str], stdin: io.TextIOBase, fenced: bool = False):
    """One in-process run; fenced=True runs it as pacemaker-fenced does (PCMK_service set)."""
    env = {"PATH": "/nonexistent", **({"PCMK_service": "pacemaker-fenced"} if fenced else {})}
    ocflog._secrets.clear()
    out, err, stray = io.StringIO(), io.StringIO(), io.StringIO()
    # whatever bypasses the given streams (logging's own error reports, print) lands in stray
    with sandbox(), redirect_stdout(stray), redirect_stderr(stray):
        code = fence.run(agent, argv, env, stdin, out, err, runner_factory=SandboxRunner)
    return code, out.getvalue(), err.getvalue() + stray.getvalue()


def as_process_stdin(text: str) -> io.TextIOWrapper:
    """stdin the way a fence agent process in the C locale reads it: UTF-8 with surrogateescape."""
    raw = text.encode("utf-8", "surrogateescape")
    return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="surrogateescape")


@pytest.mark.parametrize("agent", FENCE_AGENTS, ids=lambda a: a.name)
def test_fence_stdin(agent: fence.FenceAgent, fuzz_dir: Path) -> None:
    tmp = str(fuzz_dir)

    @_settings(EXAMPLES["stdin"])
    @given(fz.cases())
    def one(data: bytes) -> None:
        text, forced, as_bytes = fz.fence_stdin_case(data, agent, tmp)
        COUNTS["stdin"] += 1
        code, out, err = _run_fence(agent, [agent.name], as_process_stdin(text) if as_bytes else io.StringIO(text),
                                    fenced=len(data) % 2 == 1)
        inp = fence.parse_stdin(text, agent.full_table())
        check_fence(agent, inp, forced, code, out, err)

    one()
    _logs_clean(fuzz_dir)


@pytest.mark.parametrize("agent", FENCE_AGENTS, ids=lambda a: a.name)
def test_fence_argv(agent: fence.FenceAgent, fuzz_dir: Path) -> None:
    tmp = str(fuzz_dir)

    @_settings(EXAMPLES["argv"])
    @given(fz.cases())
    def one(data: bytes) -> None:
        argv, forced = fz.fence_argv_case(data, agent, tmp)
        COUNTS["argv"] += 1
        # stdin is ignored when there are arguments
        code, out, err = _run_fence(agent, argv, io.StringIO("action=off\n"), fenced=len(data) % 2 == 1)
        inp = fence.parse_argv(argv[1:], agent.full_table())
        check_fence(agent, inp, forced, code, out, err)

    one()
    _logs_clean(fuzz_dir)


def test_positional_arguments_are_not_echoed() -> None:
    """Found by this fuzzing: a password after a quoting slip was echoed (fixed in ocf_lib/fence.py)."""
    agent = sample_agents.SampleFence()
    secret = fz.CANARY_CORE + "c0ffee"
    code, out, err = _run_fence(agent, [agent.name, "--state-dir=/nonexistent", "--password=", secret, "-o", "off"],
                                io.StringIO(""))
    assert code == 1
    assert secret not in out + err, err


def test_stdin_password_with_a_line_separator_is_not_echoed() -> None:
    """Found by this fuzzing: stdin was split at U+2028 & co and a password tail echoed (fixed)."""
    agent = sample_agents.SampleFence()
    secret = fz.CANARY_CORE + "beef00"
    code, out, err = _run_fence(agent, [agent.name],
                                io.StringIO(f"action=off\nstate_dir=/nonexistent\npassword=ab\u2028{secret}\n"))
    assert code == 1
    assert secret not in out + err, err


@pytest.mark.parametrize("agent", [a for a in OCF_AGENTS if a.table.get("auth_url") is not None],
                         ids=lambda a: a.info.name)
def test_auth_url_with_a_bad_ipv6_bracket_is_a_config_error(agent: ocf.OcfAgent, fuzz_dir: Path) -> None:
    env = {"HA_RSCTMP": str(fuzz_dir / "rsctmp"), "OCF_RESOURCE_INSTANCE": "r1",
           "OCF_RESKEY_auth_url": "https://[::1"}
    out, err = io.StringIO(), io.StringIO()
    code = ocf.run(agent, [agent.info.name, "validate-all"], env, out, err)
    assert "internal error" not in err.getvalue(), err.getvalue()
    assert code == 6


def test_long_resource_instance_name_is_not_an_internal_error(fuzz_dir: Path) -> None:
    """Found by this fuzzing: a 300-character instance name made an over-long state file name (fixed)."""
    agents = [a for a in OCF_AGENTS if a.info.name == "NovaEvacuate"]  # reads a state file in monitor
    if not agents:
        pytest.skip("NovaEvacuate is not in this checkout")
    env = {"HA_RSCTMP": str(fuzz_dir / "rsctmp"), "OCF_RESOURCE_INSTANCE": "r" * 300}
    err = io.StringIO()
    code = ocf.run(agents[0], ["NovaEvacuate", "monitor"], env, io.StringIO(), err)
    assert "internal error" not in err.getvalue(), err.getvalue()
    assert code == 7


@pytest.mark.parametrize("action", ["monitor", "stop"])
def test_nova_compute_env_without_equals_is_a_config_error(fuzz_dir: Path, action: str) -> None:
    """Found by this fuzzing: monitor/stop crashed on a nova_compute_env item without '=' (fixed)."""
    agents = [a for a in OCF_AGENTS if a.info.name == "NovaCompute"]
    if not agents:
        pytest.skip("NovaCompute is not in this checkout")
    env = {"HA_RSCTMP": str(fuzz_dir / "rsctmp"), "OCF_RESOURCE_INSTANCE": "nova-compute",
           "OCF_RESKEY_nova_compute_env": "DEBUG"}
    err = io.StringIO()
    code = ocf.run(agents[0], ["NovaCompute", action], env, io.StringIO(), err)
    assert "internal error" not in err.getvalue(), err.getvalue()
    assert code == {"monitor": 7, "stop": 0}[action]  # a probe of a broken, never started resource


@pytest.mark.parametrize("action", ["monitor", "stop"])
def test_service_mode_without_status_cmd_is_a_config_error(fuzz_dir: Path, action: str) -> None:
    """Found by this fuzzing: monitor/stop ran an empty service command (IndexError) (fixed)."""
    agents = [a for a in OCF_AGENTS if a.info.name == "NovaCompute"]
    if not agents:
        pytest.skip("NovaCompute is not in this checkout")
    env = {"HA_RSCTMP": str(fuzz_dir / "rsctmp"), "OCF_RESOURCE_INSTANCE": "nova-compute",
           "OCF_RESKEY_service_start_cmd": "/bin/true"}
    err = io.StringIO()
    with sandbox():
        code = ocf.run(agents[0], ["NovaCompute", action], env, io.StringIO(), err)
    assert "internal error" not in err.getvalue(), err.getvalue()
    assert code == {"monitor": 7, "stop": 0}[action]  # a probe of a broken, never started resource


def test_stdin_that_is_not_utf8_is_an_input_error() -> None:
    agent = sample_agents.SampleFence()
    stdin = io.TextIOWrapper(io.BytesIO(b"action=off\nstate_dir=/x\xff\n"), encoding="utf-8", errors="strict")
    code, out, err = _run_fence(agent, [agent.name], stdin)
    assert code == 1
    assert "internal error" not in err, err


def test_fence_ipmi_password_that_is_not_utf8_is_a_config_error() -> None:
    agents = [a for a in FENCE_AGENTS if a.name == "fence_ipmi"]
    if not agents:
        pytest.skip("fence_ipmi is not in this checkout")
    stdin = io.TextIOWrapper(io.BytesIO(b"action=validate-all\nip=127.0.0.1\nusername=admin\npassword=ab\xffcdef\n"),
                             encoding="utf-8", errors="surrogateescape")
    code, out, err = _run_fence(agents[0], ["fence_ipmi"], stdin)
    assert "internal error" not in err, err
    assert code in (0, 1)


def test_agent_children_do_not_inherit_secret_parameters(tmp_path: Path) -> None:
    """Found by the secret scan during fuzzing: programs an OCF agent ran inherited
    OCF_RESKEY_password (fixed in the Runner)."""
    agents = [a for a in OCF_AGENTS if a.info.name == "NovaCompute"]
    if not agents:
        pytest.skip("NovaCompute is not in this checkout")
    secret = "child-env-" + os.urandom(6).hex()  # private: not in the session's secret registry
    dump = tmp_path / "child.env"
    status = tmp_path / "status"
    status.write_text(f"#!/bin/sh\nenv > {dump}\nexit 3\n")
    status.chmod(0o755)
    (tmp_path / "rsctmp").mkdir()
    env = {"HA_RSCTMP": str(tmp_path / "rsctmp"), "OCF_RESOURCE_INSTANCE": "nc1", "PATH": "/usr/bin:/bin",
           "OCF_RESKEY_service_start_cmd": str(status), "OCF_RESKEY_service_stop_cmd": str(status),
           "OCF_RESKEY_service_status_cmd": str(status), "OCF_RESKEY_password": secret}
    code = ocf.run(agents[0], ["NovaCompute", "monitor"], env, io.StringIO(), io.StringIO())
    assert code == 7 and dump.exists()  # the status command ran and said "not running"
    assert secret not in dump.read_text()


def test_zz_total_generated_inputs(request: pytest.FixtureRequest) -> None:
    """At least 10,000 generated inputs in total (when the whole file ran)."""
    expected = len(OCF_AGENTS) * EXAMPLES["ocf"] + len(FENCE_AGENTS) * (EXAMPLES["stdin"] + EXAMPLES["argv"])
    total = sum(COUNTS.values())
    print(f"fuzz: {total} generated inputs ({dict(COUNTS)}); sandbox refused {dict(_Sandbox.refused)}")
    if total < expected * 0.9:
        pytest.skip(f"only part of the fuzz file ran ({total} inputs)")
    if _SCALE >= 1:
        assert expected >= MIN_TOTAL
        assert total >= MIN_TOTAL, dict(COUNTS)
