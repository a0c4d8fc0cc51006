"""Checks of ATS-1.0 chapter 5 (SHR): the data sharing service.

Queries go to the target file's resources and to other shared API resources of the local
catalog (a bounded number, for the coverage of data types and semantics). Generated projections
and filters come from hypothesis, seeded (the seed is in the evidence), with a bounded number of
examples and no shrinking, so the request count stays bounded. The consumer app holds no unmasked
grant (ATS-PRIV-02 gives one to consumer_b only), so masking is the node's default here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from conformance import codes
from conformance.checks import CheckContext, Finding, Inconclusive, check
from conformance.checks._catalog_walk import CatalogWalk, fetch_entry, remember_entry
from conformance.checks._expect import expect_status, request_text
from conformance.checks._payloads import corpus
from conformance.checks._records import (
    approved_subscriptions,
    fetch_records,
    generation_seed,
    items_of,
    query,
    query_answer,
    real_records,
    same_json,
    sensitive_items,
    share_path,
    value_problem,
)

# Other local resources queried for the coverage of data types and semantics.
_MORE_RESOURCES = 8
# Generated projections and filters per check.
_EXAMPLES = 25
# Records read to build expectations for filters.
_MAX_RECORDS = 2000
_UNDECLARED = "ats_undeclared_item"


def _shared_api_entries(ctx: CheckContext, limit: int) -> Iterator[dict[str, Any]]:
    """The target's unconditional resource, then other local UNCONDITIONAL API resources."""
    first = ctx.target.resources["unconditional"]
    yield fetch_entry(ctx, first)
    more = 0
    for entry in CatalogWalk(ctx, scope="local", filters=[("share_type", "UNCONDITIONAL")]):
        share = entry.get("share")
        if entry.get("resource_code") == first or not isinstance(share, dict):
            continue
        if (
            share.get("type") == "UNCONDITIONAL"
            and share.get("method") == "API"
            and entry.get("items")
        ):
            more += 1
            remember_entry(ctx, entry)
            yield entry
            if more >= limit:
                return


def _record_findings(
    code: str,
    records: list[Any],
    selected: set[str],
    items: Mapping[str, Mapping[str, Any]],
    *,
    typed: bool = True,
) -> list[str]:
    """What breaks "each record holds exactly the selected items" (and with ``typed``, "every
    value fits its data_type"). Without ``typed`` only declared items count: an undeclared one
    is ATS-SHR-01's finding."""
    found = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            found.append(f"{code}: record {number} is not a JSON object")
            continue
        held = set(record) if typed else set(record) & set(items)
        if held != selected:
            extra, lacking = sorted(held - selected), sorted(selected - held)
            found.append(
                f"{code}: record {number} holds items {sorted(held)}; expected exactly "
                f"{sorted(selected)}"
                + (f" (extra {extra})" if extra else "")
                + (f" (lacking {lacking})" if lacking else "")
            )
            continue
        for name, value in record.items() if typed else ():
            if reason := value_problem(value, items[name]):
                found.append(f"{code}: record {number}, item {name} {reason}")
    return found


def _raise_first(ctx: CheckContext, found: list[str]) -> None:
    if not found:
        return
    for line in found[:20]:
        ctx.note(line)
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise Finding(found[0] + more)


@check("ATS-SHR-01")
def entitled_query_answers_typed_records(ctx: CheckContext) -> None:
    """An entitled query answers 200 with records holding exactly the items, each well typed."""
    found: list[str] = []
    for entry in _shared_api_entries(ctx, _MORE_RESOURCES):
        code = str(entry["resource_code"])
        items = items_of(entry)
        ex = query(ctx, code, {"size": 100})
        answer = query_answer(ex, f"a query of {code} by an entitled consumer")
        if answer["resource_code"] != code:
            found.append(f"{code}: the answer names resource_code {answer['resource_code']!r}")
        found.extend(_record_findings(code, answer["items"], set(items), items))
    _raise_first(ctx, found)


def _settings(seed_value: int, examples: int) -> Any:
    return lambda test: seed(seed_value)(
        settings(
            max_examples=examples,
            phases=(Phase.generate,),
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )(test)
    )


@check("ATS-SHR-02")
def fields_select_exactly(ctx: CheckContext) -> None:
    """``fields`` selects exactly those items; undeclared or duplicate items answer 400."""
    code = ctx.target.resources["unconditional"]
    items = items_of(fetch_entry(ctx, code))
    if not items:
        ctx.error(f"the unconditional resource {code} declares no items to select")
    names = sorted(items)
    found: list[str] = []

    @_settings(generation_seed(ctx), _EXAMPLES)
    @given(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    def probe(fields: list[str]) -> None:
        ex = query(ctx, code, {"fields": fields, "size": 20})
        answer = query_answer(ex, f"a query of {code} with fields {fields}")
        found.extend(_record_findings(code, answer["items"], set(fields), items, typed=False))

    probe()
    _raise_first(ctx, found)
    for label, body in (
        ("an undeclared item in fields", {"fields": [names[0], _UNDECLARED]}),
        ("an undeclared item in filter", {"filter": {_UNDECLARED: "x"}}),
        ("a duplicate in fields", {"fields": [names[0], names[0]]}),
    ):
        ex = query(ctx, code, body)
        expect_status(ex, 400, "INVALID_REQUEST", what=f"a query of {code} with {label}")


def _record_key(record: Any) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def _wrong_type_value(item: Mapping[str, Any], real: Any) -> Any:
    """A value of the wrong JSON type for the item, textually equal to a real one if possible."""
    if isinstance(real, str):
        return 1 if not real.isdigit() else int(real)
    if isinstance(real, bool):
        return "true" if real else "false"
    if isinstance(real, int | float):
        return str(real)
    return 1 if item.get("data_type") in ("C", "M", "D", "T", "B", "G") else "1"


def _usable(value: Any, item: Mapping[str, Any]) -> bool:
    """A record value fit to be a filter value: present, well typed, semantically valid."""
    return (
        value is not None
        and value_problem(value, item) is None
        and _semantic_problem(value, item, masked=False) is None
    )


@check("ATS-SHR-03")
def filter_exact_and_conjunctive(ctx: CheckContext) -> None:
    """``filter`` answers exactly the records equal on every pair, ``total`` their number; a
    value of the wrong JSON type answers 400."""
    code = ctx.target.resources["unconditional"]
    items = items_of(fetch_entry(ctx, code))
    every = fetch_records(
        ctx, code, what=f"the unfiltered query of {code}", max_records=_MAX_RECORDS
    )
    # Records are compared on their declared items; values that break ATS-SHR-01 or ATS-SHR-06
    # are not used as filter values (those clauses report them).
    records = [
        {k: v for k, v in r.items() if k in items} for r in every.records if isinstance(r, dict)
    ]
    # Masked values are not the real ones: filters on them are ATS-PRIV-03's to judge.
    filterable = sorted(n for n in items if n not in every.masked)
    if not records or not filterable:
        ctx.error(f"{code} answers no records or only masked items to filter on")
    found: list[str] = []

    @_settings(generation_seed(ctx), _EXAMPLES)
    @given(
        st.integers(0, len(records) - 1),
        st.lists(st.sampled_from(filterable), min_size=1, max_size=3, unique=True),
        st.booleans(),
    )
    def probe(index: int, names: list[str], miss: bool) -> None:
        pairs = {n: records[index][n] for n in names if _usable(records[index].get(n), items[n])}
        if not pairs:
            return
        if miss:
            # ATS-SHR-03: a value of another record keeps the item's JSON type, data_type,
            # length and semantic, so the node must answer 200; an invented value could be of
            # the wrong type or too long, which a node may refuse with 400 (ATS-API-05).
            name = next(iter(pairs))
            pairs[name] = next(
                (
                    r[name]
                    for r in records
                    if _usable(r.get(name), items[name]) and not same_json(r[name], pairs[name])
                ),
                pairs[name],
            )
        expected = sorted(
            _record_key(r) for r in records if all(same_json(r.get(n), v) for n, v in pairs.items())
        )
        got = fetch_records(
            ctx, code, {"filter": pairs}, what=f"a query of {code} with filter {sorted(pairs)}",
            max_records=_MAX_RECORDS,
        )  # fmt: skip
        shown = [{k: v for k, v in r.items() if k in items} for r in got.records]
        if got.total != len(expected) or sorted(map(_record_key, shown)) != expected:
            found.append(
                f"{code}: a filter on {sorted(pairs)} answered total {got.total} with "
                f"{len(got.records)} records; {len(expected)} of the {len(records)} records "
                f"equal every pair (same JSON type and value)"
            )

    probe()
    _raise_first(ctx, found)
    for name in filterable:
        real = next((r[name] for r in records if _usable(r.get(name), items[name])), None)
        if real is None:
            continue
        wrong = _wrong_type_value(items[name], real)
        ex = query(ctx, code, {"filter": {name: wrong}})
        expect_status(
            ex, 400, "INVALID_REQUEST",
            what=f"a filter on {code} item {name} ({items[name].get('data_type')}) with a JSON "
            f"{type(wrong).__name__}",
        )  # fmt: skip


@check("ATS-SHR-04")
def conditional_requires_subscription(ctx: CheckContext) -> None:
    """A CONDITIONAL resource answers 403 SUBSCRIPTION_REQUIRED without an approved
    subscription."""
    code = ctx.target.resources["conditional"]
    entry = fetch_entry(ctx, code)
    if (entry.get("share") or {}).get("type") != "CONDITIONAL":
        ctx.error(f"the target file's conditional resource {code} is not CONDITIONAL")
    # consumer_b first: it never holds an approved subscription to it (ATS-CAT-06 and the SUB
    # checks approve consumer's, then revoke them).
    for app in ("consumer_b", "consumer"):
        if approved_subscriptions(ctx, app, code):
            ctx.note(f"{app} holds an approved subscription to {code}; not usable here")
            continue
        ex = query(ctx, code, {}, app=app)
        expect_status(
            ex, 403, "SUBSCRIPTION_REQUIRED", what=f"a query of {code} by {app} (no subscription)"
        )
        return
    ctx.error(f"both consumer apps hold an approved subscription to {code}")


@check("ATS-SHR-05")
def not_shared_refused(ctx: CheckContext) -> None:
    """A NOT_SHARED resource answers 403 FORBIDDEN to every consumer; its entry stays visible."""
    code = ctx.target.resources["not_shared"]
    for app in ("consumer", "consumer_b"):
        ex = ctx.client.get(f"/api/v1/catalog/resources/{code}", app=app)
        expect_status(ex, 200, what=f"the catalog lookup of NOT_SHARED {code} by {app}")
        if (ex.json().get("share") or {}).get("type") != "NOT_SHARED":
            ctx.error(f"the target file's not_shared resource {code} is not NOT_SHARED")
        ex = query(ctx, code, {}, app=app)
        expect_status(ex, 403, "FORBIDDEN", what=f"a query of NOT_SHARED {code} by {app}")


_SEMANTIC_CHECKS = {
    "ID_NUMBER": codes.id_number_problem,
    "USCC": codes.uscc_problem,
    "DIVISION_CODE": codes.division_problem,
}


def _masked_id_problem(value: str) -> str | None:
    """A masked id number keeps its first 6 and last 4 characters: a division prefix and a
    tail of 3 digits and the check character."""
    if reason := codes.masked_shape_problem(value, "ID_NUMBER", 18):
        return reason
    head, tail = value[:6], value[-4:]
    if not (head.isascii() and head.isdigit()) or head[:2] not in codes.PROVINCE_CODES:
        return "masked id number does not keep its first 6 characters (a division prefix)"
    if not (tail[:3].isascii() and tail[:3].isdigit()) or tail[3] not in "0123456789X":
        return "masked id number does not keep its last 4 characters"
    return None


def _semantic_problem(value: Any, item: Mapping[str, Any], masked: bool) -> str | None:
    semantic = item.get("semantic")
    if value is None or semantic not in _SEMANTIC_CHECKS:
        return None
    if masked:
        rule = str(item.get("mask", semantic))
        if semantic == "ID_NUMBER" and rule == "ID_NUMBER" and isinstance(value, str):
            return _masked_id_problem(value)
        return codes.masked_shape_problem(value, rule)
    return _SEMANTIC_CHECKS[str(semantic)](value)


def _coded_findings(
    code: str,
    records: list[Any],
    items: Mapping[str, Mapping[str, Any]],
    masked: set[str],
    label: str,
) -> tuple[int, list[str]]:
    """The values checked and what breaks ATS-SHR-06 among the coded items of ``records``."""
    coded = {n for n, i in items.items() if i.get("semantic") in _SEMANTIC_CHECKS}
    found: list[str] = []
    checked = 0
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            continue
        for name in sorted(coded & set(record)):
            reason = _semantic_problem(record[name], items[name], name in masked)
            checked += 1
            if reason:
                found.append(f"{code}: {label} {number}, item {name}: {reason}")
    return checked, found


def _unmasked_findings(ctx: CheckContext, entry: Mapping[str, Any]) -> tuple[int, list[str]]:
    """ATS-SHR-06 on the values an unmasked grant shows (GB 11643 on real id numbers): the
    population resource read as ATS-PRIV-02 reads it, under consumer_b's unmasked subscription."""
    code = str(entry["resource_code"])
    try:
        real = real_records(ctx, code)
    except Finding as exc:
        # The grant itself is ATS-SUB-01's and ATS-PRIV-02's to judge.
        raise Inconclusive(
            f"the unmasked values of {code} could not be read, so id numbers cannot be checked "
            f"against GB 11643: {exc.reason}"
        ) from None
    return _coded_findings(code, real.records, items_of(entry), set(real.masked), "unmasked record")


@check("ATS-SHR-06")
def values_match_semantic(ctx: CheckContext) -> None:
    """Id numbers, credit codes and division codes in records are valid when unmasked, and
    masked in shape when masked."""
    found: list[str] = []
    checked = 0
    population = fetch_entry(ctx, ctx.target.resources["population"])
    entries = [population, *_shared_api_entries(ctx, _MORE_RESOURCES)]
    for entry in entries:
        items = items_of(entry)
        coded = {n for n, i in items.items() if i.get("semantic") in _SEMANTIC_CHECKS}
        share = entry.get("share") or {}
        if not coded or share.get("type") != "UNCONDITIONAL" or share.get("method") != "API":
            continue
        code = str(entry["resource_code"])
        if entry is population and sensitive_items(entry).keys() & coded:
            count, lines = _unmasked_findings(ctx, entry)
            checked += count
            found.extend(lines)
        ex = query(ctx, code, {"fields": sorted(coded), "size": 100})
        answer = query_answer(ex, f"a query of {code}")
        count, lines = _coded_findings(
            code, answer["items"], items, set(answer["masked"]), "record"
        )
        checked += count
        found.extend(lines)
    if not checked:
        ctx.skip("no shared resource declares ID_NUMBER, USCC or DIVISION_CODE items")
    ctx.note(f"{checked} coded values checked, unmasked and as the consumer sees them")
    _raise_first(ctx, found)


def _forwarded(ctx: CheckContext, code: str) -> bool:
    neighbours = ctx.neighbours
    if neighbours is None:
        return False
    return any(n.recorded(share_path(code)) for n in neighbours.all())


@check("ATS-SHR-07")
def malformed_or_unheld_code_not_found(ctx: CheckContext) -> None:
    """A malformed code answers 404 without forwarding; a well-formed code no node holds
    answers 404."""
    for case in corpus("data-chapters")["malformed_codes"]:
        code = str(case["code"])
        ex = query(ctx, code, {})
        expect_status(ex, 404, "NOT_FOUND", what=f"a query of {code!r} ({case['description']})")
        if _forwarded(ctx, code):
            raise Finding(
                f"a query of malformed code {code!r} reached a neighbour; expected 404 without "
                f"forwarding ({request_text(ex)})"
            )
    unknown = "399999/999999"
    lookup = ctx.client.get(f"/api/v1/catalog/resources/{unknown}", app="consumer")
    if lookup.status != 404:
        ctx.error(f"the subtree catalog holds {unknown}; no unheld code to query")
    ex = query(ctx, unknown, {})
    parent_emulated = ctx.neighbours is not None and ctx.neighbours.parent is not None
    if ex.status in (502, 504) and not parent_emulated and ctx.target.node.parent_id:
        raise Inconclusive(
            f"a query of unheld {unknown} was answered {ex.status}: routing to the parent could "
            "not end, so where it ends cannot be judged"
        )
    expect_status(ex, 404, "NOT_FOUND", what=f"a query of {unknown}, which no node holds")
