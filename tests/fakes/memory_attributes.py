"""TEST-ONLY in-memory node-attribute store for unit tests (the interface of
`computeha.ocf_lib.attrs.NodeAttributes`; empty value == unset)."""
from __future__ import annotations

from typing import Dict, Optional


class MemoryAttributes:
    """In-memory store for unit tests (same semantics: empty value == unset)."""

    def __init__(self) -> None:
        self.data: Dict[str, Dict[str, str]] = {}

    def get(self, node: str, name: str) -> Optional[str]:
        return self.data.get(name, {}).get(node) or None

    def get_all(self, name: str) -> Dict[str, str]:
        return {n: v for n, v in self.data.get(name, {}).items() if v}

    def set(self, node: str, name: str, value: str) -> None:
        self.data.setdefault(name, {})[node] = value

    def delete(self, node: str, name: str) -> None:
        self.data.setdefault(name, {})[node] = ""
