"""pytest fixtures for the BMC rig: ipmi_sim BMCs on loopback (see bmcrig.py).

- ``bmc_factory`` (session): ``bmc_factory.get(name, **BmcSpec fields)`` starts a
  BMC once per session (same name -> same BMC); all are stopped, by recorded
  PID, when the session ends.
- ``ipmi_bmc`` (function): the shared default BMC (IPMI 1.5 and 2.0), reset
  to power on and normal behaviour before each test.
- ``ipmi_bmc_lanplus_only`` (function): a BMC that refuses IPMI 1.5.

A Bmc gives host, port, username, password_file, state_file and chassis_log.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.rig.bmc import bmcrig


class BmcFactory:
    def __init__(self, base: Path) -> None:
        self.base = base
        self._bmcs: dict[str, bmcrig.Bmc] = {}

    def get(self, name: str, **spec: object) -> bmcrig.Bmc:
        bmc = self._bmcs.get(name)
        if bmc is None:
            bmc = bmcrig.start(bmcrig.BmcSpec(name=name, **spec), self.base / name)  # type: ignore[arg-type]
            self._bmcs[name] = bmc
        return bmc

    def stop_all(self) -> None:
        for name in list(self._bmcs):
            bmcrig.stop(self._bmcs.pop(name).dir)


@pytest.fixture(scope="session")
def bmc_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BmcFactory]:
    if shutil.which(bmcrig.IPMI_SIM) is None:
        pytest.skip("ipmi_sim not installed (run tests/rig/bmc/install.sh)")
    factory = BmcFactory(tmp_path_factory.mktemp("bmc"))
    try:
        yield factory
    finally:
        factory.stop_all()


def _reset(bmc: bmcrig.Bmc) -> bmcrig.Bmc:
    bmc.set_behaviour()
    bmc.set_power_file("on")
    return bmc


@pytest.fixture
def ipmi_bmc(bmc_factory: BmcFactory) -> bmcrig.Bmc:
    return _reset(bmc_factory.get("bmc-default"))


@pytest.fixture
def ipmi_bmc_lanplus_only(bmc_factory: BmcFactory) -> bmcrig.Bmc:
    return _reset(bmc_factory.get("bmc-lanplus-only", lanplus_only=True))
