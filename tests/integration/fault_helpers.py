"""Helpers of the cloud/agent fault tests of NovaEvacuate (tests/integration/test_evacuate_faults_rig.py).

- `FaultProxy`: the loopback Nova proxy, plus an answer delay applied AFTER Nova answered
  (the caller times out while Nova has acted: an evacuate whose answer is lost late);
- `EngineThread`: the production engine with the real Nova adapter, run in a thread so that
  the test can inject a fault while evacuations are in flight;
- `outcome()`: the end state every scenario asserts, read from Nova, the rig's zombie-truthful
  hypervisor and the evacuation record.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

from computeha.agents.evacuation_engine import Engine
from computeha.agents.evacuation_params import Settings
from computeha.agents.evacuation_store import ProgressStore
from computeha.ocf_lib import evacuation_record as er
from computeha.ocf_lib.nova import nova_time
from computeha.ocf_lib.nova_client import NovaClient
from computeha.ocf_lib.state import StateDir
from tests.fakes.file_attributes import FileAttributes
from tests.integration import nova_rig_helpers
from tests.integration.evacuate_proxy import NovaProxy

LOG = logging.getLogger("computeha.test.faults")
SOURCE = "compute-0"
FAILED_STATES = ("failed", "error")


class FaultProxy(NovaProxy):
    """NovaProxy whose `answer_delay(method, path, status)` holds Nova's answer back (seconds).

    The base proxy records a request right after Nova answered and before it replies:
    sleeping there delays the reply only, so a caller with a shorter read timeout gives
    up on a request Nova has already carried out.
    """

    def __init__(self, upstream: str, answer_delay: Optional[Callable[[str, str, int], float]] = None,
                 **kwargs) -> None:
        super().__init__(upstream, **kwargs)
        self.answer_delay = answer_delay
        self.delayed: List[str] = []
        self.server.handle_error = self._quiet  # callers that gave up (timeouts) are the point here

    @staticmethod
    def _quiet(request, client_address) -> None:
        import sys
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            import traceback
            traceback.print_exc()

    def _record(self, method: str, path: str, status: int) -> None:
        super()._record(method, path, status)
        delay = self.answer_delay(method, path, status) if self.answer_delay and status > 0 else 0
        if delay:
            self.delayed.append(f"{method} {path}")
            time.sleep(delay)

    def statuses(self) -> Counter:
        with self._lock:
            return Counter(status for _, _, _, status in self.log)


def fence(rig, attrs, host: str = SOURCE) -> None:
    """What a successful fence does (see nova_rig_helpers.fence), for the fault tests' source host."""
    nova_rig_helpers.fence(rig, host, attrs, by="the fault test")


def migrations_from(rig, host: str = SOURCE) -> List[dict]:
    """Every evacuation migration record whose source is `host` (one admin listing, 2.80)."""
    resp = rig.session().get("/os-migrations", endpoint_filter={"service_type": "compute", "interface": "public"},
                             params={"source_compute": host, "migration_type": "evacuation"},
                             headers={"OpenStack-API-Version": "compute 2.80"})
    return [m for m in resp.json()["migrations"] if m.get("source_compute") == host]


def with_migration(rig, ids: Iterable[str], keep: Callable[[str], bool], host: str = SOURCE) -> int:
    """How many of `ids` have an evacuation record from `host` whose status `keep` accepts."""
    wanted = set(ids)
    return len({m["instance_uuid"] for m in migrations_from(rig, host)
                if m["instance_uuid"] in wanted and keep(m["status"])})


def issued(rig, ids: Iterable[str], host: str = SOURCE) -> int:
    return with_migration(rig, ids, lambda status: True, host)


def taken_by_compute(rig, ids: Iterable[str], host: str = SOURCE) -> int:
    """Instances whose evacuation a destination nova-compute has started (migration past `accepted`)."""
    return with_migration(rig, ids, lambda status: status not in ("accepted", "failed", "error"), host)


def wait_for(probe: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def restore(rig) -> None:
    """rig.restore_computes(), then wait for a heartbeat of every compute written after it.

    Nova reports a restarted compute `up` on its last heartbeat from before the power cut; a server
    booted before the new nova-compute ran init_host is put into ERROR by it (interrupted build).
    """
    rig.restore_computes()
    since = time.time() + 1  # after the API's own service updates (force-up, enable): heartbeats only

    def beat(host: str) -> bool:
        updated = getattr(rig.compute_service(host), "updated_at", "") or ""
        return nova_time(updated) > since
    for host in rig.compute_hosts:
        wait_for(lambda host=host: beat(host), 90, f"a fresh heartbeat of {host}", interval=0.5)


class EngineThread:
    """The production Engine (real Nova adapter, file-backed cluster records) in a background thread."""

    def __init__(self, nova: NovaClient, attrs: FileAttributes, tmp_path: Path, timeout: float = 240,
                 **settings) -> None:
        s = Settings(**{"mass_failure_share": 0, "poll_interval": 0.5, "retry_backoff": 1.0,
                        "in_doubt_grace": 5.0, "max_parallel": 3, **settings})
        store = ProgressStore(StateDir(str(tmp_path), "NovaEvacuate", "faults"))
        self.engine = Engine(nova, attrs, s, store, LOG, "ctl-test", progress=attrs)
        self.timeout = timeout
        self.result: Optional[bool] = None
        self.error: Optional[BaseException] = None
        self.started = 0.0
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True, name="engine")

    def _run(self) -> None:
        try:
            self.result = self.engine.run_until_idle(self.timeout)
        except BaseException as err:  # noqa: BLE001 - reported by join()
            self.error = err
        finally:
            self.seconds = time.monotonic() - self.started

    def __enter__(self) -> "EngineThread":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def join(self) -> bool:
        self._thread.join(self.timeout + 30)
        if self.error is not None:
            raise self.error
        return bool(self.result)

    def __exit__(self, *exc) -> None:
        self.engine.stop.set()
        self._thread.join(30)
        self.engine.close(wait=False)


@dataclass
class Outcome:
    """The end state of one scenario, as the cloud and the rig's hypervisor report it."""

    n: int
    on_live_host: int = 0
    right_state: int = 0
    evacuations: Dict[str, int] = field(default_factory=dict)  # instance -> non-failed evacuation records
    failed_records: int = 0
    zombies: int = 0
    record: str = ""
    where: Counter = field(default_factory=Counter)

    @property
    def once_each(self) -> bool:
        return len(self.evacuations) == self.n and set(self.evacuations.values()) == {1}

    def summary(self) -> str:
        twice = sum(1 for v in self.evacuations.values() if v > 1)
        return (f"{self.right_state}/{self.n} ACTIVE on a live host "
                f"({', '.join(f'{h} {c}' for h, c in sorted(self.where.items()))}), "
                f"{sum(1 for v in self.evacuations.values() if v == 1)}/{self.n} with exactly 1 evacuation, "
                f"{twice} twice, {self.failed_records} failed records retried, {self.zombies} zombies, "
                f"record {self.record_text}")

    @property
    def record_text(self) -> str:
        record = er.parse(self.record)
        return f"{record.state} {record.detail}" if record else "missing"


def outcome(rig, ids: List[str], attrs: FileAttributes, source: str = SOURCE,
            expect: Optional[Dict[str, str]] = None) -> Outcome:
    """Read the end state: hosts and statuses, evacuation records, zombies, the host's record."""
    nova = rig.nova()
    out = Outcome(n=len(ids))
    live = {h for h in rig.compute_hosts if h != source and rig.compute_running(h)}
    for sid in ids:
        server = nova.servers.get(sid)
        host = getattr(server, "OS-EXT-SRV-ATTR:host")
        out.where[host] += 1
        if host in live:
            out.on_live_host += 1
            if server.status == (expect or {}).get(sid, "ACTIVE") and \
                    getattr(server, "OS-EXT-STS:task_state") is None:
                out.right_state += 1
    wanted = set(ids)
    for mig in migrations_from(rig, source):
        if mig["instance_uuid"] not in wanted:
            continue
        if mig["status"] in FAILED_STATES:
            out.failed_records += 1
        else:
            out.evacuations[mig["instance_uuid"]] = out.evacuations.get(mig["instance_uuid"], 0) + 1
    out.zombies = len(set(rig.zombies()) & wanted)
    out.record = attrs.get(source, er.ATTRIBUTE) or ""
    return out


def assert_recovered(out: Outcome) -> None:
    """All recovered, none twice, the host's request done."""
    assert out.zombies == 0, out.summary()
    assert all(v == 1 for v in out.evacuations.values()), f"an instance was evacuated twice: {out.summary()}"
    assert out.once_each, out.summary()
    assert out.right_state == out.n, out.summary()
    record = er.parse(out.record)
    assert record is not None and record.state == er.DONE and record.detail == f"{out.n}/{out.n}", out.summary()
