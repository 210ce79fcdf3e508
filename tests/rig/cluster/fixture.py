"""pytest fixtures for the cluster rig.

``cluster_rig`` brings the rig up once per session and tears down only what it started: a
rig already running (``tests/rig/cluster/up.sh``) is reused and left running.
"""
from __future__ import annotations

import os
from typing import Iterator

import pytest

from tests.rig.cluster.cluster import Cluster


@pytest.fixture(scope="session")
def cluster_rig() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the cluster rig needs root (network and mount namespaces)")
    rig = Cluster()
    started = not rig.is_up()
    if started:
        rig.up()
    try:
        yield rig
    finally:
        if started:
            rig.down()


@pytest.fixture
def converged_cluster(cluster_rig: Cluster) -> Cluster:
    """The session rig back at baseline: all nodes powered, connected, online, resources up."""
    cluster_rig.restore_all()
    cluster_rig.wait_converged(timeout=240)
    return cluster_rig
