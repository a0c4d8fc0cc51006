"""The evidence masker: what no report, evidence entry, attachment or log line may show.

Every writer of evidence uses it — the client's exchanges, the requests the emulated neighbours
received, the report writers, the allure attachments — so that a secret is removed the same way
everywhere. It removes three things: the values of credential headers (``X-Signature``, ATS §3,
and the HTTP credentials ``Authorization``, ``Proxy-Authorization``, ``Cookie``), the secrets of
the run it is told (app secrets, wherever they appear: URL, header, body, message), and any
value written as an assignment to a credential name (``secret=…``, ``"X-Signature": "…"``), for
the writers that no longer know the run's secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
SECRET_HEADERS = frozenset({"x-signature", "authorization", "proxy-authorization", "cookie"})
_SECRET_ASSIGNED = re.compile(
    r"""(?ix)
    ( ["']?(?:x-signature|secret|authorization)["']? \s* [:=] \s* ["']? )
    (?! \*\*\* )
    ( [^\s"',;}]+ )
    """
)


class Masker:
    """Masks evidence with the run's ``secrets`` (longest first, so that a secret holding
    another is masked whole) and the credential headers and assignments of any run."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def text(self, text: str) -> str:
        """``text`` with every known secret and every assigned credential value masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return _SECRET_ASSIGNED.sub(lambda m: m.group(1) + MASK, text)

    def headers(self, headers: Mapping[str, Any]) -> dict[str, str]:
        """Header values as text, those of credential headers replaced by ``***``."""
        return {
            str(name): MASK if str(name).lower() in SECRET_HEADERS else self.text(str(value))
            for name, value in headers.items()
        }

    def body(self, body: bytes, limit: int) -> str:
        """The first ``limit`` bytes of a body as text, masked."""
        return self.text(body[:limit].decode("utf-8", "replace"))

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it masked, and the values of credential
        headers among mapping members."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                str(k): MASK
                if str(k).lower() in SECRET_HEADERS and isinstance(v, str)
                else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


# The masker of a writer that knows no secret of the run: credential headers and assignments.
ANY_RUN = Masker()


def mask_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Header values as text, those of credential headers replaced by ``***``."""
    return ANY_RUN.headers(headers)
