"""`make demo`: the main job.

Until the end-to-end cluster demo exists, this renders what an operator
installs: the metadata of every agent that is present in this checkout, and
says plainly that the recovery demo is not there yet.
"""
from __future__ import annotations

import io
import sys

from computeha.ocf_lib import fence, ocf
from tests.tools.agents import AGENTS, AgentRef, load

def metadata_of(ref: AgentRef) -> str | None:
    agent = load(ref)
    if agent is None:
        return None
    out = io.StringIO()
    if ref.protocol == "ocf":
        ocf.run(agent, ["x", "meta-data"], {}, stdout=out, stderr=io.StringIO())
    else:
        fence.run(agent, ["x"], {}, stdin=io.StringIO("action=metadata\n"), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def main() -> int:
    print("computeha demo: the end-to-end recovery demo is not built yet; showing the agents' metadata.\n")
    for ref in AGENTS:
        xml = metadata_of(ref)
        if xml is None:
            print(f"== {ref.name}: not present in this checkout yet\n")
            continue
        print(f"== {ref.name} ({ref.protocol} agent)\n{xml}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
