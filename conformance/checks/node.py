"""Checks of ATS-1.0 chapter 2 (NODE): health, the node descriptor, node identity, clock."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from conformance import ats, codes, schemas
from conformance.ats import HEALTH, NODE
from conformance.checks import CheckContext, Finding, check
from conformance.checks._expect import expect_json_object, expect_status


def _schema_finding(name: str, document: object, what: str) -> None:
    errors = schemas.validation_errors(name, document)
    if errors:
        shown = "; ".join(errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise Finding(f"{what} breaks the {name} schema: {shown}{more}")


def fetch_descriptor(ctx: CheckContext) -> dict[str, Any]:
    """The node descriptor, read by the consumer app.

    A node that refuses HMAC-SM3 (ATS-AUTH-06) is asked again with HMAC-SHA256, so that the
    descriptor itself can still be judged.
    """
    ex = ctx.client.get(NODE, app="consumer")
    if ex.status == 401:
        ctx.note("the HMAC-SM3 request was refused; the descriptor is read with HMAC-SHA256")
        ex = ctx.client.request("GET", NODE, app="consumer", signature_method="HMAC-SHA256")
    expect_status(ex, 200, what="a signed node descriptor request")
    return expect_json_object(ex, what="the node descriptor request")


def _parse_time(value: str) -> datetime:
    # RFC 3339 allows a lower-case T and Z; fromisoformat takes the upper-case forms.
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))


def read_health(ctx: CheckContext) -> dict[str, Any]:
    """The health answer, read without credentials or, when refused, signed by the consumer.

    Clauses that read the node's clock or time format from health judge those, not whether
    health is open (ATS-NODE-01 judges that).
    """
    ex = ctx.client.request("GET", HEALTH, app=None)
    if ex.status == 401:
        ctx.note("health refused an unsigned request; it is read signed (see ATS-NODE-01)")
        ex = ctx.client.request("GET", HEALTH, app="consumer")
    expect_status(ex, 200, what="a health request")
    return expect_json_object(ex, what="the health request")


@check("ATS-NODE-01")
def health_served_without_auth(ctx: CheckContext) -> None:
    """Health answers 200 UP with an RFC 3339 time without credentials, and nothing else does."""
    ex = ctx.client.request("GET", str(ctx.params["path"]), app=None)
    expect_status(ex, 200, what="an unsigned health request")
    _schema_finding(
        "health", expect_json_object(ex, what="the health request"), "the health answer"
    )
    # ATS-NODE-01: health is the only endpoint served without authentication.
    expect_unsigned_refused(ctx)


# A subscription id for the unsigned probes: the answer comes before any lookup (ATS §1 order).
_PROBE_ID = "ats-unsigned-probe"
# Endpoints a node of some levels does not serve at all (no children, no parent): there an
# unknown path's 404 or an unserved method's 405 comes before authentication (ATS §1 order).
_MAYBE_UNSERVED = frozenset({ats.CASCADE_PUSH, ats.CASCADE_SYNC})


def unsigned_requests(ctx: CheckContext) -> list[tuple[str, str, bytes]]:
    """One request to every endpoint of ATS-1.0 but health, without signature headers."""
    code = ctx.target.resources["unconditional"]
    subscription = ats.subscription_path(_PROBE_ID)
    return [
        ("GET", NODE, b""),
        ("GET", ats.CATALOG, b""),
        ("GET", ats.catalog_entry_path(code), b""),
        ("POST", ats.share_query_path(code), b"{}"),
        ("POST", ats.SUBSCRIPTIONS, b"{}"),
        ("GET", ats.SUBSCRIPTIONS, b""),
        ("GET", subscription, b""),
        ("POST", f"{subscription}/decision", b"{}"),
        ("DELETE", subscription, b""),
        ("POST", ats.CASCADE_PUSH, b"{}"),
        ("POST", ats.CASCADE_SYNC, b"{}"),
        ("GET", ats.AUDIT_EVENTS, b""),
        ("GET", ats.STATS, b""),
    ]


def expect_unsigned_refused(ctx: CheckContext) -> None:
    """Every endpoint but health answers an unsigned request 401 UNAUTHENTICATED (ATS-NODE-01,
    ATS-AUTH-01)."""
    for method, target, body in unsigned_requests(ctx):
        headers = {"Content-Type": "application/json"} if body else {}
        ex = ctx.client.raw(method, target, headers=headers, body=body)
        allowed = (401, 404, 405) if target in _MAYBE_UNSERVED else 401
        expect_status(ex, allowed, "UNAUTHENTICATED" if ex.status == 401 else None,
                      what=f"an unsigned {method} {target}")  # fmt: skip


@check("ATS-NODE-02")
def node_descriptor_complete(ctx: CheckContext) -> None:
    """The node descriptor has every member of ATS-NODE-02 with its type, HMAC-SM3 listed."""
    _schema_finding("node-descriptor", fetch_descriptor(ctx), "the node descriptor")


@check("ATS-NODE-03")
def node_id_well_formed(ctx: CheckContext) -> None:
    """The declared node id, and each child's, is well formed for its level (ATS §0)."""
    descriptor = fetch_descriptor(ctx)
    node_id, level = descriptor.get("node_id"), descriptor.get("level")
    parent_id = descriptor.get("parent_id")
    if not isinstance(level, str):
        raise Finding(f"the node descriptor declares level {level!r}; expected a node level")
    problem = codes.node_id_problem(
        node_id, level, parent_id if isinstance(parent_id, str) else None
    )
    if problem:
        raise Finding(f"the node id {node_id!r} is not well formed for level {level}: {problem}")
    children = descriptor.get("children")
    for child in children if isinstance(children, list) else []:
        if not isinstance(child, dict) or not isinstance(child.get("level"), str):
            raise Finding(
                f"a child of the node descriptor is malformed: expected an object with "
                f"node_id, name and level (a string), received {child!r}"
            )
        problem = codes.node_id_problem(child.get("node_id"), child["level"], str(node_id))
        if problem:
            raise Finding(
                f"the child id {child.get('node_id')!r} is not well formed for level "
                f"{child['level']} under {node_id}: {problem}"
            )


@check("ATS-NODE-04")
def declared_level_and_parent_match(ctx: CheckContext) -> None:
    """The declared level and parent id are those of the target file."""
    descriptor = fetch_descriptor(ctx)
    spec = ctx.target.node
    for member, expected in (("level", spec.level), ("parent_id", spec.parent_id)):
        if descriptor.get(member) != expected:
            raise Finding(
                f"the node descriptor declares {member} {descriptor.get(member)!r}; "
                f"expected {expected!r} as in the target file"
            )
    if descriptor.get("node_id") != spec.node_id:
        ctx.note(
            f"the descriptor's node_id {descriptor.get('node_id')!r} differs from the target "
            f"file's {spec.node_id!r}"
        )


@check("ATS-NODE-05")
def clock_within_skew(ctx: CheckContext) -> None:
    """The node clock (health time) is within the allowed skew of the tester's clock."""
    max_skew = float(ctx.params["max_skew_s"])
    sent = time.time()
    body = read_health(ctx)
    received = time.time()
    value = body.get("time")
    try:
        node_time = _parse_time(value) if isinstance(value, str) else None
    except ValueError:
        node_time = None
    if node_time is None or node_time.tzinfo is None:
        # ATS-API-09 judges the format; without an offset the node's clock cannot be read.
        ctx.error(f"the health time {value!r} is no RFC 3339 timestamp with an offset")
    stamp = node_time.timestamp()
    # The node read its clock between sending and receiving: judge against that interval.
    skew = max(sent - stamp, stamp - received, 0.0)
    if skew > max_skew:
        ahead = "ahead of" if stamp > received else "behind"
        raise Finding(
            f"the node clock is {skew:.1f} s {ahead} the tester's clock; expected at most "
            f"{max_skew:g} s"
        )
    ctx.note(f"node clock within {skew:.2f} s of the tester's clock")
