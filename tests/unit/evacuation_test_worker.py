"""TEST-ONLY worker entry point: the real worker and Nova adapter, with the cluster records in the JSON
file named by $COMPUTEHA_TEST_ATTRS_FILE instead of the CIB (the OpenStack rig has no Pacemaker)."""
from __future__ import annotations

import os

from computeha.agents.evacuation_worker import worker_main as _real_main
from computeha.agents.nova_evacuate import NovaEvacuate
from tests.fakes.file_attributes import ENV, FileAttributes


def worker_main() -> None:
    path = os.environ[ENV]
    _real_main(records_factory=lambda runner: FileAttributes(path),
               progress_factory=lambda runner: FileAttributes(path))


class FileAttrsNovaEvacuate(NovaEvacuate):
    worker_module = "tests.unit.evacuation_test_worker"
