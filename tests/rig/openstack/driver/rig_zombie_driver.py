"""A fake nova virt driver that tells the truth about zombies (test rig only).

nova's ``FakeDriverWithoutFakeNodes`` keeps guests in memory: when nova-compute
dies its guests vanish, so nothing can notice an instance running on two hosts.
This subclass mirrors its guest table to ``<rig>/guests/<host>.json`` on every
change and reloads it at start-up, like a hypervisor whose guests outlive the
nova-compute process. Consequences:

- killing nova-compute, or cutting the host off the network, leaves its guests
  "running" in the record (a zombie if the instance is evacuated meanwhile);
- only a power loss (``rig_guest_records.wipe_guests`` + power file ``off``, done by
  the rig's power-off helper or the cluster rig's BMC) removes them;
- after a restart ``list_instance_uuids()`` reports the leftovers, so nova's
  ``_destroy_evacuated_instances`` really destroys evacuated guests on the source.

Loaded with ``[DEFAULT] compute_driver = rig_zombie_driver.ZombieTruthfulDriver``;
needs ``COMPUTEHA_RIG_DIR`` in the environment and this directory on PYTHONPATH.
"""
import os
import threading
from pathlib import Path

from nova.compute import power_state
from nova.virt import fake

import rig_guest_records as records


class _GuestTable(dict):
    """The driver's uuid -> FakeInstance dict, saved after every mutation."""

    def __init__(self, on_change):
        super().__init__()
        self._on_change = on_change

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._on_change()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._on_change()

    def pop(self, *args):
        value = super().pop(*args)
        self._on_change()
        return value


class ZombieTruthfulDriver(fake.FakeDriverWithoutFakeNodes):

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only=read_only)
        self._rig_dir = Path(os.environ["COMPUTEHA_RIG_DIR"])
        self._lock = threading.RLock()
        self._loading = False
        self.instances = _GuestTable(self._save)

    # -- persistence -------------------------------------------------------
    def _record(self, inst):
        return {"name": inst.name, "state": power_state.STATE_MAP.get(inst.state, str(inst.state)),
                "running": inst.state == power_state.RUNNING}

    def _save(self):
        if self._loading or self._host is None:
            return
        with self._lock:
            records.write_guests(self._rig_dir, self._host,
                                 {u: self._record(i) for u, i in list(self.instances.items())})

    def init_host(self, host):
        if records.power_state(self._rig_dir, host) != records.POWER_ON:
            # A powered-off machine runs nothing, nova-compute included.
            raise RuntimeError("host %s has no power (see %s)" % (host, records.power_file(self._rig_dir, host)))
        super().init_host(host)
        with self._lock:
            self._loading = True
            try:
                for uuid, guest in records.read_guests(self._rig_dir, host).items():
                    state = power_state.RUNNING if guest.get("running") else power_state.SHUTDOWN
                    self.instances[uuid] = fake.FakeInstance(guest.get("name", uuid), state, uuid)
            finally:
                self._loading = False
        self._save()

    # -- state changes that do not touch the dict itself ---------------------
    def _saving(name):
        def method(self, *args, **kwargs):
            try:
                return getattr(super(ZombieTruthfulDriver, self), name)(*args, **kwargs)
            finally:
                self._save()
        method.__name__ = name
        return method

    power_off = _saving("power_off")
    power_on = _saving("power_on")
    reboot = _saving("reboot")
    unrescue = _saving("unrescue")
    pause = _saving("pause")
    unpause = _saving("unpause")
    suspend = _saving("suspend")
    resume = _saving("resume")
    del _saving
