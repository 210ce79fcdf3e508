"""NovaCompute against the project's shared Nova fake (tests/fakes/fake_nova.py, parity-checked on the rig).

The fake's world control stands in for the node: when the agent's child
runs, the fake's `start_compute` (init_host: done -> completed) is called,
and every later Nova call counts as a heartbeat.
"""
from __future__ import annotations

import io
import os
import pwd
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from computeha.agents.compute_service import ChildProcess
from computeha.agents.nova_compute import RETURN_RESULT, RETURNER_ENV, NovaCompute
from computeha.ocf_lib import evacuation_record as er
from computeha.ocf_lib import ocf
from computeha.ocf_lib.deadline import Deadline
from computeha.ocf_lib.nova import IN_PROGRESS_MIGRATION
from computeha.ocf_lib.state import StateDir
from tests.fakes.fake_nova import FakeNova
from tests.fakes.memory_attributes import MemoryAttributes

HOST = "compute-0"
SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.2)"]


class Node:
    """The compute node as the fake sees it: our child's process is nova-compute."""

    def __init__(self, fake: FakeNova, child: ChildProcess) -> None:
        self.fake = fake
        self.child = child
        self.started = False
        self.beats = 0
        self.ran_during_evacuation: List[str] = []
        self.on_call = lambda method: None

    def __call__(self, method: str) -> None:  # FakeNova.delay hook: runs before every API call
        self.on_call(method)
        running = self.child.running()
        busy = [m.status for m in self.fake.migration_records if m.source == HOST and m.status in IN_PROGRESS_MIGRATION]
        if running and busy:
            self.ran_during_evacuation.append(f"{method}: {busy}")
        if running and not self.started:
            self.started = True
            self.fake.start_compute(HOST)
        elif running:
            self.beats += 1
            self.fake.services[HOST].updated_at = f"heartbeat {self.beats}"


@pytest.fixture
def world(tmp_path: Path):
    fake = FakeNova()
    state = StateDir(str(tmp_path), "NovaCompute", "nc")
    child = ChildProcess(SLEEPER, state)
    node = Node(fake, child)
    fake.delay = node
    attrs = MemoryAttributes()
    agent = NovaCompute(nova=lambda ctx: fake, attrs=lambda ctx: attrs)
    agent.poll_interval = 0.01

    def returner_inline(ctx: ocf.OcfContext) -> int:
        # the return-to-service process runs start with RETURNER_ENV; the fake lives here, so inline
        code = ocf.run(agent, ["NovaCompute", "start"], dict(ctx.env, **{RETURNER_ENV: "1"}),
                       stdout=io.StringIO(), stderr=io.StringIO())
        ctx.state.write_text(RETURN_RESULT, f"{code}\n")
        return os.getpid()

    agent.launch_returner = returner_inline
    env = {"OCF_RESOURCE_INSTANCE": "nc", "HA_RSCTMP": str(tmp_path), "OCF_RESKEY_CRM_meta_on_node": HOST,
           "OCF_RESKEY_CRM_meta_timeout": "20000", "PATH": os.environ["PATH"], "OCF_RESKEY_host": HOST,
           "OCF_RESKEY_user": pwd.getpwuid(os.getuid()).pw_name,
           "OCF_RESKEY_nova_compute_command": " ".join(f"'{a}'" for a in SLEEPER)}

    def run(action: str) -> int:
        return ocf.run(agent, ["NovaCompute", action], env, stdout=io.StringIO(), stderr=io.StringIO())

    world = dict(fake=fake, node=node, attrs=attrs, run=run, child=child)
    yield world
    child.stop(Deadline(10))


def test_fenced_return_to_service_with_the_shared_fake(world: Dict) -> None:
    fake, node, attrs, run = world["fake"], world["node"], world["attrs"], world["run"]
    servers = [fake.add_server(HOST) for _ in range(3)]
    fake.kill_compute(HOST, noticed=True)
    svc = fake.compute_services(HOST)[0]
    fake.force_down_and_disable(svc, er.disabled_reason("fenced by test"))
    attrs.set(HOST, er.ATTRIBUTE, er.new(er.RUNNING).format())
    for sid in servers:
        fake.evacuate(sid)
    calls = {"n": 0}

    def evacuate_progress(method: str) -> None:
        calls["n"] += 1
        if calls["n"] == 15:
            fake.finish_evacuations()
        if calls["n"] == 25:
            attrs.set(HOST, er.ATTRIBUTE, er.new(er.DONE, "3/3").format())
    node.on_call = evacuate_progress

    assert run("start") == 0
    assert calls["n"] >= 25
    assert node.ran_during_evacuation == []
    svc = fake.compute_services(HOST)[0]
    assert (svc.state, svc.status, svc.forced_down) == ("up", "enabled", False)
    assert {m.status for m in fake.migrations(source_host=HOST)} == {"completed"}
    assert attrs.get(HOST, er.ATTRIBUTE) is None
    writes = [(name, args[1:]) for name, args in fake.writes() if name != "evacuate"]
    assert writes == [("force_down_and_disable", ("computeha: fenced by test",)), ("force_down", (False,)),
                      ("set_enabled", (True, ""))]


def test_plain_start_makes_no_nova_writes_with_the_shared_fake(world: Dict) -> None:
    fake, run = world["fake"], world["run"]
    fake.kill_compute(HOST, noticed=True)
    assert run("start") == 0
    assert fake.writes() == []
    assert fake.compute_services(HOST)[0].state == "up"
    assert run("monitor") == 0 and run("stop") == 0 and run("monitor") == 7
