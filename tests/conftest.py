"""Test-suite wiring: each rig contributes its fixtures as a pytest plugin."""

pytest_plugins = [
    "tests.rig.openstack.fixture",
    "tests.rig.bmc.fixture",
    "tests.rig.cluster.fixture",
]
