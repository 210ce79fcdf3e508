"""Test-suite wiring: each rig contributes its fixtures as a pytest plugin, and the secret
scan watches the whole session (COMPUTEHA_SECRET_SCAN=0 switches it off for local debugging)."""

pytest_plugins = [
    "tests.rig.openstack.fixture",
    "tests.rig.bmc.fixture",
    "tests.rig.cluster.fixture",
    "tests.tools.secret_scan_plugin",
]
