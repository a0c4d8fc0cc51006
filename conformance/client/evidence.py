"""The evidence of a clause, and the masking that keeps secrets out of it.

What is recorded is masked by the one masker of the suite (``conformance.masking``): a request's
headers before they are recorded, and every text written into the evidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conformance.client.exchange import Exchange
from conformance.masking import Masker

EVIDENCE_BODY = 4096


class EvidenceLog:
    """The evidence of one clause: exchanges and notes, with the run's secrets removed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.entries: list[dict[str, Any]] = []
        self.masker = Masker(secrets)

    def scrub(self, text: str) -> str:
        """``text`` with every known secret and credential value masked (``masking``)."""
        return self.masker.text(text)

    def note(self, text: str) -> None:
        """Adds a line of explanation to the evidence."""
        self.entries.append({"note": self.scrub(text)})

    def add(self, ex: Exchange) -> None:
        """Adds an exchange, bodies cut at 4 KiB with their original size noted."""
        self.entries.append(
            {
                "method": ex.method,
                "target": self.scrub(ex.target),
                "request_headers": self.masker.headers(ex.request_headers),
                "request_body": self._cut(ex.request_body),
                "request_body_size": len(ex.request_body),
                "status": ex.status,
                "headers": self.masker.headers(ex.headers),
                "body": self._cut(ex.body),
                "body_size": len(ex.body),
                "truncated": ex.truncated,
                "elapsed_s": round(ex.elapsed_s, 4),
                "error": self.scrub(ex.error) if ex.error else None,
                "summary": self.scrub(ex.summary()),
            }
        )

    def _cut(self, body: bytes) -> str:
        return self.masker.body(body, EVIDENCE_BODY)
