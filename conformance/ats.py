"""The words of ATS-1.0 both sides speak: endpoint paths, header names, the freshness rules of a
signature and the error table.

The harness (checks, client, emulated neighbours) and the reference node import these names
instead of writing them again. The module sits on the ground floor: it imports nothing of the
harness or of the reference node. The error table, the header patterns and the cascade headers
are data (``profiles/vocabulary.yaml``) and are read from it; the paths and header names are
names a program refers to, so they are written here once, and a test holds them to the
vocabulary's endpoint table.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from conformance.profile import load_vocabulary

# ATS-API-01: every endpoint lives under /api/v1.
API_PREFIX = "/api/v1"
HEALTH = f"{API_PREFIX}/health"
NODE = f"{API_PREFIX}/node"
CATALOG = f"{API_PREFIX}/catalog/resources"
SHARE_PREFIX = f"{API_PREFIX}/share/"
SHARE_SUFFIX = "/query"
SUBSCRIPTIONS = f"{API_PREFIX}/subscriptions"
CASCADE_PUSH = f"{API_PREFIX}/cascade/catalog"
CASCADE_SYNC = f"{API_PREFIX}/cascade/sync"
AUDIT_EVENTS = f"{API_PREFIX}/audit/events"
STATS = f"{API_PREFIX}/stats"
# A path ATS-1.0 does not define, for ATS-API-04 (404 whatever the method).
UNKNOWN_PATH = f"{API_PREFIX}/ats-no-such-endpoint"

# Chapter 3: the signature headers, in the order a request carries them.
X_APP_ID = "X-App-Id"
X_TIMESTAMP = "X-Timestamp"
X_NONCE = "X-Nonce"
X_SIGNATURE_METHOD = "X-Signature-Method"
X_SIGNATURE = "X-Signature"
SIGNATURE_HEADERS = (X_APP_ID, X_TIMESTAMP, X_NONCE, X_SIGNATURE_METHOD, X_SIGNATURE)
# ATS-API-02.
X_REQUEST_ID = "X-Request-Id"
# Chapter 8: the routing headers (vocabulary.yaml ``cascade_headers``).
X_HOP_LIMIT = "X-Hop-Limit"
X_ORIGIN_NODE = "X-Origin-Node"
X_ORIGIN_APP = "X-Origin-App"
X_ROUTE = "X-Route"
CASCADE_HEADERS = (X_HOP_LIMIT, X_ORIGIN_NODE, X_ORIGIN_APP, X_ROUTE)

# ATS-AUTH-04: a timestamp more than 300 s from the receiver's clock is refused.
TIMESTAMP_WINDOW_S = 300
# ATS-AUTH-05: a nonce the same app used within the last 600 s is refused.
NONCE_MEMORY_S = 600


def catalog_entry_path(code: str) -> str:
    """The catalog entry path of ``code`` (ATS §4; the slash of the code kept as it is)."""
    return f"{CATALOG}/{code}"


def share_query_path(code: str) -> str:
    """The share query path of ``code`` (ATS §5; the slash of the code kept as it is)."""
    return f"{SHARE_PREFIX}{code}{SHARE_SUFFIX}"


def share_code(path: str) -> str | None:
    """The resource code a share query ``path`` names (``%2F`` read as ``/``), else None."""
    if (
        path.startswith(SHARE_PREFIX)
        and path.endswith(SHARE_SUFFIX)
        and len(path) > len(SHARE_PREFIX) + len(SHARE_SUFFIX)
    ):
        code = path[len(SHARE_PREFIX) : -len(SHARE_SUFFIX)]
        return code.replace("%2F", "/").replace("%2f", "/")
    return None


def subscription_path(subscription_id: str) -> str:
    """The path of one subscription (ATS §6)."""
    return f"{SUBSCRIPTIONS}/{subscription_id}"


@functools.cache
def _patterns() -> Mapping[str, re.Pattern[str]]:
    return {
        name: re.compile(pattern.removeprefix("^").removesuffix("$"), re.ASCII)
        for name, pattern in load_vocabulary()["patterns"].items()
    }


def pattern(name: str) -> re.Pattern[str]:
    """The shape of an identifier or header of §0 and chapter 3 (``timestamp_ms``, ``nonce``,
    ``app_id``, ``request_id``, ``secret``), for ``fullmatch``."""
    return _patterns()[name]


@functools.cache
def error_codes() -> Mapping[str, int]:
    """The error table of ATS §1: each code and the status it is answered with."""
    return {
        str(code): int(entry["status"]) for code, entry in load_vocabulary()["error_codes"].items()
    }


@functools.cache
def codes_by_status() -> Mapping[int, frozenset[str]]:
    """The error table of ATS §1 by status: the codes each error status may carry."""
    table: dict[int, set[str]] = {}
    for code, status in error_codes().items():
        table.setdefault(status, set()).add(code)
    return {status: frozenset(codes) for status, codes in table.items()}


def default_code(status: int) -> str | None:
    """The code a status carries when nothing more specific applies: the first the table lists
    for it (403 ``FORBIDDEN``, not ``SUBSCRIPTION_REQUIRED``), else None."""
    return next((code for code, s in error_codes().items() if s == status), None)


def status_of(code: str) -> int:
    """The status the error ``code`` is answered with; ``KeyError`` for a code ATS has not."""
    return error_codes()[code]
