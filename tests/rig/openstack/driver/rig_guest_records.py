"""On-disk truth about which guests each rig host is running, and whether it has power.

Layout under the rig directory (``COMPUTEHA_RIG_DIR``):

- ``guests/<host>.json``: ``{"host": ..., "guests": {uuid: {"name", "state", "running", ...}}}``
  written atomically by the host's virt driver on every change;
- ``power/<host>``: ``on`` or ``off``; a host whose power is off runs no guests and
  cannot start nova-compute.

Stdlib only: imported by nova-compute (rig venv) and by the tests (project venv).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Dict, Mapping, Set

POWER_ON = "on"
POWER_OFF = "off"


def guests_file(rig_dir: Path, host: str) -> Path:
    return Path(rig_dir) / "guests" / ("%s.json" % host)


def power_file(rig_dir: Path, host: str) -> Path:
    return Path(rig_dir) / "power" / host


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % path.name, dir=str(path.parent))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_guests(rig_dir: Path, host: str, guests: Mapping[str, Mapping]) -> None:
    doc = {"host": host, "guests": {u: dict(g) for u, g in guests.items()}}
    _atomic_write(guests_file(rig_dir, host), json.dumps(doc, indent=1, sort_keys=True))


def read_guests(rig_dir: Path, host: str) -> Dict[str, Dict]:
    """uuid -> guest record of one host; empty when the host has no record."""
    try:
        doc = json.loads(guests_file(rig_dir, host).read_text())
    except FileNotFoundError:
        return {}
    return dict(doc.get("guests", {}))


def wipe_guests(rig_dir: Path, host: str) -> None:
    """What losing power does to a hypervisor: every guest is gone."""
    write_guests(rig_dir, host, {})


def set_power(rig_dir: Path, host: str, state: str) -> None:
    if state not in (POWER_ON, POWER_OFF):
        raise ValueError("power state must be 'on' or 'off', not %r" % state)
    _atomic_write(power_file(rig_dir, host), state + "\n")


def power_state(rig_dir: Path, host: str) -> str:
    """'on' unless the host has been powered off (a host with no file is on)."""
    try:
        return power_file(rig_dir, host).read_text().strip() or POWER_ON
    except FileNotFoundError:
        return POWER_ON


def running_guests(rig_dir: Path, hosts) -> Dict[str, Set[str]]:
    """uuid -> set of hosts on which that guest is running right now (the zombie query)."""
    out: Dict[str, Set[str]] = {}
    for host in hosts:
        if power_state(rig_dir, host) != POWER_ON:
            continue
        for uuid, guest in read_guests(rig_dir, host).items():
            if guest.get("running"):
                out.setdefault(uuid, set()).add(host)
    return out
