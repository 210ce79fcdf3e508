"""Small helpers shared by the cluster rig modules: a checked runner and a bounded poll."""
from __future__ import annotations

import subprocess
import time
import xml.etree.ElementTree as ET
from typing import Callable, Dict, Optional, Sequence, TypeVar

T = TypeVar("T")


class RigError(RuntimeError):
    pass


def run(argv: Sequence[str], *, timeout: float = 60.0, check: bool = True,
        env: Optional[Dict[str, str]] = None, input: Optional[str] = None
        ) -> "subprocess.CompletedProcess[str]":
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          env=env, input=input, check=False)
    if check and proc.returncode != 0:
        raise RigError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed "
                       f"(rc {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def wait_for(what: str, probe: Callable[[], Optional[T]], timeout: float,
             interval: float = 0.25) -> T:
    """Poll ``probe`` until it returns something truthy; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (subprocess.SubprocessError, RigError, OSError, ET.ParseError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            hint = f" (last error: {last_exc})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{hint}")
        time.sleep(interval)
