"""Schemathesis hooks that sign each request with ATS §3 signatures (``SCHEMATHESIS_HOOKS``).

Schemathesis builds a request from the description, then sends it. The signature covers the
target and body exactly as transmitted, so it is computed at send time: at generation the auth
provider sets the four ``X-`` headers of the description's security schemes with a placeholder
signature (so schemathesis knows the request carries credentials, and can take them away to
check that the node refuses it), and the ``before_call`` hook hands ``requests`` a
``SigningAuth`` that replaces the placeholder by the real signature of the prepared request.
A request schemathesis stripped of its credentials, or gave invented ones, is sent as it is.

The apps come from the environment, never from a file of this project:

- ``ATS_APP_ID`` and ``ATS_APP_SECRET`` — the app that signs (a consumer, typically);
- ``ATS_ADMIN_APP_ID`` and ``ATS_ADMIN_APP_SECRET`` (optional) — a provider-admin app that signs
  the operations ATS reserves to that role (decisions, revocations, audit, statistics, sync);
- ``ATS_NODE_APP_ID`` and ``ATS_NODE_APP_SECRET`` (optional) — a node app bound to a child of
  the node, which signs the cascade pushes (``pushCatalog``, ATS-CAS-03);
- ``ATS_SIGNATURE_METHOD`` (optional) — ``HMAC-SM3`` (the default) or ``HMAC-SHA256``.

Use: ``SCHEMATHESIS_HOOKS=conformance.schemathesis_hooks schemathesis run
profiles/openapi.bundled.yaml --url https://node.example/api/v1``.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

from conformance.signing import DEFAULT_SIGNATURE_METHOD, SigningAuth

__all__ = ["ADMIN_OPERATIONS", "NODE_OPERATIONS", "PLACEHOLDER", "auth_for"]

# Not hex, so a placeholder that reached the node unsigned is refused (401), never accepted.
PLACEHOLDER = "ats-signature-computed-at-send-time"
# ATS-SUB-03, ATS-AUD-05, ATS-STAT-01, ATS-CAS-01: operations only a provider-admin may call.
ADMIN_OPERATIONS = frozenset(
    {"decideSubscription", "revokeSubscription", "listAuditEvents", "getStats", "syncCatalog"}
)
# ATS-CAS-03: operations only a child's node app may call.
NODE_OPERATIONS = frozenset({"pushCatalog"})


def _auth(id_variable: str, secret_variable: str) -> SigningAuth | None:
    app_id, secret = os.environ.get(id_variable), os.environ.get(secret_variable)
    if not app_id or not secret:
        return None
    method = os.environ.get("ATS_SIGNATURE_METHOD", DEFAULT_SIGNATURE_METHOD)
    return SigningAuth(app_id, secret, signature_method=method, placeholder=PLACEHOLDER)


def auth_for(operation_id: str | None) -> SigningAuth:
    """The signing auth of an operation: the admin or node app's for theirs, when given."""
    default = _auth("ATS_APP_ID", "ATS_APP_SECRET")
    if default is None:
        raise RuntimeError("set ATS_APP_ID and ATS_APP_SECRET to the app that signs")
    if operation_id in ADMIN_OPERATIONS:
        return _auth("ATS_ADMIN_APP_ID", "ATS_ADMIN_APP_SECRET") or default
    if operation_id in NODE_OPERATIONS:
        return _auth("ATS_NODE_APP_ID", "ATS_NODE_APP_SECRET") or default
    return default


def _operation_id(case: Any) -> str | None:
    definition = getattr(case.operation, "definition", None)
    raw = getattr(definition, "raw", None)
    return raw.get("operationId") if isinstance(raw, dict) else None


# No caching: the app depends on the operation.
@schemathesis.auth(refresh_interval=None)
class PlaceholderCredentials:
    """The security headers of the description, with a placeholder signature."""

    def get(self, case: Any, context: Any) -> str:
        return auth_for(_operation_id(case)).app_id

    def set(self, case: Any, data: str, context: Any) -> None:
        headers = dict(case.headers or {})
        headers.update(
            {
                "X-App-Id": data,
                "X-Timestamp": "0000000000000",
                "X-Nonce": "0" * 32,
                "X-Signature": PLACEHOLDER,
            }
        )
        case.headers = headers


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """The request is signed by ``requests`` once prepared: over its exact target and body."""
    kwargs["auth"] = auth_for(_operation_id(case))
