"""Checks of ATS-1.0 chapter 4 (CAT): the government information resource catalog.

Every check streams the catalog with ``CatalogWalk`` (pages of 100): memory stays flat as the
catalog grows. A finding names the entry's code and the field, expected against seen.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from conformance import codes, compare
from conformance.ats import CATALOG
from conformance.checks import CheckContext, Finding, check
from conformance.checks._catalog_walk import (
    CatalogWalk,
    EntryRules,
    entry_path,
    node_date,
    parse_offset,
    shape_problems,
    vocabulary_names,
    without_null_options,
)
from conformance.checks._expect import expect_json_object, expect_status, request_text
from conformance.checks._records import entitled, items_of, query, query_answer
from conformance.checks._semantics import (
    lacks_semantic,
    queryable_by_consumer,
    sample_records,
    undeclared_semantics,
)
from conformance.checks._small_pages import judge_small_pages

# The cascade checks own the child's pushes and its seq counter in the run state.
from conformance.checks.cascade.roles import child_code
from conformance.profile import get_clause

# How many entries ATS-CAT-03 looks up one by one, spread evenly over the walk.
_LOOKUP_SAMPLE = 12
# How many resources with items without `semantic` ATS-CAT-02 reads the values of.
_SEMANTIC_RESOURCES = 8
# How many distinct related codes ATS-CAT-05 looks up.
_RELATED_LOOKUPS = 50
# The records ATS-CAT-06 reads of each queryable resource (one page).
_CAT06_RECORDS = 100


def _findings(ctx: CheckContext, found: list[str], what: str) -> None:
    """Raise one finding for every problem seen: the first in full, the count of the rest."""
    if not found:
        return
    for line in found[:20]:
        ctx.note(line)
    more = f" (and {len(found) - 1} more problems in {what})" if len(found) > 1 else ""
    raise Finding(found[0] + more)


@check("ATS-CAT-01")
def catalog_entries_complete(ctx: CheckContext) -> None:
    """Catalog lists in both scopes follow ATS-API-08 and every entry has the table's fields."""
    required = [str(name) for name in ctx.params["required_fields"]]
    found: list[str] = []
    for scope in ctx.params["scopes"]:
        walk = CatalogWalk(ctx, scope=str(scope), strict=True)
        listed: list[str] = []
        for entry in walk:
            found.extend(f"scope={scope}: {line}" for line in shape_problems(entry, required))
            listed.append(str(entry.get("resource_code")))
        ctx.note(f"scope={scope}: {walk.count} entries walked in {walk.requests} pages")
        # ATS-CAT-01 follows ATS-API-08 in both scopes, for every page size: small pages too.
        judge_small_pages(ctx, CATALOG, app="consumer", member="resource_code",
                          reference=listed, total=len(listed), params=[("scope", str(scope))],
                          label=f"the catalog list (scope={scope})")  # fmt: skip
    _findings(ctx, found, "the catalog")


@check("ATS-CAT-02")
def catalog_entries_valid(ctx: CheckContext) -> None:
    """Every catalog entry keeps the rules of the ATS §4 table (codes, conditions, items, dates)."""
    zone = parse_offset(str(ctx.params["local_offset"]))
    rules = EntryRules(
        today=node_date(ctx, zone), zone=zone, name_max_chars=int(ctx.params["name_max_chars"])
    )
    own = ctx.target.node.node_id
    found: list[str] = []
    local = CatalogWalk(ctx, scope="local")
    unmarked: list[dict[str, Any]] = []
    for entry in local:
        found.extend(rules.problems(entry))
        if len(unmarked) < _SEMANTIC_RESOURCES and queryable_by_consumer(entry):
            unmarked += [entry] if lacks_semantic(entry) else []
        if entry.get("node_id") != own:
            found.append(
                f"entry {entry.get('resource_code')}: node_id is {entry.get('node_id')!r}; "
                f"expected the node's own id {own!r} for a local entry"
            )
    subtree = CatalogWalk(ctx, scope="subtree")
    for entry in subtree:
        if entry.get("node_id") != own:
            found.extend(rules.problems(entry))
    ctx.note(f"{local.count} local and {subtree.count} subtree entries checked")
    found.extend(_semantic_problems(ctx, unmarked))
    _findings(ctx, found, "the catalog")


def _semantic_problems(ctx: CheckContext, entries: list[dict[str, Any]]) -> list[str]:
    """ATS §4 items: `semantic` is required on every item holding id numbers, credit codes,
    division codes or phone numbers; items without one are judged by a page of their values."""
    found = []
    for entry in entries:
        code = str(entry.get("resource_code"))
        records = sample_records(ctx, code)
        for name, semantic in undeclared_semantics(entry, records or []):
            found.append(
                f"entry {code}: item {name} declares no semantic, yet every value of it read "
                f"is a valid {semantic}; expected semantic {semantic} (required on every item "
                f"holding such values)"
            )
    ctx.note(f"{len(entries)} shared resources with items without semantic read for their values")
    return found


def _sample_indices(total: int, count: int) -> set[int]:
    if total <= count:
        return set(range(total))
    return {i * (total - 1) // (count - 1) for i in range(count)}


def _unknown_code(seen: set[str]) -> str:
    """A well-formed code the walked catalog does not hold."""
    for prefix, sequence in itertools.product(("399999", "299999", "199999"), range(999999, 0, -1)):
        code = f"{prefix}/{sequence:06d}"
        if code not in seen:
            return code
    raise AssertionError("unreachable: the catalog cannot hold every code")


def _table_fields(ctx: CheckContext) -> list[str]:
    """The fields of the ATS §4 table, as ATS-CAT-01's parameters list them."""
    clause = ctx.profile.clause("ATS-CAT-01") if ctx.profile else get_clause("ATS-CAT-01")
    return [str(name) for name in clause.params["required_fields"]]


def _differences(got: Mapping[str, Any], listed: Mapping[str, Any], table: list[str]) -> list[str]:
    """The table's fields in which a lookup differs from the list entry.

    ATS §4 allows extra members, so only the table's fields are compared; ``updated_at`` is an
    instant (ATS-API-09), so the same moment written with another offset or fraction is equal.
    """
    members = {name: compare.CATALOG_ENTRY_MEMBERS.get(name) for name in table}
    return compare.differing_members(got, listed, members)


@check("ATS-CAT-03")
def catalog_codes_unique_and_resolvable(ctx: CheckContext) -> None:
    """Codes are unique in the subtree catalog, each lookup answers the listed entry, and an
    unknown code answers 404."""
    table = _table_fields(ctx)
    walk = CatalogWalk(ctx, scope="subtree")
    roles = dict(ctx.target.resources)
    picks: set[int] = set()
    sample: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    own = ctx.target.node.node_id
    held: str | None = None
    for index, entry in enumerate(walk):
        if index == 0:
            picks = _sample_indices(walk.total or 0, _LOOKUP_SAMPLE)
        code = str(entry["resource_code"])
        if code in seen:
            raise Finding(f"the subtree catalog lists {code} more than once; expected unique codes")
        seen.add(code)
        # ATS §4: the lookup finds any entry of the subtree catalog, a child's one included.
        child_entry = held is None and entry.get("node_id") != own
        if index in picks or code in roles.values() or child_entry:
            sample[code] = entry
        held = code if child_entry else held
    for role, code in sorted(roles.items()):
        if code not in seen:
            raise Finding(
                f"the {role} resource {code} of the target file is missing from the subtree "
                f"catalog list of {walk.count} entries; expected every entry to be listed"
            )
    for number, (code, listed) in enumerate(sorted(sample.items())):
        # Both spellings of ATS §4: the slash as it is, and %2F (either hex case).
        encoded = "%2F" if number % 2 == 0 else "%2f"
        for path in (entry_path(code), entry_path(code, encoded)):
            ex = ctx.client.get(path, app="consumer")
            expect_status(ex, 200, what=f"the lookup of listed entry {code}")
            got = expect_json_object(ex, what=f"the lookup of {code}")
            diff = _differences(without_null_options(got), without_null_options(listed), table)
            if diff:
                raise Finding(
                    f"the lookup of {code} differs from its list entry in {', '.join(diff)}; "
                    f"expected the same entry ({request_text(ex)})"
                )
    unknown = _unknown_code(seen)
    for path in (entry_path(unknown), entry_path(unknown, "%2F")):
        ex = ctx.client.get(path, app="consumer")
        expect_status(ex, 404, "NOT_FOUND", what=f"the lookup of unknown code {unknown}")
    if held is None:
        _judge_pushed_lookup(ctx)
    ctx.note(f"{walk.count} codes unique; {len(sample)} looked up in both spellings")


def _judge_pushed_lookup(ctx: CheckContext) -> None:
    """The subtree catalog holds no child's entry: where the suite plays the child (ATS §8), it
    pushes one, looks it up (ATS §4: any entry of the subtree catalog) and removes it."""
    neighbours = ctx.target.neighbours
    if neighbours is None or neighbours.child is None or neighbours.live:
        ctx.note(
            "the subtree catalog holds no child's entry and the suite plays no child here: "
            "the lookup of a child's entry is not probed"
        )
        return
    child = neighbours.child
    with child_code(ctx, child) as code:
        for path in (entry_path(code), entry_path(code, "%2F")):
            ex = ctx.client.get(path, app="consumer")
            expect_status(
                ex, 200, what=f"the lookup of {code}, pushed by the child {child.node_id}"
            )
            got = expect_json_object(ex, what=f"the lookup of {code}")
            if got.get("resource_code") != code:
                raise Finding(
                    f"the lookup of {code}, pushed by the child {child.node_id}, answered "
                    f"resource_code {got.get('resource_code')!r} ({request_text(ex)})"
                )


class _Listed(NamedTuple):
    code: str
    share_type: Any
    updated: datetime | None
    name: str
    summary: str


def _instant(text: Any) -> datetime | None:
    return compare.instant(text)


def _filtered_codes(ctx: CheckContext, filters: list[tuple[str, str]]) -> list[str]:
    return [str(e["resource_code"]) for e in CatalogWalk(ctx, scope=None, filters=filters)]


def _keyword_of(listed: list[_Listed]) -> str | None:
    """A substring of some entry's name that not every entry holds."""
    for entry in listed:
        if len(entry.name) >= 3:
            middle = entry.name[len(entry.name) // 3 : len(entry.name) // 3 + 2]
            if middle.strip() and not all(middle in e.name or middle in e.summary for e in listed):
                return middle
    return listed[0].name if listed else None


@check("ATS-CAT-04")
def catalog_filters_exact(ctx: CheckContext) -> None:
    """share_type, updated_since and keyword return exactly the matching entries; invalid
    filter values answer 400."""
    wanted = set(ctx.params["filters"])
    by_code = {
        str(e["resource_code"]): _Listed(
            str(e["resource_code"]),
            (e.get("share") or {}).get("type") if isinstance(e.get("share"), dict) else None,
            _instant(e.get("updated_at")),
            str(e.get("name", "")),
            str(e.get("summary", "")),
        )
        for e in CatalogWalk(ctx, scope=None)
    }
    listed = list(by_code.values())
    cases: list[tuple[str, list[tuple[str, str]], list[str]]] = []
    if "share_type" in wanted:
        for share_type in sorted(vocabulary_names("share_types")):
            expected = [e.code for e in listed if e.share_type == share_type]
            cases.append((f"share_type={share_type}", [("share_type", share_type)], expected))
    if "updated_since" in wanted:
        moments = sorted({e.updated for e in listed if e.updated is not None})
        if moments:
            pivot = moments[len(moments) // 2]
            expected = [e.code for e in listed if e.updated is not None and e.updated >= pivot]
            # The same instant written in +08:00 (its "+" percent-encoded, ATS-API-09).
            shown = pivot.astimezone(parse_offset("+08:00")).isoformat()
            cases.append((f"updated_since={shown}", [("updated_since", shown)], expected))
    keyword = _keyword_of(listed) if "keyword" in wanted else None
    if keyword is not None:
        expected = [e.code for e in listed if keyword in e.name or keyword in e.summary]
        cases.append((f"keyword={keyword}", [("keyword", keyword)], expected))
        swapped = keyword.swapcase()
        if swapped != keyword:
            expected = [e.code for e in listed if swapped in e.name or swapped in e.summary]
            cases.append((f"keyword={swapped} (case-sensitive)", [("keyword", swapped)], expected))
        if "share_type" in wanted:
            both = [
                e.code
                for e in listed
                if e.share_type == "UNCONDITIONAL" and (keyword in e.name or keyword in e.summary)
            ]
            cases.append(
                (
                    f"share_type=UNCONDITIONAL and keyword={keyword}",
                    [("share_type", "UNCONDITIONAL"), ("keyword", keyword)],
                    both,
                )
            )
    for label, filters, expected in cases:
        got = _filtered_codes(ctx, filters)
        # Order and paging are ATS-API-08's to judge; this clause judges membership.
        if set(got) != set(expected):
            extra = sorted(set(got) - set(expected))
            lacking = sorted(set(expected) - set(got))
            detail = "; ".join(
                part
                for part in (
                    f"it holds {extra[:3]} that do not match" if extra else "",
                    f"it lacks {lacking[:3]} that match" if lacking else "",
                )
                if part
            )
            raise Finding(
                f"the catalog filtered by {label} yields {len(got)} entries, "
                f"{len(expected)} of the {len(listed)} entries match; {detail}"
            )
    for name, value in (
        ("share_type", "SOMETIMES"),
        ("scope", "everywhere"),
        ("updated_since", "yesterday"),
    ):
        ex = ctx.client.get(CATALOG, app="consumer", params=[(name, value)])
        expect_status(ex, 400, "INVALID_REQUEST", what=f"the catalog list with {name}={value}")
    ctx.note(f"{len(cases)} filters compared against the {len(listed)} entries walked")


@check("ATS-CAT-05")
def related_codes_resolve(ctx: CheckContext) -> None:
    """Every related code of a catalog entry resolves with GET …/{code} at the node."""
    related: dict[str, str] = {}
    for entry in CatalogWalk(ctx, scope="subtree"):
        members = entry.get("related_codes")
        for code in members if isinstance(members, list) else ():
            if isinstance(code, str) and code not in related:
                related[code] = str(entry.get("resource_code"))
        if len(related) >= _RELATED_LOOKUPS:
            ctx.note(f"the first {_RELATED_LOOKUPS} distinct related codes are looked up")
            break
    for code, holder in sorted(related.items()):
        if codes.resource_code_problem(code):
            raise Finding(f"entry {holder}: related code {code!r} is not a well-formed code")
        ex = ctx.client.get(entry_path(code), app="consumer")
        expect_status(ex, 200, what=f"the lookup of {code}, a related code of entry {holder}")
    ctx.note(f"{len(related)} related codes resolved")


def _queryable(entry: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    share = entry.get("share")
    form = entry.get("format")
    if not isinstance(share, dict) or not isinstance(form, dict):
        return False
    kind = form.get("kind")
    return (
        share.get("type") in params["share_types"]
        and share.get("method") == params["share_method"]
        and kind in params["format_kinds"]
    )


def _extra_keys(records: Iterable[Mapping[str, Any]], declared: set[str]) -> list[str]:
    return sorted({key for record in records for key in record if key not in declared})


@check("ATS-CAT-06")
def api_resources_queryable(ctx: CheckContext) -> None:
    """Every shared database or self-describing resource served over the API answers an
    entitled consumer with records holding only its declared items."""
    # Entitlement of a CONDITIONAL resource is an approved subscription of consumer, revoked
    # right after; consumer_b stays without one for ATS-SHR-04 and ATS-SUB-04.
    limit = int(ctx.params.get("max_conditional", 10))
    queried = conditional = 0
    for entry in CatalogWalk(ctx, scope="local"):
        if not _queryable(entry, ctx.params):
            continue
        code = str(entry["resource_code"])
        is_conditional = entry["share"]["type"] == "CONDITIONAL"
        if is_conditional:
            conditional += 1
            if conditional > limit:
                continue
        app = "consumer"
        declared = set(items_of(entry))
        with entitled(ctx, app, entry):
            ex = query(ctx, code, {"size": _CAT06_RECORDS}, app=app)
            answer = query_answer(ex, f"a query of {code} by an entitled consumer")
        extra = _extra_keys(answer["items"], declared)
        if extra:
            raise Finding(
                f"records of {code} hold {extra}, not declared in its catalog entry; expected "
                f"only its items {sorted(declared)} ({request_text(ex)})"
            )
        queried += 1
    if conditional > limit:
        ctx.note(
            f"{conditional - limit} CONDITIONAL resources beyond the first {limit} not queried"
        )
    ctx.note(f"{queried} resources queried")
