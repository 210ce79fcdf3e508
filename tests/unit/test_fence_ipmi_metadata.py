"""fence_ipmi's metadata is deterministic and matches tests/golden/fence_ipmi.xml.

An intended change: `make update-golden` (COMPUTEHA_UPDATE_GOLDEN=1), then review the diff.
"""
from __future__ import annotations

import io

from computeha.fence import fence_ipmi
from computeha.ocf_lib import fence
from tests.tools import golden


def render() -> str:
    out, err = io.StringIO(), io.StringIO()
    assert fence.run(fence_ipmi.IpmiFence(), ["fence_ipmi"], {}, stdin=io.StringIO("action=metadata\n"),
                     stdout=out, stderr=err) == 0
    assert err.getvalue() == ""
    return out.getvalue()


def test_fence_ipmi_metadata_matches_golden() -> None:
    xml = render()
    assert xml == render()  # deterministic
    golden.check("fence_ipmi.xml", xml)
