"""Fixtures of the reference node tests; the node helpers live in refnode.py."""

from __future__ import annotations

from refnode import node, node_process

__all__ = ["node", "node_process"]
