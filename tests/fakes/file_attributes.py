"""TEST-ONLY substitute for the cluster node-attribute store: a JSON file.

The OpenStack rig has no Pacemaker, so tests that run the real agents there keep
the cluster records in a JSON file named by $COMPUTEHA_TEST_ATTRS_FILE (`ENV`):
fence_compute through `tests.fakes.fence_compute_file_attrs`, the NovaEvacuate
worker through `tests.unit.evacuation_test_worker`. Both inject this store
instead of `CibAttributes` / `AttrdAttributes`. Never used by the installed
agents; the real-cluster tests use the CIB.

Semantics (same interface as `computeha.ocf_lib.attrs.NodeAttributes`, same as
`tests.fakes.memory_attributes.MemoryAttributes`): an empty value reads as
unset; `delete` removes the entry. Shared between processes and threads: every
access holds an exclusive flock on `<path>.lock`; a change is written to a
temporary file, fsynced and renamed over `<path>` (then the directory is
fsynced), so a reader sees the previous or the next content, never a partial
one. The data, lock and temporary files are created with mode 0600.
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

ENV = "COMPUTEHA_TEST_ATTRS_FILE"

Data = Dict[str, Dict[str, str]]  # attribute name -> node -> value


class FileAttributes:
    """Node attributes in a JSON file, shared between processes (tests only)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[Data]:
        lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            after = json.dumps(data, sort_keys=True)
            if after != before:
                self._write(after)
        finally:
            os.close(lock_fd)  # releases the flock

    def _read(self) -> Data:
        # created (empty, 0600) if missing, so the file exists once the store was used
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, encoding="utf-8") as handle:
            text = handle.read()
        return json.loads(text) if text.strip() else {}

    def _write(self, text: str) -> None:
        tmp = self.path + ".tmp"  # one writer at a time: we hold the lock
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a leftover from an earlier run keeps its mode otherwise
            with os.fdopen(os.dup(fd), "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

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
            nodes = data.get(name)
            if nodes is not None:
                nodes.pop(node, None)
                if not nodes:
                    del data[name]
