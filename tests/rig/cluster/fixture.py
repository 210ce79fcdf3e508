"""pytest fixtures for the cluster rig.

``cluster_rig`` brings the rig up once per session and tears down only what it started: a
rig already running (``tests/rig/cluster/up.sh``) is reused and left running. One session
uses a rig at a time (an exclusive lock on ``<rig dir>/session.lock``, waited for up to
``CHA_CLUSTER_LOCK_WAIT`` seconds, default 900): fencing scenarios must not overlap.
Concurrent sessions need their own ``CHA_CLUSTER_RIG_DIR``, ``CHA_CLUSTER_PREFIX`` and
``CHA_CLUSTER_SUBNET``.
"""
from __future__ import annotations

import fcntl
import os
import time
from typing import IO, Iterator

import pytest

from tests.rig.cluster.cluster import Cluster


def _lock(rig: Cluster) -> "IO[str]":
    rig.root.mkdir(parents=True, exist_ok=True)
    fh = open(rig.root / "session.lock", "a+")
    deadline = time.monotonic() + float(os.environ.get("CHA_CLUSTER_LOCK_WAIT", "900"))
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            if time.monotonic() >= deadline:
                fh.close()
                pytest.fail(f"cluster rig {rig.root} is in use by another test session",
                            pytrace=False)
            time.sleep(1)


@pytest.fixture(scope="session")
def cluster_rig() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the cluster rig needs root (network and mount namespaces)")
    rig = Cluster()
    lock = _lock(rig)
    try:
        started = not rig.is_up()
        if started:
            rig.up()
        try:
            yield rig
        finally:
            if started:
                rig.down()
    finally:
        lock.close()


@pytest.fixture
def converged_cluster(cluster_rig: Cluster) -> Cluster:
    """The session rig back at baseline: all nodes powered, connected, online, resources up."""
    cluster_rig.restore_all()
    cluster_rig.wait_converged(timeout=240)
    return cluster_rig
