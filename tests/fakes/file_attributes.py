"""TEST-ONLY substitute for the cluster node-attribute store: a JSON file.

The OpenStack rig has no Pacemaker, so the integration tests of fence_compute
run the agent through `tests.fakes.fence_compute_file_attrs`, which injects
this store instead of `CibAttributes` (crm_attribute). Never used by the
installed agents; the real-cluster tests use the CIB.
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

ENV = "COMPUTEHA_TEST_ATTRS_FILE"


class FileAttributes:
    """Same semantics as MemoryAttributes (empty value == unset), persisted with a lock."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[Dict[str, Dict[str, str]]]:
        with open(self.path + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(self.path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                data = {}
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                tmp = self.path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as handle:
                    json.dump(data, handle)
                os.replace(tmp, self.path)

    def get(self, node: str, name: str) -> Optional[str]:
        with self._locked() as data:
            return data.get(name, {}).get(node) or None

    def get_all(self, name: str) -> Dict[str, str]:
        with self._locked() as data:
            return {n: v for n, v in data.get(name, {}).items() if v}

    def set(self, node: str, name: str, value: str) -> None:
        with self._locked() as data:
            data.setdefault(name, {})[node] = value

    def delete(self, node: str, name: str) -> None:
        with self._locked() as data:
            data.setdefault(name, {})[node] = ""
