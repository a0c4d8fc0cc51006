"""Checks of ATS-1.0 chapter 5 (SHR): the data sharing service.

Queries go to the target file's resources and to other shared API resources of the local
catalog (a bounded number, for the coverage of data types and semantics). Generated queries
combine a projection and a filter; they come from hypothesis, seeded (the evidence records the
seed, and the clause's ``seed`` parameter in a profile reproduces them), with ``max_examples``
cases and no shrinking, so the request count stays bounded. The consumer app holds no unmasked
grant (ATS-PRIV-02 gives one to consumer_b only), so masking is the node's default here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from conformance import codes
from conformance.ats import catalog_entry_path, share_query_path
from conformance.checks import CheckContext, Finding, Inconclusive, check
from conformance.checks._catalog_walk import CatalogWalk, fetch_entry, remember_entry
from conformance.checks._expect import expect_status, request_text
from conformance.checks._payloads import corpus
from conformance.checks._records import (
    RecordSet,
    approved_subscriptions,
    fetch_records,
    generation_examples,
    generation_seed,
    items_of,
    query,
    query_answer,
    real_records,
    same_json,
    sensitive_items,
    value_problem,
)

# Other local resources queried for the coverage of data types and semantics.
_MORE_RESOURCES = 8
# Records read to build expectations for filters.
_MAX_RECORDS = 2000
_UNDECLARED = "ats_undeclared_item"
# ATS-CAT-06: the kinds whose API resources must answer share queries.
_QUERYABLE_KINDS = ("DATABASE", "SELF_DESCRIBING")


def _shared_api_entries(ctx: CheckContext, limit: int) -> Iterator[dict[str, Any]]:
    """The target's unconditional resource, then other local UNCONDITIONAL API resources of
    the kinds ATS-CAT-06 requires to be queryable (DATABASE, SELF_DESCRIBING): a SERVICE or
    FILE resource need not answer share queries."""
    first = ctx.target.resources["unconditional"]
    yield fetch_entry(ctx, first)
    more = 0
    for entry in CatalogWalk(ctx, scope="local", filters=[("share_type", "UNCONDITIONAL")]):
        share = entry.get("share")
        if entry.get("resource_code") == first or not isinstance(share, dict):
            continue
        form = entry.get("format")
        kind = form.get("kind") if isinstance(form, dict) else None
        if (
            share.get("type") == "UNCONDITIONAL"
            and share.get("method") == "API"
            and kind in _QUERYABLE_KINDS
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


@dataclass(frozen=True)
class _Case:
    """A generated query: a projection and a filter built from a record's values."""

    fields: list[str]
    pairs: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return {"fields": self.fields, "filter": self.pairs}

    def label(self) -> str:
        return f"fields {self.fields or 'all'} and filter on {sorted(self.pairs) or 'nothing'}"


@dataclass
class _Resource:
    """The resource generated cases query: its items, its records read unfiltered, and the
    items that answer masks (the consumer's masking does not depend on the query)."""

    code: str
    items: dict[str, dict[str, Any]]
    records: list[dict[str, Any]]
    masked: set[str]
    # False: a large resource, ``records`` its first pages (a bounded sample).
    complete: bool = True

    def selected(self, case: _Case) -> set[str]:
        # ATS §5: `fields: []` equals absent, every item.
        return set(case.fields) or set(self.items)

    def expected(self, case: _Case) -> list[str]:
        """The records equal on every pair, projected on the selected items, as keys."""
        chosen = self.selected(case)
        return sorted(
            _record_key({k: v for k, v in r.items() if k in chosen})
            for r in self.records
            if all(same_json(r.get(n), v) for n, v in case.pairs.items())
        )


def _resource(ctx: CheckContext) -> _Resource:
    """The target's unconditional resource, read once a run."""

    def read() -> _Resource:
        code = ctx.target.resources["unconditional"]
        items = items_of(fetch_entry(ctx, code))
        every = fetch_records(
            ctx, code, what=f"the unfiltered query of {code}", max_records=_MAX_RECORDS, sample=True
        )
        if not every.complete:
            ctx.note(
                f"{code} holds {every.total} records: cases are drawn from its first "
                f"{len(every.records)}, and each answer is judged as far as a sample shows"
            )
        # Records are compared on their declared items; values that break ATS-SHR-01 or
        # ATS-SHR-06 are not used as filter values (those clauses report them).
        records = [
            {k: v for k, v in r.items() if k in items} for r in every.records if isinstance(r, dict)
        ]
        return _Resource(code, items, records, set(every.masked), every.complete)

    resource: _Resource = ctx.run.cached("generated-cases-resource", read)
    if not resource.items or not resource.records:
        ctx.error(f"{resource.code} declares no items or answers no records to generate from")
    return resource


def _cases(resource: _Resource) -> st.SearchStrategy[_Case]:
    """Projections and filters together: a subset of the items (none: all) and up to three
    pairs of one record, one of them possibly another record's value (a miss)."""
    names = sorted(resource.items)
    # Masked values are not the real ones: filters on them are ATS-PRIV-03's to judge.
    filterable = [n for n in names if n not in resource.masked]

    @st.composite
    def case(draw: st.DrawFn) -> _Case:
        fields = draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True))
        index = draw(st.integers(0, len(resource.records) - 1))
        chosen = (
            draw(st.lists(st.sampled_from(filterable), max_size=3, unique=True))
            if filterable
            else []
        )
        record = resource.records[index]
        pairs = {n: record[n] for n in chosen if _usable(record.get(n), resource.items[n])}
        if pairs and draw(st.booleans()) is True:
            # ATS-SHR-03: a value of another record keeps the item's JSON type, data_type,
            # length and semantic, so the node must answer 200; an invented value could be of
            # the wrong type or too long, which a node may refuse with 400 (ATS-API-05).
            name = draw(st.sampled_from(sorted(pairs)))
            pairs[name] = next(
                (
                    r[name]
                    for r in resource.records
                    if _usable(r.get(name), resource.items[name])
                    and not same_json(r[name], pairs[name])
                ),
                pairs[name],
            )
        return _Case(fields, pairs)

    return case()


def _run_cases(
    ctx: CheckContext, resource: _Resource, judge: Callable[[_Case, RecordSet], list[str]]
) -> list[str]:
    """The findings of ``judge`` over the generated cases (seeded, bounded, no shrinking)."""
    found: list[str] = []

    @_settings(generation_seed(ctx), generation_examples(ctx))
    @given(_cases(resource))
    def probe(case: _Case) -> None:
        got = fetch_records(
            ctx, resource.code, case.body(), what=f"a query of {resource.code} with "
            f"{case.label()}", max_records=_MAX_RECORDS, sample=True,
        )  # fmt: skip
        found.extend(judge(case, got))

    probe()
    return found


@check("ATS-SHR-02")
def fields_select_exactly(ctx: CheckContext) -> None:
    """``fields`` selects exactly those items, whatever the filter, and ``masked`` lists the
    masked items among them; undeclared or duplicate items answer 400."""
    resource = _resource(ctx)
    code, items = resource.code, resource.items

    def judge(case: _Case, got: RecordSet) -> list[str]:
        selected = resource.selected(case)
        found = _record_findings(code, got.records, selected, items, typed=False)
        # ATS §5: masked lists the sensitive items among the selected ones this answer masks,
        # whether or not a record is returned; the consumer's masking is the same whatever
        # the query, as the unfiltered query of every item showed it.
        if set(got.masked) != resource.masked & selected:
            found.append(
                f"{code}: a query with {case.label()} answered masked {sorted(got.masked)}; "
                f"expected {sorted(resource.masked & selected)}, the masked items among those "
                "selected"
            )
        return found

    _raise_first(ctx, _run_cases(ctx, resource, judge))
    first = sorted(items)[0]
    for label, body in (
        ("an undeclared item in fields", {"fields": [first, _UNDECLARED]}),
        ("an undeclared item in filter", {"filter": {_UNDECLARED: "x"}}),
        ("a duplicate in fields", {"fields": [first, first]}),
    ):
        ex = query(ctx, code, body)
        expect_status(ex, 400, "INVALID_REQUEST", what=f"a query of {code} with {label}")


@check("ATS-SHR-03")
def filter_exact_and_conjunctive(ctx: CheckContext) -> None:
    """``filter`` answers exactly the records equal on every pair, whatever the projection,
    ``total`` their number; a value of the wrong JSON type answers 400."""
    resource = _resource(ctx)
    code, items, records = resource.code, resource.items, resource.records
    filterable = sorted(n for n in items if n not in resource.masked)
    if not filterable:
        ctx.error(f"{code} answers only masked items to filter on")

    def judge(case: _Case, got: RecordSet) -> list[str]:
        expected = resource.expected(case)
        # The projection is ATS-SHR-02's: records are compared on the selected items only.
        chosen = resource.selected(case)
        shown = sorted(
            _record_key({k: v for k, v in r.items() if k in chosen})
            for r in got.records
            if isinstance(r, dict)
        )
        if not (resource.complete and got.complete):
            return _judge_sampled(resource, case, got, expected, shown)
        if got.total == len(expected) and shown == expected:
            return []
        return [
            f"{code}: a query with {case.label()} answered total {got.total} with "
            f"{len(got.records)} records; {len(expected)} of the {len(records)} records equal "
            "every pair (same JSON type and value)"
        ]

    _raise_first(ctx, _run_cases(ctx, resource, judge))
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
    _judge_near_values(ctx, resource, filterable)


# String items ATS-SHR-03's near-value probes filter on, and the records each answer may hold.
_NEAR_ITEMS = 3
_NEAR_RECORDS = 100


def _near_values(value: str) -> list[tuple[str, str]]:
    """Strings near a real value that "exact" does not match: a prefix, a proper substring,
    the value in the other case (each only where it differs from the value)."""
    near = []
    if len(value) >= 2:
        near.append(("a prefix", value[:-1]))
    if len(value) >= 3:
        near.append(("a proper substring", value[1:-1]))
    if value.swapcase() != value:
        near.append(("the other case", value.swapcase()))
    return near


def _judge_near_values(ctx: CheckContext, resource: _Resource, filterable: list[str]) -> None:
    """A filter on a near value of a real string selects only records holding exactly that
    value (ATS-SHR-03 "exact"): a node matching substrings or ignoring case answers more.

    A near value may break the item's length or semantic, which a node may refuse with 400
    (ATS-API-05); such an answer is not judged here.
    """
    code, items = resource.code, resource.items
    probed = 0
    for name in filterable:
        real = next(
            (
                r[name]
                for r in resource.records
                if isinstance(r.get(name), str)
                and len(r[name]) >= 3
                and _usable(r[name], items[name])
            ),
            None,
        )
        if real is None:
            continue
        probed += 1
        for label, near in _near_values(real):
            body = {"filter": {name: near}, "size": _NEAR_RECORDS}
            ex = query(ctx, code, body)
            if ex.status == 400:
                continue
            answer = query_answer(ex, f"a filter on {code} item {name} with {label} of a value")
            others = [r for r in answer["items"] if not same_json((r or {}).get(name), near)]
            if others or answer["total"] < len(answer["items"]):
                raise Finding(
                    f"a filter on {code} item {name} with {near!r}, {label} of the value "
                    f"{real!r}, answered total {answer['total']} with "
                    f"{len(answer['items'])} records, {len(others)} of them not equal to it; "
                    f"expected only records whose {name} equals {near!r} exactly "
                    f"(ATS-SHR-03) ({request_text(ex)})"
                )
        if probed >= _NEAR_ITEMS:
            return


def _judge_sampled(
    resource: _Resource, case: _Case, got: RecordSet, expected: list[str], shown: list[str]
) -> list[str]:
    """What a bounded sample shows of a filtered answer on a large resource: every record read
    equals every pair, ``total`` holds at least the sample's matches, and an answer read whole
    holds each of them (ATS-SHR-03; a sample never fails a conformant node)."""
    code = resource.code
    found = [
        f"{code}: a query with {case.label()} answered record {number}, which differs from "
        f"the filter on {name}"
        for number, record in enumerate(got.records, start=1)
        if isinstance(record, dict)
        for name, value in case.pairs.items()
        if name in record and not same_json(record[name], value)
    ][:1]
    if got.total < len(expected):
        found.append(
            f"{code}: a query with {case.label()} answered total {got.total}; at least "
            f"{len(expected)} of the {len(resource.records)} records read equal every pair"
        )
    elif got.complete:
        missing = Counter(expected) - Counter(shown)
        if missing:
            found.append(
                f"{code}: a query with {case.label()} lacks {sum(missing.values())} of the "
                f"records read that equal every pair"
            )
    return found


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
        ex = ctx.client.get(catalog_entry_path(code), app=app)
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
    return any(n.recorded(share_query_path(code)) for n in neighbours.all())


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
    lookup = ctx.client.get(catalog_entry_path(unknown), app="consumer")
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
