"""The rig's test-only nova virt driver and its on-disk guest records.

This directory is put on nova-compute's PYTHONPATH (see ``commands.compute_command``),
so its modules have names that cannot shadow anything in the OpenStack venv.
"""
