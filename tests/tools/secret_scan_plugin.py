"""pytest plugin: scan the whole session for leaked secrets (see tests/tools/secret_scan.py).

- an audit hook records argv and environment of every child this process starts;
- a background thread samples argv/environment of every descendant of this process and of
  the PIDs the rigs record under .rig/ (every COMPUTEHA_SECRET_SCAN_INTERVAL seconds,
  default 0.2, stretched so that sampling takes at most a fifth of one core), and re-reads
  the rigs' credential files and the log files' new bytes every 10 s;
- every test report's captured stdout/stderr/log and failure text is checked;
- at the end, all log files are read once more and every kept text is matched against every
  secret known by then. Any hit fails the session (exit status 1) and is listed, masked.

Enable with ``pytest_plugins = [..., "tests.tools.secret_scan_plugin"]`` in tests/conftest.py
or ``-p tests.tools.secret_scan_plugin``. ``COMPUTEHA_SECRET_SCAN=0`` turns it off.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

from tests.tools import secret_scan

FILE_PASS_EVERY = 10.0  # seconds between two passes over credential and log files
MAX_CPU_SHARE = 0.2


class _Session:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.scanner = secret_scan.Scanner()
        self.stop = threading.Event()
        self.interval = float(os.environ.get("COMPUTEHA_SECRET_SCAN_INTERVAL", "0.2") or 0.2)
        self.samples = 0
        self.errors: List[str] = []
        self.thread = threading.Thread(target=self._loop, name="secret-scan", daemon=True)
        self._last_files = 0.0
        self._rig_pids: set = set()
        self.hits: List[secret_scan.Hit] = []

    def tmp_dirs(self) -> List[Path]:
        factory = getattr(self.config, "_tmp_path_factory", None)
        try:
            return [factory.getbasetemp()] if factory is not None else []
        except Exception:
            return []

    def file_pass(self) -> None:
        rigs = secret_scan.rig_roots()
        tmps = self.tmp_dirs()
        secret_scan.load_rig_credentials(self.scanner.registry, tmps)
        self._rig_pids = secret_scan.rig_pids(rigs)
        for path in secret_scan.log_files(rigs, tmps):
            self.scanner.scan_file(path)
        self._last_files = time.monotonic()

    def sample(self) -> None:
        self.scanner.sample_processes({os.getpid()} | self._rig_pids)
        self.samples += 1

    def _loop(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                if began - self._last_files >= FILE_PASS_EVERY:
                    self.file_pass()
                self.sample()
            except Exception as err:  # the scanner must not break the suite; report at the end
                if len(self.errors) < 5:
                    self.errors.append(f"{type(err).__name__}: {err}")
            spent = time.monotonic() - began
            self.stop.wait(max(self.interval, spent / MAX_CPU_SHARE))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.file_pass()
        self.sample()
        self.hits = self.scanner.hits()


_STATE: Optional[_Session] = None


def _audit(event: str, args: tuple) -> None:
    state = _STATE
    if state is None or state.stop.is_set():
        return
    try:
        if event == "subprocess.Popen":
            _executable, argv, _cwd, env = args
            argv = [argv] if isinstance(argv, (str, bytes)) else list(argv or [])
            state.scanner.record_child(argv, env, "subprocess")
        elif event in ("os.exec", "os.posix_spawn"):
            _path, argv, env = args
            state.scanner.record_child(list(argv or []), env, event)
        elif event == "os.spawn":
            _mode, _path, argv, env = args
            state.scanner.record_child(list(argv or []), env, event)
    except Exception:
        pass  # never break the code under test


def pytest_configure(config: pytest.Config) -> None:
    global _STATE
    if os.environ.get("COMPUTEHA_SECRET_SCAN", "1") == "0" or _STATE is not None:
        return
    _STATE = _Session(config)
    secret_scan.ACTIVE = _STATE.scanner
    if not getattr(sys, "_computeha_secret_audit", False):
        sys.addaudithook(_audit)  # cannot be removed: it goes quiet when the session ends
        sys._computeha_secret_audit = True  # type: ignore[attr-defined]
    _STATE.thread.start()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    state = _STATE
    if state is None:
        return
    for name, text in [("stdout", report.capstdout), ("stderr", report.capstderr), ("log", report.caplog),
                       ("failure text", report.longreprtext if report.failed else "")]:
        if text:
            state.scanner.check_text(text, f"captured {name} of {report.nodeid} ({report.when})")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _STATE
    if state is None:
        return
    state.finish()
    if state.hits and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = _STATE
    if state is None:
        return
    tr = terminalreporter
    if state.hits:
        tr.section("secret scan: LEAKS", sep="=", red=True, bold=True)
        for hit in state.hits[:200]:
            tr.line(str(hit), red=True)
    for error in state.errors:
        tr.line(f"secret scan: sampler error: {error}", yellow=True)
    tr.line(f"{state.scanner.summary(state.hits)}, {state.samples} samples")


def pytest_unconfigure(config: pytest.Config) -> None:
    global _STATE
    if _STATE is not None and _STATE.config is config:
        _STATE.stop.set()
        secret_scan.ACTIVE = None
        _STATE = None
