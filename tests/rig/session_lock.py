"""One test session at a time per rig directory: an flock on <rig>/session.lock, released when the holder exits."""
from __future__ import annotations

import fcntl
import time
from pathlib import Path
from typing import IO, Optional


def hold(root: Path, wait_s: float) -> Optional[IO[str]]:
    """The open, locked file (keep it open for the session), or None if another session held it for wait_s."""
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / "session.lock", "a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(1)
