"""Checks of ATS-1.0 chapter 6 (SUB): subscription and approval (共享申请与审批).

Every subscription a check creates is listed in the run state and revoked when the check ends
(ATS-1.0 has no deletion). Apps are kept apart so that the checks do not disturb each other or
the sharing checks: consumer holds the subscriptions under test, consumer_b is the unrelated
consumer of ATS-SUB-02 and the rejected subscriber of ATS-SUB-04, and never holds an approved
subscription to the conditional resource (ATS-CAT-06 entitles consumer); a check that needs an app
without an approved subscription to the conditional resource verifies that first.
"""

from __future__ import annotations

from typing import Any

from conformance.checks import CheckContext, Finding, check
from conformance.checks._catalog_walk import fetch_entry
from conformance.checks._expect import expect_json_object, expect_status, request_text
from conformance.checks._records import (
    SUBSCRIPTIONS,
    Subscriptions,
    approved_subscriptions,
    items_of,
    query,
    query_answer,
)

_UNDECLARED = "ats_undeclared_item"
# Subscription list pages read when looking for one subscription.
_LIST_PAGES = 20


def _status_of(made: dict[str, Any]) -> str:
    return str(made.get("status"))


def _expect_initial(made: dict[str, Any], expected: str, what: str) -> None:
    if _status_of(made) != expected:
        raise Finding(f"{what} was created {_status_of(made)}; expected {expected} (ATS §6)")


def _unused(ctx: CheckContext, app: str, code: str) -> None:
    """``app`` holds no approved subscription to ``code``, else the check cannot judge."""
    if approved_subscriptions(ctx, app, code):
        ctx.error(
            f"{app} already holds an approved subscription to {code}; the check needs an app "
            "without one"
        )


@check("ATS-SUB-01")
def subscription_initial_status(ctx: CheckContext) -> None:
    """UNCONDITIONAL subscriptions are APPROVED at once unless unmasked; CONDITIONAL or unmasked
    ones are PENDING; NOT_SHARED answers 403; an undeclared item answers 400."""
    resources = ctx.target.resources
    with Subscriptions(ctx) as subs:
        made = subs.made(
            "consumer", resources["unconditional"], what="a masked UNCONDITIONAL subscription"
        )
        _expect_initial(made, "APPROVED", "a masked subscription to an UNCONDITIONAL resource")
        made = subs.made(
            "consumer",
            resources["unconditional"],
            unmasked=True,
            what="an unmasked UNCONDITIONAL subscription",
        )
        _expect_initial(made, "PENDING", "an unmasked subscription to an UNCONDITIONAL resource")
        made = subs.made("consumer", resources["conditional"], what="a CONDITIONAL subscription")
        _expect_initial(made, "PENDING", "a subscription to a CONDITIONAL resource")
        ex = subs.create("consumer", resources["not_shared"])
        expect_status(ex, 403, "FORBIDDEN", what="a subscription to a NOT_SHARED resource")
        ex = subs.create("consumer", resources["unconditional"], fields=[_UNDECLARED])
        expect_status(ex, 400, "INVALID_REQUEST", what="a subscription naming an undeclared item")


def _listed(ctx: CheckContext, app: str, code: str) -> tuple[set[str], set[str], set[str]]:
    """The subscription ids ``app`` lists for ``code``, the app ids and statuses they show."""
    ids: set[str] = set()
    owners: set[str] = set()
    statuses: set[str] = set()
    for page in range(1, _LIST_PAGES + 1):
        params = [("resource_code", code), ("page", str(page)), ("size", "100")]
        ex = ctx.client.get(SUBSCRIPTIONS, app=app, params=params)
        expect_status(ex, 200, what=f"the subscription list of {app}")
        items = expect_json_object(ex, what=f"the subscription list of {app}").get("items")
        if not isinstance(items, list):
            raise Finding(f"the subscription list of {app} has no items list ({request_text(ex)})")
        for item in items:
            if isinstance(item, dict):
                ids.add(str(item.get("subscription_id")))
                owners.add(str(item.get("app_id")))
                statuses.add(str(item.get("status")))
        if len(items) < 100:
            break
    return ids, owners, statuses


def _listed_ids(ctx: CheckContext, app: str, code: str) -> tuple[set[str], set[str]]:
    """The subscription ids ``app`` lists for ``code``, and the app ids they name."""
    ids, owners, _ = _listed(ctx, app, code)
    return ids, owners


@check("ATS-SUB-02")
def subscriptions_private_to_consumer(ctx: CheckContext) -> None:
    """A consumer sees only its own subscriptions; a provider-admin sees all."""
    code = ctx.target.resources["conditional"]
    mine = ctx.client.credential("consumer").app_id
    other = ctx.client.credential("consumer_b").app_id
    with Subscriptions(ctx) as subs:
        made = subs.made("consumer", code, what="a subscription of consumer")
        sid = str(made["subscription_id"])
        ex = ctx.client.get(f"{SUBSCRIPTIONS}/{sid}", app="consumer_b")
        expect_status(
            ex, 404, "NOT_FOUND", what="another consumer's subscription read by consumer_b"
        )
        ids, owners = _listed_ids(ctx, "consumer_b", code)
        if sid in ids or owners - {other}:
            raise Finding(
                f"the subscription list of consumer_b holds subscriptions of {sorted(owners)}; "
                f"expected only its own ({other})"
            )
        ids, owners = _listed_ids(ctx, "consumer", code)
        if sid not in ids or owners - {mine}:
            raise Finding(
                f"the subscription list of consumer holds {len(ids)} subscriptions of "
                f"{sorted(owners)}; expected its own, {sid} among them"
            )
        ex = ctx.client.get(f"{SUBSCRIPTIONS}/{sid}", app="admin")
        expect_status(ex, 200, what="a consumer's subscription read by the provider-admin")
        ids, _ = _listed_ids(ctx, "admin", code)
        if sid not in ids:
            raise Finding(
                f"the provider-admin's subscription list lacks consumer's {sid}; expected all"
            )


@check("ATS-SUB-03")
def decisions_by_admin_in_valid_state(ctx: CheckContext) -> None:
    """Only a provider-admin decides or revokes; a decision off PENDING, or a revocation of a
    REJECTED or REVOKED subscription, answers 409."""
    code = ctx.target.resources["conditional"]
    with Subscriptions(ctx) as subs:
        rejected = str(
            subs.made("consumer", code, what="a subscription to reject")["subscription_id"]
        )
        expect_status(
            subs.decide(rejected, "APPROVE", app="consumer"), 403, "FORBIDDEN",
            what="a decision by a consumer",
        )  # fmt: skip
        expect_status(
            subs.revoke(rejected, app="consumer"), 403, "FORBIDDEN",
            what="a revocation by a consumer",
        )  # fmt: skip
        expect_status(subs.decide(rejected, "REJECT"), 200, what="a rejection of a PENDING one")
        expect_status(
            subs.decide(rejected, "APPROVE"), 409, "CONFLICT",
            what="a decision on a REJECTED subscription",
        )  # fmt: skip
        expect_status(
            subs.revoke(rejected), 409, "CONFLICT", what="a revocation of a REJECTED subscription"
        )
        approved = str(
            subs.made("consumer", code, what="a subscription to approve")["subscription_id"]
        )
        expect_status(subs.decide(approved, "APPROVE"), 200, what="an approval of a PENDING one")
        expect_status(
            subs.decide(approved, "REJECT"), 409, "CONFLICT",
            what="a decision on an APPROVED subscription",
        )  # fmt: skip
        expect_status(subs.revoke(approved), 200, what="a revocation of an APPROVED subscription")
        expect_status(
            subs.revoke(approved), 409, "CONFLICT", what="a revocation of a REVOKED subscription"
        )


@check("ATS-SUB-04")
def approval_grants_approved_items_only(ctx: CheckContext) -> None:
    """After APPROVE the subscriber is served only the approved items; after REJECT it keeps
    answering SUBSCRIPTION_REQUIRED."""
    code = ctx.target.resources["conditional"]
    names = sorted(items_of(fetch_entry(ctx, code)))
    if len(names) < 2:
        ctx.error(f"the conditional resource {code} declares fewer than 2 items")
    granted, other = names[: len(names) // 2], names[-1]
    _unused(ctx, "consumer", code)
    _unused(ctx, "consumer_b", code)
    with Subscriptions(ctx) as subs:
        subs.approved("consumer", code, fields=granted, what=f"a subscription to {granted}")
        answer = query_answer(query(ctx, code, {"size": 20}), f"a query of {code} after approval")
        declared = set(names)
        for number, record in enumerate(answer["items"], start=1):
            # Undeclared members are ATS-SHR-01's finding; this clause judges declared items.
            if not isinstance(record, dict) or set(record) & declared != set(granted):
                held = sorted(set(record) & declared) if isinstance(record, dict) else record
                raise Finding(
                    f"{code}: record {number} after approving {granted} holds {held}; "
                    "expected exactly the approved items"
                )
        ex = query(ctx, code, {"fields": [other]})
        expect_status(ex, 403, "FORBIDDEN", what=f"a query of item {other} outside the approval")
        before = query(ctx, code, {}, app="consumer_b")
        _, _, history = _listed(ctx, "consumer_b", code)
        if before.status != 403 and history & {"APPROVED", "REVOKED"}:
            # An earlier, revoked subscription may still entitle it: ATS-SUB-05's defect.
            ctx.error(
                f"consumer_b is answered {before.status} on {code} before subscribing and held "
                "an approved subscription to it before; the effect of a rejection cannot be "
                "judged"
            )
        made = subs.made("consumer_b", code, what="a subscription to reject")
        expect_status(subs.decide(str(made["subscription_id"]), "REJECT"), 200, what="a rejection")
        ex = query(ctx, code, {}, app="consumer_b")
        expect_status(ex, 403, "SUBSCRIPTION_REQUIRED", what=f"a query of {code} after a rejection")


@check("ATS-SUB-05")
def revocation_withdraws_access(ctx: CheckContext) -> None:
    """After revocation the subscriber's query answers SUBSCRIPTION_REQUIRED and the
    subscription reads REVOKED."""
    code = ctx.target.resources["conditional"]
    _unused(ctx, "consumer", code)
    with Subscriptions(ctx) as subs:
        made = subs.approved("consumer", code, what="a subscription to revoke")
        sid = str(made["subscription_id"])
        query_answer(query(ctx, code, {"size": 1}), f"a query of {code} after approval")
        expect_status(subs.revoke(sid), 200, what="the revocation of an approved subscription")
        ex = query(ctx, code, {"size": 1})
        expect_status(ex, 403, "SUBSCRIPTION_REQUIRED", what=f"a query of {code} after revocation")
        ex = ctx.client.get(f"{SUBSCRIPTIONS}/{sid}", app="consumer")
        expect_status(ex, 200, what="the revoked subscription read by its consumer")
        status = expect_json_object(ex, what="the revoked subscription").get("status")
        if status != "REVOKED":
            raise Finding(f"subscription {sid} reads {status!r} after revocation; expected REVOKED")
