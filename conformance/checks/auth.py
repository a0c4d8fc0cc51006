"""Checks of ATS-1.0 chapter 3 (AUTH): request signatures, clock window, nonces and roles."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Iterable, Mapping
from typing import Any

from conformance import signing
from conformance.ats import AUDIT_EVENTS as AUDIT
from conformance.ats import CATALOG, NODE, SUBSCRIPTIONS, share_query_path
from conformance.checks import CheckContext, Finding, Inconclusive, check
from conformance.checks._expect import (
    answer_text,
    expect_allowed,
    expect_status,
    request_text,
)
from conformance.checks._payloads import corpus, substitute
from conformance.checks.node import expect_unsigned_refused, fetch_descriptor
from conformance.client import Exchange

# ATS §3 roles, and the names of the target file's credentials that hold each of them.
_ROLE_APPS = {
    "consumer": ("consumer", "consumer_b"),
    "provider-admin": ("admin",),
    "node": ("as_parent", "as_child"),
}


def _send(
    ctx: CheckContext,
    method: str,
    target: str,
    *,
    app: str = "consumer",
    body: bytes = b"",
    sign_as: tuple[str, str, bytes] | None = None,
    timestamp: str | int | None = None,
    nonce: str | None = None,
    signature_method: str = "HMAC-SM3",
    set_headers: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
) -> Exchange:
    """Send ``method target`` signed by ``app``, as signed for ``sign_as`` when given.

    ``sign_as`` (method, target, body) is what the signature covers; the request sent may
    differ from it (ATS-AUTH-02). ``set_headers`` and ``drop`` change headers after signing.
    """
    signed_method, signed_target, signed_body = sign_as or (method, target, body)
    headers = dict(
        ctx.client.signed_headers(
            app,
            signed_method,
            signed_target,
            signed_body,
            timestamp=timestamp,
            nonce=nonce,
            signature_method=signature_method,
        )
    )
    if body:
        headers["Content-Type"] = "application/json"
    headers.update(set_headers or {})
    for name in drop:
        headers.pop(name, None)
    return ctx.client.raw(method, target, headers=headers, body=body)


def _share_target(ctx: CheckContext) -> str:
    return share_query_path(ctx.target.resources["unconditional"])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fresh_nonce() -> str:
    return signing.new_nonce()


def _expect_served(ctx: CheckContext) -> None:
    """A request signed now by the consumer is served; else the check cannot judge its clause."""
    control = _send(ctx, "GET", NODE)
    expect_status(control, 200, what="a request signed now by the consumer")


# ATS-AUTH-01 --------------------------------------------------------------------------------


@check("ATS-AUTH-01")
def missing_or_malformed_signature_rejected(ctx: CheckContext) -> None:
    """A request without, or with malformed, signature headers or an unlisted method is 401."""
    cases = corpus("auth-requests")
    for case in cases["malformed_credentials"]:
        now = _now_ms()
        values = {
            name: substitute(str(value), now_ms=str(now), now_s=str(now // 1000))
            for name, value in (case.get("set") or {}).items()
        }
        after = case.get("after_signing", False)
        ex = _send(
            ctx,
            "GET",
            NODE,
            timestamp=None if after else values.pop("X-Timestamp", None),
            nonce=None if after else values.pop("X-Nonce", None),
            set_headers=values,
            drop=case.get("drop", ()),
        )
        expect_status(ex, 401, "UNAUTHENTICATED", what=case["description"])
    # ATS-AUTH-01 "a request without the signature headers": on every endpoint but health.
    expect_unsigned_refused(ctx)
    listed = fetch_descriptor(ctx).get("signature_methods")
    optional = str(cases["optional_signature_method"])
    if isinstance(listed, list) and optional not in listed:
        # ATS-AUTH-01: a method the node does not list is refused, even a correctly signed one.
        ex = _send(ctx, "GET", NODE, signature_method=optional)
        expect_status(
            ex, 401, "UNAUTHENTICATED", what=f"a {optional} request to a node not listing it"
        )


# ATS-AUTH-02 --------------------------------------------------------------------------------


@check("ATS-AUTH-02")
def tampered_request_rejected(ctx: CheckContext) -> None:
    """A request changed after signing — method, path, query, body, timestamp or nonce — is 401."""
    share = _share_target(ctx)
    code = ctx.target.resources["unconditional"]
    body = b'{"fields": []}'
    # Untampered controls: each request the tampering starts from is accepted as it is.
    for method, target, sent in (
        ("GET", SUBSCRIPTIONS, b""),
        ("GET", f"{CATALOG}?page=1&size=2", b""),
        ("POST", share, body),
    ):
        expect_status(
            _send(ctx, method, target, body=sent), 200, what=f"an untampered {method} {target}"
        )
    stamp = _now_ms()
    tamperings: dict[str, tuple[str, str, bytes, tuple[str, str, bytes], dict[str, Any]]] = {
        # ATS §3 line 1: GET and POST are both served on /subscriptions, so only the
        # signature can refuse the changed method.
        "method": ("POST", SUBSCRIPTIONS, b"", ("GET", SUBSCRIPTIONS, b""), {}),
        "path": ("GET", CATALOG, b"", ("GET", NODE, b""), {}),
        "path_encoding": (
            "GET",
            f"{CATALOG}/{code.replace('/', '%2F')}",
            b"",
            ("GET", f"{CATALOG}/{code}", b""),
            {},
        ),
        "query_changed": (
            "GET",
            f"{CATALOG}?page=1&size=3",
            b"",
            ("GET", f"{CATALOG}?page=1&size=2", b""),
            {},
        ),
        "query_added": (
            "GET",
            f"{CATALOG}?page=1&size=2&keyword=a",
            b"",
            ("GET", f"{CATALOG}?page=1&size=2", b""),
            {},
        ),
        "query_removed": (
            "GET",
            f"{CATALOG}?page=1",
            b"",
            ("GET", f"{CATALOG}?page=1&size=2", b""),
            {},
        ),
        # ATS-AUTH-02 "added or removed": a query added to a request signed without one (a node
        # that also verifies over an empty query line passes the cases above), one removed
        # from a request signed with one, and a parameter repeated (two pairs, ATS §3).
        "query_added_to_bare": ("GET", f"{CATALOG}?size=2", b"", ("GET", CATALOG, b""), {}),
        "query_removed_all": ("GET", CATALOG, b"", ("GET", f"{CATALOG}?size=2", b""), {}),
        "query_added_repeat": (
            "GET",
            f"{CATALOG}?page=1&size=2&size=2",
            b"",
            ("GET", f"{CATALOG}?page=1&size=2", b""),
            {},
        ),
        "body": ("POST", share, b'{"fields": [] }', ("POST", share, body), {}),
        "timestamp": (
            "GET",
            NODE,
            b"",
            ("GET", NODE, b""),
            {"timestamp": stamp, "set_headers": {"X-Timestamp": str(stamp + 1)}},
        ),
        "nonce": (
            "GET",
            NODE,
            b"",
            ("GET", NODE, b""),
            {"set_headers": {"X-Nonce": _fresh_nonce()}},
        ),
    }
    parts = [str(p) for p in ctx.params["tampered_parts"]]
    chosen = [
        name
        for name in tamperings
        if any(name == p or name.startswith(f"{p}_") for p in parts)
        or (name == "path_encoding" and "path" in parts)
    ]
    for name in chosen:
        method, target, sent, sign_as, extra = tamperings[name]
        ex = _send(ctx, method, target, body=sent, sign_as=sign_as, **extra)
        expect_status(
            ex,
            401,
            "UNAUTHENTICATED",
            what=f"a request whose {name.replace('_', ' ')} was changed after signing "
            f"(signed as {sign_as[0]} {sign_as[1]})",
        )
    wrong = _send(ctx, "GET", NODE, set_headers={"X-Signature": "0" * 64})
    expect_status(wrong, 401, "UNAUTHENTICATED", what="a request with a wrong signature")
    if "query_changed" in parts:
        # ATS §3 sorts the canonical query: pairs reordered after signing change nothing the
        # signature covers, so the request is served.
        signed = ("GET", f"{CATALOG}?page=1&size=2", b"")
        reordered = _send(ctx, "GET", f"{CATALOG}?size=2&page=1", sign_as=signed)
        expect_status(
            reordered,
            200,
            what="a request whose query pairs were reordered after signing (the same "
            "canonical query)",
            refused_is_finding=True,
        )


# ATS-AUTH-03 --------------------------------------------------------------------------------


def _unknown_app_request(ctx: CheckContext, method: str, target: str, body: bytes) -> Exchange:
    app_id = "ats-unknown-" + secrets.token_hex(6)
    # A secret of the tester's own making: the node cannot know it, as it cannot know the app.
    secret = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    headers = signing.sign_headers(
        method=method, target=target, body=body, app_id=app_id, secret=secret
    )
    if body:
        headers["Content-Type"] = "application/json"
    return ctx.client.raw(method, target, headers=headers, body=body)


def _error_identity(ex: Exchange) -> tuple[int | None, Any, Any]:
    try:
        body = ex.json()
    except Inconclusive:
        body = None
    if not isinstance(body, dict):
        return ex.status, None, None
    return ex.status, body.get("code"), body.get("message")


@check("ATS-AUTH-03")
def unknown_app_indistinguishable(ctx: CheckContext) -> None:
    """An unknown app id is answered exactly like a wrong signature: status, code and message."""
    for method, target, body in (("GET", NODE, b""), ("POST", _share_target(ctx), b"{}")):
        unknown = _unknown_app_request(ctx, method, target, body)
        expect_status(unknown, 401, "UNAUTHENTICATED", what="an unknown app id")
        wrong = _send(ctx, method, target, body=body, set_headers={"X-Signature": "0" * 64})
        expect_status(wrong, 401, "UNAUTHENTICATED", what="a wrong signature")
        seen_unknown, seen_wrong = _error_identity(unknown), _error_identity(wrong)
        if seen_unknown != seen_wrong:
            raise Finding(
                f"an unknown app id was answered {seen_unknown[0]} {seen_unknown[1]} "
                f"{seen_unknown[2]!r}, a wrong signature {seen_wrong[0]} {seen_wrong[1]} "
                f"{seen_wrong[2]!r}; expected the same status, code and message "
                f"({request_text(unknown)})"
            )


# ATS-AUTH-04 --------------------------------------------------------------------------------


@check("ATS-AUTH-04")
def timestamp_window_enforced(ctx: CheckContext) -> None:
    """A timestamp beyond the window is 401 and one well within it is accepted, past and future."""
    reject, accept = float(ctx.params["reject_beyond_s"]), float(ctx.params["accept_within_s"])
    # ATS-AUTH-04 leaves a gap between the two bounds for the clocks' skew; probing at the
    # middle of the gap on each side tolerates a tester-node skew of half of it.
    margin = (reject - accept) / 2
    _expect_served(ctx)
    for sign, direction in ((-1, "in the past"), (1, "in the future")):
        far = round(sign * (reject + margin) * 1000)
        ex = _send(ctx, "GET", NODE, timestamp=_now_ms() + far)
        expect_status(
            ex,
            401,
            "UNAUTHENTICATED",
            what=f"a timestamp {reject + margin:g} s {direction}",
        )
        near = round(sign * (accept - margin) * 1000)
        ex = _send(ctx, "GET", NODE, timestamp=_now_ms() + near)
        expect_status(
            ex, 200, what=f"a timestamp {accept - margin:g} s {direction}", refused_is_finding=True
        )


# ATS-AUTH-05 --------------------------------------------------------------------------------


@check("ATS-AUTH-05")
def replayed_nonce_rejected(ctx: CheckContext) -> None:
    """A nonce the same app used before is 401, replayed as it was or in a newly signed request."""
    nonce = _fresh_nonce()
    headers = dict(ctx.client.signed_headers("consumer", "GET", NODE, b"", nonce=nonce))
    first = ctx.client.raw("GET", NODE, headers=headers, body=b"")
    first_used = time.monotonic()
    expect_status(first, 200, what="the first use of a nonce")
    replay = ctx.client.raw("GET", NODE, headers=headers, body=b"")
    expect_status(replay, 401, "UNAUTHENTICATED", what="an exact replay of a request")
    again = _send(ctx, "GET", NODE, nonce=nonce)
    expect_status(again, 401, "UNAUTHENTICATED", what="a newly signed request reusing a nonce")
    elsewhere = _send(ctx, "GET", f"{CATALOG}?size=1", nonce=nonce)
    expect_status(
        elsewhere, 401, "UNAUTHENTICATED", what="a request to another endpoint reusing a nonce"
    )
    # ATS §3: a nonce counts as used once its signature verified, whatever the answer.
    refused_nonce = _fresh_nonce()
    denied = _send(ctx, "GET", AUDIT, nonce=refused_nonce)
    if denied.status in (None, 401, 429):
        ctx.error(
            f"a consumer reading the audit trail was answered {answer_text(denied)}; the "
            f"nonce of a verified request cannot be reused without a verified first use"
        )
    reused = _send(ctx, "GET", NODE, nonce=refused_nonce)
    expect_status(
        reused,
        401,
        "UNAUTHENTICATED",
        what=f"a request reusing the nonce of a verified request answered {denied.status}",
    )
    _judge_late_replay(ctx, nonce, first_used)


def _judge_late_replay(ctx: CheckContext, nonce: str, first_used: float) -> None:
    """With --thorough, the nonce replayed near the end of the window, in a request signed
    then; otherwise a note that the window was assessed only for its start (ATS-AUTH-05)."""
    window = float(ctx.params["replay_window_s"])
    late = float(ctx.params["late_replay_after_s"])
    if not ctx.thorough:
        ctx.note(
            f"the {window:g} s nonce window was assessed only for its start: nonces were "
            f"replayed seconds after their first use; --thorough replays one {late:g} s after"
        )
        return
    time.sleep(max(0.0, first_used + late - time.monotonic()))
    replay = _send(ctx, "GET", NODE, nonce=nonce)
    expect_status(
        replay,
        401,
        "UNAUTHENTICATED",
        what=f"a newly signed request reusing a nonce {time.monotonic() - first_used:.0f} s "
        f"after its first use (window {window:g} s)",
    )
    ctx.note(f"a nonce replayed {late:g} s after its first use was refused")


# ATS-AUTH-06 / ATS-AUTH-07 -----------------------------------------------------------------


def _supported(ctx: CheckContext, method_name: str) -> None:
    share = _share_target(ctx)
    code = ctx.target.resources["unconditional"]
    probes: list[tuple[str, str, str, bytes, dict[str, Any]]] = [
        ("a descriptor request", "GET", NODE, b"", {}),
        # ATS §3: the canonical query sorts and re-encodes; the node must do the same.
        (
            "an unsorted, percent-encoded query",
            "GET",
            f"{CATALOG}?size=5&page=1&keyword=%E4%BA%BA",
            b"",
            {},
        ),
        ("a share query with a body", "POST", share, b'{"fields": []}', {}),
        ("a path with an encoded slash", "GET", f"{CATALOG}/{code.replace('/', '%2F')}", b"", {}),
    ]
    for what, method, target, body, extra in probes:
        ex = _send(ctx, method, target, body=body, signature_method=method_name, **extra)
        if what == "a path with an encoded slash":
            if ex.status == 401:
                raise Finding(
                    f"{what} signed with {method_name} was answered {answer_text(ex)}; expected "
                    f"the signature over the path as transmitted to verify ({request_text(ex)})"
                )
            continue
        expect_status(ex, 200, what=f"{what} signed with {method_name}", refused_is_finding=True)
    headers = dict(
        ctx.client.signed_headers("consumer", "GET", NODE, b"", signature_method=method_name)
    )
    headers["X-Signature"] = headers["X-Signature"].upper()
    ex = ctx.client.raw("GET", NODE, headers=headers, body=b"")
    expect_status(
        ex, 200, what=f"an upper-case hex {method_name} signature", refused_is_finding=True
    )


@check("ATS-AUTH-06")
def hmac_sm3_supported(ctx: CheckContext) -> None:
    """HMAC-SM3 signatures verify, named or by default, over paths, queries and bodies."""
    method_name = str(ctx.params["signature_method"])
    _supported(ctx, method_name)
    # ATS §3: HMAC-SM3 is the method when X-Signature-Method is absent.
    ex = _send(ctx, "GET", NODE, signature_method=method_name, drop=("X-Signature-Method",))
    expect_status(ex, 200, what="a request without X-Signature-Method", refused_is_finding=True)


@check("ATS-AUTH-07")
def hmac_sha256_supported(ctx: CheckContext) -> None:
    """HMAC-SHA256 signatures verify over paths, queries and bodies."""
    _supported(ctx, str(ctx.params["signature_method"]))


# ATS-AUTH-08 --------------------------------------------------------------------------------


def _role_apps(ctx: CheckContext) -> dict[str, list[str]]:
    """The credentials of the target file for each role; a role may have none."""
    present: dict[str, list[str]] = {}
    for role, names in _ROLE_APPS.items():
        present[role] = []
        for name in names:
            try:
                ctx.target.credential(name)
            except KeyError:
                continue
            present[role].append(name)
    return present


def _neighbour_id(ctx: CheckContext, app: str) -> str:
    neighbours = ctx.target.neighbours
    spec = None
    if neighbours is not None:
        spec = neighbours.parent if app == "as_parent" else neighbours.child
    return spec.node_id if spec is not None else ctx.target.node.node_id


@check("ATS-AUTH-08")
def role_table_enforced(ctx: CheckContext) -> None:
    """Every endpoint answers 403 FORBIDDEN to the roles the table excludes, before validation."""
    table = corpus("role-table")
    apps = _role_apps(ctx)
    for role in table["roles"]:
        if not apps.get(role):
            ctx.note(f"no app of role {role} in the target file: its part of the table is skipped")
    if not any(apps.get(role) for role in table["roles"]):
        ctx.skip("the target file holds no app of any role")
    code = ctx.target.resources["unconditional"]
    for endpoint in table["endpoints"]:
        for kind in ("forbidden", "allowed"):
            probe = endpoint.get(f"{kind}_probe")
            if probe is None:
                continue
            for role in endpoint[kind]:
                for app in apps.get(role, []):
                    ex = _role_probe(ctx, endpoint, probe, app, code)
                    what = f"{endpoint['method']} {endpoint['path']} by {role} app {app}"
                    if kind == "forbidden" and ex.status == 404 and _unserved_here(ctx, endpoint):
                        expect_status(ex, 404, "NOT_FOUND", what=what)
                    elif kind == "forbidden":
                        expect_status(ex, 403, "FORBIDDEN", what=what)
                    else:
                        expect_allowed(ex, what=what)


# ATS §0: in ATS-1.0 only national and provincial nodes have children.
_CHILDLESS_LEVELS = frozenset({"department", "municipal"})


def _unserved_here(ctx: CheckContext, endpoint: Mapping[str, Any]) -> bool:
    """The endpoint serves only nodes with children and the node's level has none: the path
    may be unknown there (ATS §1: 404 before authentication and role)."""
    return bool(endpoint.get("parents_only")) and ctx.target.node.level in _CHILDLESS_LEVELS


def _role_probe(
    ctx: CheckContext, endpoint: Mapping[str, Any], probe: Mapping[str, Any], app: str, code: str
) -> Exchange:
    path = substitute(
        substitute(str(endpoint["path"]), code=str(probe.get("code", ""))), unconditional=code
    )
    query = probe.get("query")
    target = f"{path}?{query}" if query else path
    body = str(probe.get("body", "")).encode()
    routed: dict[str, str] = {}
    if probe.get("routed") and app in _ROLE_APPS["node"]:
        # ATS §8: what a neighbouring node sends along a routed query.
        origin = _neighbour_id(ctx, app)
        routed = {
            "X-Origin-Node": origin,
            "X-Origin-App": "ats-role-probe",
            "X-Route": origin,
            "X-Hop-Limit": "7",
        }
    return _send(ctx, str(endpoint["method"]), target, app=app, body=body, set_headers=routed)
