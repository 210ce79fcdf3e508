"""End-to-end scenarios: the OpenStack rig and the cluster rig joined, configured from our
own ``crm_templates`` rendering, driven by real faults (see ``scenario.py``)."""
