"""Per-instance runtime state under HA_RSCTMP (emptied at boot).

Keyed by OCF_RESOURCE_INSTANCE so that two instances never share a file.
Writes are atomic (temporary file, fsync, rename): a SIGKILL at any line
leaves either the old or the new content, never a torn file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from typing import Any, Mapping, Optional

DEFAULT_RSCTMP = "/run/resource-agents"
_SAFE = re.compile(r"[^A-Za-z0-9_.:@-]")
_MAX_NAME = 150


def rsctmp(env: Mapping[str, str]) -> str:
    return env.get("HA_RSCTMP") or DEFAULT_RSCTMP


class StateDir:
    """A directory of small state files for one resource instance."""

    def __init__(self, base: str, agent: str, instance: str) -> None:
        name = _SAFE.sub("_", instance or agent)
        if len(name) > _MAX_NAME:  # keep within NAME_MAX, stay unique per instance
            digest = hashlib.sha256((instance or agent).encode("utf-8", "surrogateescape")).hexdigest()[:16]
            name = name[:_MAX_NAME - 17] + "-" + digest
        self.path = os.path.join(base, f"computeha-{_SAFE.sub('_', agent)[:40]}-{name}")

    def _file(self, name: str) -> str:
        return os.path.join(self.path, _SAFE.sub("_", name))

    def ensure(self) -> None:
        os.makedirs(self.path, mode=0o700, exist_ok=True)

    def exists(self, name: str) -> bool:
        return os.path.exists(self._file(name))

    def read_text(self, name: str) -> Optional[str]:
        try:
            with open(self._file(name), encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write_text(self, name: str, text: str) -> None:
        self.ensure()
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._file(name))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def read_json(self, name: str, default: Any = None) -> Any:
        text = self.read_text(name)
        if text is None:
            return default
        try:
            return json.loads(text)
        except ValueError:
            return default  # a foreign or damaged file is treated as absent

    def write_json(self, name: str, data: Any) -> None:
        self.write_text(name, json.dumps(data, sort_keys=True))

    def remove(self, name: str) -> None:
        try:
            os.unlink(self._file(name))
        except FileNotFoundError:
            pass

    def clear(self) -> None:
        """Remove every state file of this instance (stop)."""
        if not os.path.isdir(self.path):
            return
        for entry in os.listdir(self.path):
            try:
                os.unlink(os.path.join(self.path, entry))
            except OSError:
                pass
        try:
            os.rmdir(self.path)
        except OSError:
            pass
