"""The evidence of a clause, and the masking that keeps secrets out of it.

Masking lives here alone: ``masked_headers`` (a request's headers before they are recorded) and
``EvidenceLog.scrub`` (every text written into the evidence).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from conformance.client.exchange import Exchange

EVIDENCE_BODY = 4096
MASK = "***"


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` as recorded: the ``X-Signature`` value replaced by ``***`` (ATS chapter 3)."""
    return {k: (MASK if k.lower() == "x-signature" else str(v)) for k, v in headers.items()}


class EvidenceLog:
    """The evidence of one clause: exchanges and notes, with the run's secrets removed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.entries: list[dict[str, Any]] = []
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def note(self, text: str) -> None:
        """Adds a line of explanation to the evidence."""
        self.entries.append({"note": self.scrub(text)})

    def add(self, ex: Exchange) -> None:
        """Adds an exchange, bodies cut at 4 KiB with their original size noted."""
        self.entries.append(
            {
                "method": ex.method,
                "target": self.scrub(ex.target),
                "request_headers": {k: self.scrub(v) for k, v in ex.request_headers.items()},
                "request_body": self._cut(ex.request_body),
                "request_body_size": len(ex.request_body),
                "status": ex.status,
                "headers": {k: self.scrub(v) for k, v in ex.headers.items()},
                "body": self._cut(ex.body),
                "body_size": len(ex.body),
                "truncated": ex.truncated,
                "elapsed_s": round(ex.elapsed_s, 4),
                "error": self.scrub(ex.error) if ex.error else None,
                "summary": self.scrub(ex.summary()),
            }
        )

    def _cut(self, body: bytes) -> str:
        return self.scrub(body[:EVIDENCE_BODY].decode("utf-8", "replace"))
