"""Checks of ATS-1.0 chapter 10 (STAT): assessment statistics (考核指标).

ATS-STAT-02 compares two reads of ``GET /api/v1/stats`` around the suite's own traffic, counted
as it is sent. Its connectivity part depends on the children the node descriptor lists
(ATS-NODE-02): without children the rate is 1 (ATS §10); with children it needs one the suite
controls: the emulated child of the target file is stopped, the rate must drop below 1, and the
child is started again. Without an emulated child that part cannot be assessed: the other parts
still decide a FAIL, and otherwise the clause is not assessed, naming ``neighbours.child``
(``neighbours.emulated_child`` in live mode).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from conformance import schemas
from conformance.ats import NODE, STATS
from conformance.checks import CheckContext, Finding, Inconclusive, check
from conformance.checks._catalog_walk import CatalogWalk, node_date, parse_offset
from conformance.checks._expect import expect_json_object, expect_status, request_text
from conformance.checks._records import query, query_answer

# Pause between reads while waiting for the node's next probe of its children.
_POLL_S = 1.0


def _read_stats(ctx: CheckContext, *, judged: bool = True) -> dict[str, Any]:
    """The statistics; when not ``judged`` (ATS-STAT-02) a malformed answer, ATS-STAT-01's
    finding, only makes the comparison impossible."""
    ex = ctx.client.get(STATS, app="admin")
    expect_status(ex, 200, what="the statistics read by the provider-admin")
    body = expect_json_object(ex, what="the statistics")
    errors = schemas.validation_errors("stats", body)
    if errors and judged:
        raise Finding(f"the statistics answer {errors[0]} ({request_text(ex)})")
    if errors:
        raise Inconclusive(f"the statistics cannot be compared: {errors[0]} (ATS-STAT-01)")
    return body


@check("ATS-STAT-01")
def stats_well_formed(ctx: CheckContext) -> None:
    """The statistics answer has every field, with its type and range, for the current month."""
    body = _read_stats(ctx)
    zone = parse_offset(str(ctx.params["local_offset"]))
    months = {node_date(ctx, zone).strftime("%Y-%m"), datetime.now(zone).strftime("%Y-%m")}
    if body["period"] not in months:
        raise Finding(
            f"the statistics period is {body['period']!r}; expected the current month in "
            f"{ctx.params['local_offset']} ({' or '.join(sorted(months))})"
        )
    if body["resources_shared"] > body["resources_total"]:
        raise Finding(
            f"resources_shared {body['resources_shared']} exceeds resources_total "
            f"{body['resources_total']}"
        )
    if body["calls_failed"] > body["calls_total"]:
        raise Finding(
            f"calls_failed {body['calls_failed']} exceeds calls_total {body['calls_total']}"
        )


def _declared_children(ctx: CheckContext) -> list[str] | None:
    """The node ids of the children the node descriptor lists (ATS-NODE-02); None when the
    descriptor does not say (ATS-NODE-02 reports that)."""
    ex = ctx.client.get(NODE, app="consumer")
    if ex.status != 200:
        return None
    try:
        children = ex.json().get("children")
    except (Inconclusive, AttributeError):
        return None
    if not isinstance(children, list):
        return None
    return [str(c.get("node_id")) if isinstance(c, dict) else repr(c) for c in children]


def _connectivity(ctx: CheckContext, after: dict[str, Any]) -> str | None:
    """The connectivity part of ATS-STAT-02: 1 without children, below 1 within the probe bound
    once an emulated child stops. Answers why it cannot be assessed, else None."""
    children = _declared_children(ctx)
    if children == []:
        if after["connectivity_rate"] != 1:
            raise Finding(
                f"connectivity_rate is {after['connectivity_rate']} while the node descriptor "
                "lists no children; expected 1 for a node without children (ATS §10)"
            )
        ctx.note("connectivity_rate is 1 for a node without children")
        return None
    neighbours = ctx.neighbours
    child = neighbours.child if neighbours is not None else None
    if child is None:
        listed = ", ".join(children) if children else "children the descriptor does not list"
        member = (
            "neighbours.emulated_child"
            if ctx.target.neighbours is not None and ctx.target.neighbours.live
            else "neighbours.child"
        )
        return (
            f"the connectivity part is not assessed: the node has children ({listed}) and the "
            f"target file names no {member} the suite emulates, so no child can be made to "
            "stop answering"
        )
    bound = float(ctx.params["probe_max_age_s"]) + float(ctx.params["probe_timeout_s"]) + 5
    child.stop()
    try:
        deadline = time.monotonic() + bound
        while True:
            rate = _read_stats(ctx, judged=False)["connectivity_rate"]
            if rate < 1:
                ctx.note(f"connectivity_rate {rate} with child {child.spec.node_id} stopped")
                return None
            if time.monotonic() > deadline:
                raise Finding(
                    f"connectivity_rate stayed {rate} for {bound:g} s after child "
                    f"{child.spec.node_id} stopped answering; expected it below 1"
                )
            time.sleep(_POLL_S)
    finally:
        child.start()


@check("ATS-STAT-02")
def stats_track_activity(ctx: CheckContext) -> None:
    """Statistics match the local catalog, count the tester's calls and allowed queries, and
    see a child that stops answering."""
    before = _read_stats(ctx, judged=False)
    walk = CatalogWalk(ctx, scope="local")
    walked: dict[str, bool] = {}
    for entry in walk:
        share = entry.get("share")
        walked[str(entry.get("resource_code"))] = (
            isinstance(share, dict) and share.get("type") != "NOT_SHARED"
        )
    total, shared = len(walked), sum(walked.values())
    # A list that lacks a resource of the target file is ATS-CAT-03's finding; then the
    # catalog's size is unknown and resources_total cannot be compared.
    unlisted = sorted(set(ctx.target.resources.values()) - set(walked))
    code = ctx.target.resources["unconditional"]
    query_answer(query(ctx, code, {"size": 1}), f"an allowed query of {code}")
    denied = query(ctx, ctx.target.resources["not_shared"], {})
    failed = 1 if denied.status is not None and denied.status >= 400 else 0
    sent = walk.requests + 2
    after = _read_stats(ctx, judged=False)
    for field, counted in (("resources_total", total), ("resources_shared", shared)):
        if field == "resources_total" and unlisted:
            continue
        if after[field] != counted:
            raise Finding(
                f"{field} is {after[field]}; the local catalog walked holds {counted} "
                + ("entries" if field == "resources_total" else "entries not NOT_SHARED")
            )
    for field, least in (("calls_total", sent), ("calls_failed", failed)):
        grown = after[field] - before[field]
        if grown < least:
            raise Finding(
                f"{field} grew by {grown} between two reads while the tester made {least} "
                f"such requests; expected growth of at least {least}"
            )
    if after["collaborative_apps"] < 1:
        raise Finding(
            f"collaborative_apps is {after['collaborative_apps']} after the tester's allowed "
            "query; expected at least 1"
        )
    missing = _connectivity(ctx, after)
    if unlisted:
        ctx.error(
            f"the local catalog list lacks {unlisted[0]} of the target file, so resources_total "
            "cannot be compared with the catalog (ATS-CAT-03 reports the list)"
        )
    if missing:
        ctx.not_assessed(missing)
