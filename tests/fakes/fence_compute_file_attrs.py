"""TEST-ONLY entry point: the real fence_compute (real Keystone/Nova client) with the
cluster record kept in the JSON file named by $COMPUTEHA_TEST_ATTRS_FILE instead of the
CIB, for the OpenStack rig, which has no Pacemaker.

    python -m tests.fakes.fence_compute_file_attrs [fence options]   (or options on stdin)
"""
from __future__ import annotations

import os
import sys

from computeha.fence.fence_compute import FenceCompute
from computeha.ocf_lib import fence
from tests.fakes.file_attributes import ENV, FileAttributes


def main() -> None:
    path = os.environ.get(ENV)
    if not path:
        sys.stderr.write(f"{ENV} is not set\n")
        sys.exit(1)
    fence.main(FenceCompute(attributes_factory=lambda ctx: FileAttributes(path)))


if __name__ == "__main__":
    main()
