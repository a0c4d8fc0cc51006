"""Conformance suite for nodes of the national data sharing and exchange platform (ATS-1.0)."""

from __future__ import annotations

__version__ = "0.1.0"
STANDARD = "ATS-1.0"
