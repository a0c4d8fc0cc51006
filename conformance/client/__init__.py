"""The one HTTP client of the harness: ``NodeClient`` and what its callers name.

``node`` holds the client (signing, pacing, reachability, evidence); the bytes travel by one of
three transports: ``pooled`` (requests), ``raw`` (byte for byte over a socket) and ``burst``
(pipelined over keep-alive connections). ``evidence`` records the exchanges and holds the
masking; ``deadline`` bounds each exchange as a whole.
"""

from __future__ import annotations

from conformance.client.burst import BurstAnswer
from conformance.client.evidence import EVIDENCE_BODY, EvidenceLog
from conformance.client.exchange import Exchange, NodeUnreachable
from conformance.client.node import MAX_BODY, Headers, NodeClient
from conformance.client.pacing import Pacer

__all__ = [
    "EVIDENCE_BODY",
    "MAX_BODY",
    "BurstAnswer",
    "EvidenceLog",
    "Exchange",
    "Headers",
    "NodeClient",
    "NodeUnreachable",
    "Pacer",
]
