"""The library's metadata output is deterministic and stays as reviewed."""
from __future__ import annotations

import io

from computeha.ocf_lib import fence, ocf
from tests.contract.sample_agents import SampleFence, SampleOcf
from tests.tools import golden


def render_ocf() -> str:
    out = io.StringIO()
    assert ocf.run(SampleOcf(), ["x", "meta-data"], {}, stdout=out, stderr=io.StringIO()) == 0
    return out.getvalue()


def render_fence() -> str:
    out = io.StringIO()
    assert fence.run(SampleFence(), ["x"], {}, stdin=io.StringIO("action=metadata\n"), stdout=out,
                     stderr=io.StringIO()) == 0
    return out.getvalue()


def test_sample_ocf_metadata_matches_golden() -> None:
    first = render_ocf()
    assert first == render_ocf()
    golden.check("ComputehaSample.xml", first)


def test_sample_fence_metadata_matches_golden() -> None:
    first = render_fence()
    assert first == render_fence()
    golden.check("fence_computeha_sample.xml", first)
