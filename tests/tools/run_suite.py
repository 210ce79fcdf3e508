"""`make test`: the whole suite as two pytest sessions running side by side.

The rig tests (tests/integration) spend most of their time waiting on real services (a fence, a
heartbeat, a rebuild) and hold the rigs, which only one session may use; the fast tests
(tests/unit, tests/contract) use no rig and mostly CPU. Run one after the other they add up; side
by side the fast ones fit in the rig tests' waits. The fast session's report is printed after the
rig session's, then the wall time of both; the exit status is the worse of the two.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAST = ["tests/unit", "tests/contract"]
RIGS = ["tests/integration"]
FAST_TIMEOUT = 3600.0  # seconds; the fast session takes a few minutes


def main(args: list[str]) -> int:
    started = time.monotonic()
    pytest = [sys.executable, "-m", "pytest"]
    if any((REPO / a.split("::")[0]).exists() for a in args if not a.startswith("-")):
        # test paths or node ids chosen: one plain session of those
        return subprocess.run(pytest + args, cwd=REPO, check=False).returncode
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as fast_log:
        fast = subprocess.Popen(pytest + FAST + args, cwd=REPO, stdout=fast_log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            rigs_status = subprocess.run(pytest + RIGS + args, cwd=REPO, check=False).returncode
            fast_status = fast.wait(timeout=max(60.0, FAST_TIMEOUT - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            fast.kill()
            fast_status = fast.wait()
            print(f"the fast session did not finish within {FAST_TIMEOUT:.0f} s: stopped", flush=True)
        finally:
            if fast.poll() is None:
                fast.kill()
                fast.wait()
        fast_log.seek(0)
        print(f"\n{'=' * 30} fast session ({' '.join(FAST)}) {'=' * 30}", flush=True)
        sys.stdout.write(fast_log.read())
    spent = time.monotonic() - started
    # pytest's 5 ("no tests collected", e.g. a -k that matches only one side) is no failure of the other
    statuses = [s for s in (rigs_status, fast_status) if s != 5] or [5]
    status = max(statuses)
    print(f"whole suite wall time: {spent:.0f} s ({spent / 60:.1f} min): rig session exit {rigs_status}, "
          f"fast session exit {fast_status}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
