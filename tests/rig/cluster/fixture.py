"""pytest fixtures for the cluster rig.

``cluster_rig`` brings the rig up once per session and tears down only what it started: a
rig already running (``tests/rig/cluster/up.sh``) is reused and left running. One session
uses a rig at a time (an exclusive lock on ``<rig dir>/session.lock``, waited for up to
``CHA_CLUSTER_LOCK_WAIT`` seconds, default 900): fencing scenarios must not overlap.
Concurrent sessions need their own ``CHA_CLUSTER_RIG_DIR``, ``CHA_CLUSTER_PREFIX`` and
``CHA_CLUSTER_SUBNET``.
"""
from __future__ import annotations

import os
from typing import IO, Iterator

import pytest

from tests.rig import session_lock
from tests.rig.cluster.cluster import Cluster


def _lock(rig: Cluster) -> "IO[str]":
    handle = session_lock.hold(rig.root, float(os.environ.get("CHA_CLUSTER_LOCK_WAIT", "900")))
    if handle is None:
        pytest.fail(f"cluster rig {rig.root} is in use by another test session", pytrace=False)
    return handle


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
