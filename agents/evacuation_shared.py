"""The state the evacuation engine's steps share, and the events that come back to its main thread.

One `Shared` is made by the Engine and handed to every step (gate, plan, issue, watch, records):
the Nova and cluster adapters, the settings, the pool and the event queue, and the bookkeeping more
than one step reads or writes (the tracked hosts, the instances with a task running, the hosts left
alone, when each host's listing was taken). Everything here is changed on the main thread only,
except HostProgress objects, which pool threads change under `lock`.

Pool threads report through `events` with one of three typed events: an instance's outcome, a
failed host's migration listing, or a new listing of its servers and migrations.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Union

from computeha.ocf_lib.attrs import NodeAttributes
from computeha.ocf_lib.nova import Migration, Nova, Server, Service

from .evacuation_outcome import Outcome
from .evacuation_params import Settings
from .evacuation_store import HostProgress, ProgressStore

FRESH_LISTING = 60.0  # seconds a server listing is trusted for an instance's first evacuate call

Matcher = Callable[[str, Sequence[Service]], Optional[Service]]  # Pacemaker node -> its nova-compute service


@dataclass(frozen=True)
class InstanceOutcome:
    """What an evacuate, inspect or confirm task (or a migration listing) found about one instance."""
    node: str
    inst_id: str
    outcome: Outcome


@dataclass(frozen=True)
class MigrationsListed:
    """A migration listing of a failed host came back (evacuation_watch.Watcher.poll)."""
    node: str
    started: float  # engine clock when the listing started
    migrations: Optional[List[Migration]]  # our records; None: the listing failed


@dataclass(frozen=True)
class HostRelisted:
    """A new server and migration listing of a failed host came back (evacuation_watch.Watcher.relist_stale)."""
    node: str
    started: float  # monotonic time when the listing started
    servers: Optional[List[Server]]  # the servers on the failed host; None: the listing failed
    migrations: Optional[List[Migration]]


Event = Union[InstanceOutcome, MigrationsListed, HostRelisted]


class Shared:
    def __init__(self, nova: Nova, records: NodeAttributes, progress: Optional[NodeAttributes],
                 settings: Settings, store: ProgressStore, log: logging.Logger, node: str,
                 clock: Callable[[], float], match: Matcher) -> None:
        self.nova = nova
        self.records = records
        self.progress = progress
        self.s = settings
        self.store = store
        self.log = log
        self.node = node
        self.clock = clock
        self.match = match
        self.events: "queue.Queue[Event]" = queue.Queue()
        self.stop = threading.Event()
        # one thread more than dispatch allows calls: a confirmation listing never queues behind them
        self.pool = ThreadPoolExecutor(max_workers=settings.api_concurrency + 1, thread_name_prefix="evacuate")
        self.lock = threading.Lock()  # guards HostProgress objects shared with the worker threads
        self.hosts: Dict[str, HostProgress] = {}
        self.running: Dict[str, str] = {}  # instance id -> node
        self.refused: Set[str] = set()  # flagged nodes left alone (no fence evidence, mass-failure guard)
        self.gate_next: Dict[str, float] = {}  # node -> monotonic time of its next judgement
        self.planned: Dict[str, float] = {}  # node -> monotonic time of the server listing
        self.fresh_listing = FRESH_LISTING
        # instances whose migration is finished, waiting for a free call slot to be confirmed (id -> node)
        self.to_confirm: Dict[str, str] = {}
        self._said: Dict[str, str] = {}  # node -> last message logged about it (log changes only)

    def say(self, node: str, level: int, message: str) -> None:
        """Log a message about a node (or a "*topic") only when it differs from the last one."""
        if self._said.get(node) != message:
            self._said[node] = message
            self.log.log(level, "%s", message)

    def unsay(self, node: str) -> None:
        """The condition last said about `node` is over: say it again if it comes back."""
        self._said.pop(node, None)

    def hold(self, node: str) -> None:
        """No new judgement of `node` before gate_recheck seconds."""
        self.gate_next[node] = time.monotonic() + self.s.gate_recheck

    def held(self, node: str) -> bool:
        return time.monotonic() < self.gate_next.get(node, 0)


__all__ = ["Shared", "Event", "InstanceOutcome", "MigrationsListed", "HostRelisted", "Matcher", "FRESH_LISTING"]
