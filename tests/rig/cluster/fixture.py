"""pytest fixtures for the cluster rig (filled in by the rig's own module)."""
