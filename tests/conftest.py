"""Test-suite wiring: each rig contributes its fixtures as a pytest plugin, and the secret
scan watches the whole session (COMPUTEHA_SECRET_SCAN=0 switches it off for local debugging)."""

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
    nova-compute runs): they run after every other test that uses those rigs."""
    items.sort(key=lambda item: "/integration/test_e2e_" in str(item.fspath))
