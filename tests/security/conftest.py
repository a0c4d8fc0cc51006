"""Fixtures of the security and audit tests; the environment helpers live in secenv.py."""

from __future__ import annotations

from secenv import https_env, lab_env, pki

__all__ = ["https_env", "lab_env", "pki"]
