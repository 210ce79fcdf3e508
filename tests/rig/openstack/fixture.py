"""pytest fixtures for the OpenStack rig.

- ``openstack_rig`` (session): the rig, brought up once per test run. A healthy rig
  is reused (fast iteration); it is torn down at the end only if this session built it,
  unless ``COMPUTEHA_KEEP_RIG=1``. If it cannot be installed or started, tests that need
  it FAIL when ``CI`` is set and are skipped (with the reason) otherwise.
- ``openstack_cloud`` (function): the same rig, reset after each test: every compute
  powered on, running, enabled and not forced down; servers the test created deleted.

One rig serves one test session at a time: the session holds an exclusive lock on
``<rig>/session.lock`` (another session waits up to ``COMPUTEHA_RIG_LOCK_WAIT`` seconds,
default 900). Run concurrent sessions on separate rigs with ``COMPUTEHA_RIG_DIR`` and
``COMPUTEHA_RIG_PORT_OFFSET``.

Tests using either fixture are marked ``integration`` and ``openstack`` automatically.
"""
from __future__ import annotations

import os

import pytest

from tests.rig import session_lock
from tests.rig.openstack.cloud import OpenStackRig, RigNotInstalled

_FIXTURES = ("openstack_rig", "openstack_cloud")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in _FIXTURES):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.openstack)


def _unavailable(reason: str):
    msg = "OpenStack rig unavailable: %s" % reason
    if _in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def _lock_session(rig: OpenStackRig):
    """Exclusive use of the rig for this session; the lock dies with the process."""
    return session_lock.hold(rig.paths.root, float(os.environ.get("COMPUTEHA_RIG_LOCK_WAIT", "900")))


@pytest.fixture(scope="session")
def openstack_rig():
    rig = OpenStackRig()
    built = False
    lock = _lock_session(rig)
    if lock is None:
        _unavailable("another test session holds %s" % (rig.paths.root / "session.lock"))
    problem = None
    try:
        built = rig.up(say=lambda m: print("openstack rig: %s" % m))
    except RigNotInstalled as exc:
        problem = str(exc)
    except Exception as exc:  # noqa: BLE001 - any bring-up failure makes the rig unavailable
        rig.down(say=lambda m: None)
        problem = "bring-up failed: %s: %s (logs in %s)" % (type(exc).__name__, exc, rig.logs)
    if problem is not None:
        lock.close()
        _unavailable(problem)
    try:
        yield rig
    finally:
        if built and os.environ.get("COMPUTEHA_KEEP_RIG") != "1":
            rig.down(say=lambda m: None)
        lock.close()


@pytest.fixture
def openstack_cloud(openstack_rig):
    rig = openstack_rig
    rig.restore_computes()
    before = rig.server_ids()
    yield rig
    # Computes first: deleting a server on a dead-but-not-yet-down host would hang.
    rig.restore_computes()
    created = rig.server_ids() - before
    if created:
        rig.delete_servers(created)
