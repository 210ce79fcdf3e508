"""Where the OpenStack test rig lives and how it is addressed.

Everything the rig creates at run time lives under one directory (default
``<repo>/.rig/openstack``, overridable with ``COMPUTEHA_RIG_DIR``). The bind address
of the control services is a setting so that the cluster rig can put them on a
bridge address and run each nova-compute in its own network namespace.

Settings read from the environment at the first bring-up are frozen in
``<rig>/rig.json``; later calls (kill/restart a compute, tear-down) use that file,
so a different environment in a later shell cannot make us address the wrong ports.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

REPO_ROOT = Path(__file__).resolve().parents[3]
RIG_PKG_DIR = Path(__file__).resolve().parent

# Base TCP ports; COMPUTEHA_RIG_PORT_OFFSET shifts all of them.
BASE_PORTS: Dict[str, int] = {
    "keystone": 5000,
    "nova-api": 8774,
    "placement": 8778,
    "glance": 9292,
    "neutron": 9696,
    "rabbitmq": 5672,
    "rabbitmq-dist": 25672,
    "epmd": 4369,
    "mariadb": 3306,
}


def _default_rig_dir() -> Path:
    return REPO_ROOT / ".rig" / "openstack"


@dataclass(frozen=True)
class RigSettings:
    """The few knobs of the rig; frozen into rig.json at bring-up."""

    bind: str = "127.0.0.1"
    computes: int = 3
    ports: Dict[str, int] = field(default_factory=lambda: dict(BASE_PORTS))

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "RigSettings":
        env = os.environ if env is None else env
        offset = int(env.get("COMPUTEHA_RIG_PORT_OFFSET", "0"))
        return cls(
            bind=env.get("COMPUTEHA_RIG_BIND", "127.0.0.1"),
            computes=int(env.get("COMPUTEHA_RIG_COMPUTES", "3")),
            ports={k: v + offset for k, v in BASE_PORTS.items()},
        )


@dataclass(frozen=True)
class RigPaths:
    """File system layout under the rig directory."""

    root: Path

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "RigPaths":
        env = os.environ if env is None else env
        raw = env.get("COMPUTEHA_RIG_DIR")
        return cls(Path(raw).resolve() if raw else _default_rig_dir())

    venv = property(lambda self: self.root / "venv")
    etc = property(lambda self: self.root / "etc")
    data = property(lambda self: self.root / "data")
    logs = property(lambda self: self.root / "logs")
    run = property(lambda self: self.root / "run")
    guests = property(lambda self: self.root / "guests")
    power = property(lambda self: self.root / "power")
    rabbit = property(lambda self: self.root / "rabbit")
    mysql = property(lambda self: self.root / "mysql")
    clouds_yaml = property(lambda self: self.root / "clouds.yaml")
    settings_file = property(lambda self: self.root / "rig.json")

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def state_dir(self, host: str) -> Path:
        return self.data / "nova-state" / host


def compute_hosts(settings: RigSettings) -> List[str]:
    return ["compute-%d" % i for i in range(settings.computes)]


def load_settings(paths: RigPaths) -> RigSettings:
    """The settings of the existing rig, or the environment's for a new one."""
    try:
        raw = json.loads(paths.settings_file.read_text())
    except (OSError, ValueError):
        return RigSettings.from_env()
    return RigSettings(bind=raw["bind"], computes=int(raw["computes"]), ports=dict(raw["ports"]))


def save_settings(paths: RigPaths, settings: RigSettings) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text(json.dumps(asdict(settings), indent=1, sort_keys=True))
