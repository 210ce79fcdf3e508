"""pytest fixtures for the bmc rig (filled in by the rig's own module)."""
