"""computeha: Instance HA for OpenStack compute nodes under Pacemaker."""

__version__ = "0.1.0"
