"""pytest plugin: one end-to-end stack (both rigs joined, configured from our rendering) for
every end-to-end module of the session, and a per-test baseline.

``e2e_stack`` (session): attaches the computes' nova-computes to their cluster nodes, pushes our
CIB and waits until everything is ready; at the end the rigs' own configuration and
nova-computes are put back (the rig fixtures own the rigs). The end-to-end modules run last
(tests/conftest.py), so nothing else sees the reconfigured rigs.
``stack`` (function): the baseline restored before the test (cables, power, BMC and Nova
faults cleared, everything ready), cables and power restored after it.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.e2e.scenario import Stack
from tests.rig.cluster.cluster import Cluster


@pytest.fixture(scope="session")
def e2e_stack(cluster_rig: Cluster, openstack_rig) -> Iterator[Stack]:
    stack = Stack(cluster=cluster_rig, cloud=openstack_rig)
    try:
        stack.attach()
        stack.configure()
        stack.wait_ready(timeout=420)
        yield stack
    finally:
        stack.down()


@pytest.fixture
def stack(e2e_stack: Stack) -> Iterator[Stack]:
    e2e_stack.restore()
    yield e2e_stack
    e2e_stack.unblock_nova_api()
    e2e_stack.unblock_bmc()
    for n in e2e_stack.cluster.layout.nodes:
        e2e_stack.bmc_fault(n.name)
    e2e_stack.cluster.restore_all()
