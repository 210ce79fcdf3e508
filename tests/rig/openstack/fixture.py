"""pytest fixtures for the openstack rig (filled in by the rig's own module)."""
