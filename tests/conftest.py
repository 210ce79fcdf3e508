"""Test-suite wiring: each rig contributes its fixtures as a pytest plugin, and the secret
scan watches the whole session (COMPUTEHA_SECRET_SCAN=0 switches it off for local debugging)."""

import time

pytest_plugins = [
    "tests.rig.openstack.fixture",
    "tests.rig.bmc.fixture",
    "tests.rig.cluster.fixture",
    "tests.tools.secret_scan_plugin",
    "tests.tools.fault_report",
    "tests.e2e.fixture",
]


def pytest_collection_modifyitems(session, config, items):
    """The end-to-end scenarios reconfigure both shared rigs (the cluster's CIB, where each host's
    nova-compute runs): they run after every other test that uses those rigs. Before them, the
    cluster rig's own tests, which move a compute's nova-compute into a cluster node and back:
    right after them a server booted on that compute went to ERROR (seen twice, cause not yet
    found), so the OpenStack-only tests run before them."""
    def order(item) -> tuple:
        path = str(item.fspath)
        return ("/integration/test_e2e_" in path, "/integration/test_cluster_rig" in path)
    items.sort(key=order)


_STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The suite's own wall time, next to pytest's ten slowest tests (--durations=10 in pyproject)."""
    spent = time.monotonic() - _STARTED
    terminalreporter.write_line(f"suite wall time: {spent:.0f} s ({spent / 60:.1f} min), exit status {exitstatus}")
