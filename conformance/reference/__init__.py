"""The ATS-1.0 reference node: FastAPI + uvicorn + SQLite, with fault switches.

``python -m conformance.reference --config NODE.yaml [--fault NAME ...]`` runs one node;
``conformance serve`` runs the reference topology. ``create_app`` builds one node's application.
"""

from __future__ import annotations
