"""The confirmation listing runs off the engine's main thread: a slow listing must not hold up dispatch."""
from __future__ import annotations

import logging
import threading
import time

from computeha.agents.evacuation_engine import Engine
from computeha.agents.evacuation_params import Settings
from computeha.agents.evacuation_store import ProgressStore
from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.state import StateDir
from tests.fakes.memory_attributes import MemoryAttributes
from tests.unit.evacuation_fakes import MiniNova

FAST = dict(poll_interval=0.05, confirm_interval=0.01, in_doubt_grace=0.3, mass_failure_share=0, retry_backoff=0.05)


class GatedListing(MiniNova):
    """A Nova whose per-host migration listing blocks until the test opens the gate."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.gate = threading.Event()
        self.host_listings = 0

    def migrations(self, source_host=None, instance_uuid=None, migration_type="evacuation", changes_since=None,
                   created_after=None):
        if source_host and not instance_uuid:
            self.host_listings += 1
            if self.host_listings > 1:  # the plan's listing passes, the confirmation listings wait
                self.gate.wait(10)
        return super().migrations(source_host, instance_uuid, migration_type, changes_since, created_after)


def make(tmp_path, nova, **settings):
    attrs, progress = MemoryAttributes(), MemoryAttributes()
    engine = Engine(nova, attrs, Settings(**{**FAST, **settings}), ProgressStore(StateDir(str(tmp_path), "NE", "a")),
                    logging.getLogger("test-evacuation"), "ctl-1", progress=progress)
    attrs.set("compute-0", rec.ATTRIBUTE, rec.new(rec.REQUESTED, "fenced by test", time.time() - 1).format())
    return engine, attrs, progress


def test_dispatch_goes_on_while_a_confirmation_listing_hangs(tmp_path):
    nova = GatedListing(duration=0.01)
    sids = [nova.add_server("compute-0").id for _ in range(6)]
    nova.fence("compute-0")
    # a small in-flight cap: the later instances can only start once earlier ones are confirmed;
    # with the listing stuck, dispatch must keep the main loop alive (no instance confirmed yet)
    engine, attrs, progress = make(tmp_path, nova, max_parallel=2)
    try:
        end = time.monotonic() + 3
        steps = 0
        while time.monotonic() < end and not (nova.host_listings >= 2 and steps > 20):
            engine.step()
            steps += 1
        assert nova.host_listings >= 2 and steps > 20  # the main loop kept stepping with a listing in flight
        assert sum(nova.evacuations.get(s, 0) for s in sids) == 2  # the cap holds: nothing confirmed yet
        nova.gate.set()
        assert engine.run_until_idle(10)
    finally:
        nova.gate.set()
        engine.close()
    assert [nova.evacuations.get(s) for s in sids] == [1] * 6 and nova.broken == []
    assert rec.parse(attrs.get("compute-0", rec.ATTRIBUTE)).state == rec.DONE
    assert progress.get("compute-0", rec.PROGRESS_ATTRIBUTE) == "6/6"


def test_close_with_a_listing_result_pending_starts_nothing(tmp_path):
    nova = GatedListing(duration=0.01)
    sids = [nova.add_server("compute-0").id for _ in range(3)]
    nova.fence("compute-0")
    engine, _, _ = make(tmp_path, nova, max_parallel=3)
    end = time.monotonic() + 3
    while time.monotonic() < end and nova.host_listings < 2:
        engine.step()
    assert nova.host_listings >= 2
    nova.gate.set()
    engine.close()  # the listing's result arrives after stop: it must not submit confirmations
    before = len(nova.calls)
    time.sleep(0.2)
    assert len(nova.calls) == before
    assert [nova.evacuations.get(s) for s in sids] == [1] * 3
