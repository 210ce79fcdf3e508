"""Two small agents built on ocf_lib, used to prove the protocol layer with the real tools.

ComputehaSample (OCF): a Dummy-like resource whose state is a file in HA_RSCTMP.
fence_computeha_sample (fence): a power switch whose state is a file, so that
stonith_admin and the fence state machine can be exercised without hardware.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, List

from computeha.ocf_lib import fence, ocf
from computeha.ocf_lib.exitcodes import Ocf
from computeha.ocf_lib.params import ActionSpec, AgentInfo, Kind, Param, ParamTable, Problem, Values


class SampleOcf(ocf.OcfAgent):
    info = AgentInfo(
        name="ComputehaSample",
        shortdesc="Sample agent of the computeha library",
        longdesc='A resource that only records whether it runs; it tests the library (a < b & "c").',
        version="0.1.0",
        actions=(ActionSpec("start", 20), ActionSpec("stop", 20), ActionSpec("monitor", 20, interval=10, depth=0),
                 ActionSpec("validate-all", 20), ActionSpec("meta-data", 5)),
    )
    table = ParamTable([
        Param("label", Kind.STRING, "A free text label", default="sample", aliases=("old_label",)),
        Param("count", Kind.INTEGER, "A bounded number", default=3, minimum=1, maximum=10),
        Param("flag", Kind.BOOLEAN, "A boolean", default=False),
        Param("mode", Kind.SELECT, "A choice", choices=("fast", "slow"), default="fast"),
        Param("wait", Kind.SECONDS, "A duration", default=1),
        Param("password", Kind.STRING, "A secret", secret=True, default=""),
        Param("required_path", Kind.STRING, "A file that must exist on this node (level 10 check)", default=""),
    ])

    def validate(self, ctx: ocf.OcfContext) -> List[Problem]:
        problems = []
        path = ctx.values.required_path
        if ctx.check_level >= 10 and path and not os.path.exists(path):
            problems.append(Problem("required_path", f"{path} does not exist on this node", Ocf.ERR_ARGS))
        return problems

    def start(self, ctx: ocf.OcfContext) -> int:
        ctx.state.write_text("active", ctx.values.label)
        ctx.log.info("started with label %s (password %s)", ctx.values.label, ctx.values.password)
        return Ocf.SUCCESS

    def stop(self, ctx: ocf.OcfContext) -> int:
        ctx.state.clear()
        return Ocf.SUCCESS

    def monitor(self, ctx: ocf.OcfContext) -> int:
        return Ocf.SUCCESS if ctx.state.exists("active") else Ocf.NOT_RUNNING


class SampleFence(fence.FenceAgent):
    name = "fence_computeha_sample"
    shortdesc = "Sample fence agent of the computeha library"
    longdesc = "Switches the power state kept in a file; it tests the library's fence protocol."
    vendor_url = "https://example.invalid/computeha"
    has_plug = True
    has_list = True
    table = ParamTable([
        Param("state_dir", Kind.STRING, "Folder of power state files, one per plug", required=True,
              metavar="path"),
        Param("username", Kind.STRING, "Login name", short_opt="l", metavar="name", aliases=("login",)),
        Param("password", Kind.STRING, "Login password", short_opt="p", metavar="password", secret=True,
              aliases=("passwd",)),
        Param("password_script", Kind.STRING, "Script that prints the password", short_opt="S",
              metavar="script"),
        Param("insecure", Kind.BOOLEAN, "Skip TLS verification", default=False),
    ])

    def validate(self, values: Values, plug: str) -> List[Problem]:
        return [] if plug else [Problem("plug", "is required for this action")]

    @contextmanager
    def connect(self, ctx: fence.FenceContext) -> Iterator[str]:
        if not os.path.isdir(ctx.values.state_dir):
            raise fence.FenceError(f"device unreachable: {ctx.values.state_dir} is not a folder")
        yield ctx.values.state_dir

    def get_power(self, ctx: fence.FenceContext, conn: str) -> str:
        try:
            with open(os.path.join(conn, ctx.plug), encoding="utf-8") as handle:
                return handle.read().strip() or "on"
        except FileNotFoundError:
            return "on"

    def set_power(self, ctx: fence.FenceContext, conn: str, state: str) -> None:
        with open(os.path.join(conn, ctx.plug), "w", encoding="utf-8") as handle:
            handle.write(state)

    def list_targets(self, ctx: fence.FenceContext, conn: str) -> dict:
        return {name: name for name in os.listdir(conn)}


def ocf_main() -> None:
    ocf.main(SampleOcf())


def fence_main() -> None:
    fence.main(SampleFence())
