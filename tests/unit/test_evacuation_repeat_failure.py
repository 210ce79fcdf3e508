"""A host that fails again soon after its last evacuation (found by the SIGKILL loop on the rig).

The engine treats an evacuation migration from the host created up to CLOCK_SLACK (120 s)
before the request as belonging to the request (clock skew between controllers and Nova).
Migrations of the host's PREVIOUS failure fall into that window when it fails again within
two minutes; they are `completed` by then (the source compute completes its evacuations when
it starts again, which it must do to return to service), while this request's cannot be: its
source is fenced. On the rig, run 2 of the loop reported `done 10/10` for 5 instances.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from computeha.agents.evacuation_engine import Engine
from computeha.agents.evacuation_params import Settings
from computeha.agents.evacuation_store import ProgressStore
from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.state import StateDir
from tests.fakes.memory_attributes import MemoryAttributes
from tests.unit.evacuation_fakes import MiniNova

FAST = dict(poll_interval=0.05, confirm_interval=0.01, in_doubt_grace=0.3, mass_failure_share=0, retry_backoff=0.05)
HOST = "compute-0"


def _run(tmp_path, nova, attrs, name: str) -> None:
    store = ProgressStore(StateDir(str(tmp_path), "NovaEvacuate", name))
    engine = Engine(nova, attrs, Settings(**FAST), store, logging.getLogger("test-evacuation"), "ctl-1",
                    progress=MemoryAttributes())
    try:
        assert engine.run_until_idle(10)
    finally:
        engine.close()


def _return_to_service(nova: MiniNova) -> None:
    """The host is powered on: its nova-compute completes the evacuations from it and is forced up."""
    nova.migs = [replace(m, status="completed") if m.source_compute == HOST and m.status == "done" else m
                 for m in nova.migs]
    nova.services[HOST] = replace(nova.services[HOST], state="up", forced_down=False, status="enabled",
                                  disabled_reason="")


def test_a_second_failure_within_two_minutes_counts_only_its_own_instances(tmp_path):
    nova = MiniNova()
    first = [nova.add_server(HOST).id for _ in range(3)]
    nova.fence(HOST)
    attrs = MemoryAttributes()
    attrs.set(HOST, rec.ATTRIBUTE, rec.new(rec.REQUESTED, "first failure", time.time() - 1).format())
    _run(tmp_path, nova, attrs, "first")
    assert rec.parse(attrs.get(HOST, rec.ATTRIBUTE)).detail == "3/3"

    _return_to_service(nova)
    second = [nova.add_server(HOST).id for _ in range(2)]
    nova.fence(HOST)
    attrs.set(HOST, rec.ATTRIBUTE, rec.new(rec.REQUESTED, "second failure", time.time()).format())
    _run(tmp_path, nova, attrs, "second")

    assert all(nova.evacuations.get(s) == 1 for s in first + second)  # nothing twice either way
    result = rec.parse(attrs.get(HOST, rec.ATTRIBUTE))
    assert result.state == rec.DONE
    assert result.detail == "2/2"  # the first failure's 3 (completed by now) are not this request's


def test_an_instance_back_on_the_host_is_evacuated_again_after_a_second_failure(tmp_path):
    """The dangerous form of the same mix-up: an instance evacuated by the first failure was moved
    back to the host (say, by a live migration); its old `completed` record must not make it count
    as already evacuated when the host fails again within the slack, or it would stay dead."""
    nova = MiniNova()
    sid = nova.add_server(HOST).id
    nova.fence(HOST)
    attrs = MemoryAttributes()
    attrs.set(HOST, rec.ATTRIBUTE, rec.new(rec.REQUESTED, "first failure", time.time() - 1).format())
    _run(tmp_path, nova, attrs, "first")
    assert nova.servers[sid].host != HOST and nova.evacuations.get(sid) == 1

    _return_to_service(nova)
    nova.servers[sid] = replace(nova.servers[sid], host=HOST)  # moved back
    nova.fence(HOST)
    attrs.set(HOST, rec.ATTRIBUTE, rec.new(rec.REQUESTED, "second failure", time.time()).format())
    _run(tmp_path, nova, attrs, "second")

    assert nova.evacuations.get(sid) == 2, "the instance was left on the failed host"
    assert nova.servers[sid].host != HOST
    assert rec.parse(attrs.get(HOST, rec.ATTRIBUTE)).detail == "1/1"
