"""Checks of ATS-1.0 chapter 7 (PRIV): personal information protection.

The suite learns the real values of the population resource through an unmasked subscription of
consumer_b, approved by the admin and revoked once read; consumer never holds an unmasked grant,
so its answers show the node's masking, compared exactly with ``conformance.codes.mask`` of the
real values. consumer_b is never used to judge masking: ATS §6 leaves open whether revoking an
UNCONDITIONAL subscription restores it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from conformance import codes
from conformance.checks import CheckContext, Finding, check
from conformance.checks._catalog_walk import CatalogWalk, fetch_entry
from conformance.checks._expect import expect_json_object, expect_status, request_text
from conformance.checks._records import (
    Subscriptions,
    items_of,
    query,
    query_answer,
)
from conformance.client import Exchange

_PAGE = {"page": 1, "size": 100}
_AUDIT = "/api/v1/audit/events"
# ATS-AUD-01: an event is recorded within 5 s.
_AUDIT_WAIT_S = 5.0
_AUDIT_POLL_S = 0.5


@check("ATS-PRIV-01")
def personal_items_marked_sensitive(ctx: CheckContext) -> None:
    """Personal items of a resource about natural persons are sensitive with the mask of the
    same name."""
    marker = str(ctx.params["person_marker"])
    personal = {str(s) for s in ctx.params["personal_semantics"]}
    found: list[str] = []
    persons = 0
    for entry in CatalogWalk(ctx, scope="local"):
        items = items_of(entry)
        if not any(i.get("semantic") == marker for i in items.values()):
            continue
        persons += 1
        for name, item in items.items():
            semantic = item.get("semantic")
            if semantic in personal and (
                item.get("sensitive") is not True or item.get("mask") != semantic
            ):
                found.append(
                    f"entry {entry.get('resource_code')}: item {name} ({semantic}) is declared "
                    f"sensitive {item.get('sensitive')!r}, mask {item.get('mask')!r}; expected "
                    f"sensitive true, mask {semantic}"
                )
    if not persons:
        ctx.skip(f"no local resource declares an {marker} item: none is about natural persons")
    if found:
        raise Finding(found[0] + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))


def _sensitive_items(entry: Mapping[str, Any]) -> dict[str, str]:
    """The declared sensitive items of an entry and their mask rules."""
    return {
        name: str(item["mask"])
        for name, item in items_of(entry).items()
        if item.get("sensitive") is True and item.get("mask") in codes.MASK_RULES
    }


def _real_records(ctx: CheckContext) -> list[dict[str, Any]]:
    """The first page of the population resource as an unmasked grant shows it (once a run)."""

    def read() -> list[dict[str, Any]]:
        code = ctx.target.resources["population"]
        with Subscriptions(ctx) as subs:
            subs.approved("consumer_b", code, unmasked=True, what="an unmasked subscription")
            ex = query(ctx, code, _PAGE, app="consumer_b")
            answer = query_answer(ex, f"a query of {code} under an unmasked grant")
        if answer["masked"]:
            raise Finding(
                f"a query of {code} under an approved unmasked subscription masks "
                f"{answer['masked']}; expected masked [] ({request_text(ex)})"
            )
        return [r for r in answer["items"] if isinstance(r, dict)]

    return ctx.run.cached("population-real-records", read)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, member in value.items():
            yield str(key)
            yield from _strings(member)
    elif isinstance(value, list):
        for member in value:
            yield from _strings(member)


def _leaked(body: Any, secrets_known: Iterable[str]) -> str | None:
    """The first known value found inside a string of ``body``."""
    texts = list(_strings(body))
    for value in secrets_known:
        if any(value in text for text in texts):
            return value
    return None


def _known_values(records: list[dict[str, Any]], sensitive: Mapping[str, str]) -> list[str]:
    """Real sensitive values long enough that a mask hides part of them."""
    values = set()
    for record in records:
        for name, rule in sensitive.items():
            value = record.get(name)
            if isinstance(value, str) and codes.mask(value, rule) != value:
                values.add(value)
    return sorted(values, key=len, reverse=True)


@check("ATS-PRIV-02")
def sensitive_values_masked(ctx: CheckContext) -> None:
    """Sensitive values are masked exactly per their rule and listed in ``masked``, unless the
    caller's approved subscription is unmasked."""
    code = ctx.target.resources["population"]
    sensitive = _sensitive_items(fetch_entry(ctx, code))
    if not sensitive:
        ctx.error(f"the population resource {code} declares no sensitive items")
    real = _real_records(ctx)
    ex = query(ctx, code, _PAGE)
    answer = query_answer(ex, f"a query of {code} by consumer")
    shown = [r for r in answer["items"] if isinstance(r, dict)]
    selected = set(items_of(fetch_entry(ctx, code)))
    if set(answer["masked"]) != set(sensitive) & selected:
        raise Finding(
            f"a query of {code} answered masked {sorted(answer['masked'])}; expected the "
            f"sensitive selected items {sorted(sensitive)} ({request_text(ex)})"
        )
    if len(shown) != len(real):
        ctx.error(f"{code} answered {len(shown)} records masked and {len(real)} unmasked")
    for number, (masked, original) in enumerate(zip(shown, real, strict=True), start=1):
        for name, rule in sorted(sensitive.items()):
            expected = codes.mask(original.get(name), rule)
            if masked.get(name) != expected:
                reason = codes.masked_shape_problem(masked.get(name), rule) or (
                    f"it differs from the {rule} mask of the real value"
                )
                raise Finding(
                    f"{code}: record {number}, item {name} is not masked per {rule}: {reason} "
                    f"({request_text(ex)})"
                )
    if _leaked(answer, _known_values(real, sensitive)):
        raise Finding(f"a masked answer of {code} holds the real value of a sensitive item")
    ctx.note(f"{len(shown)} records compared with the masks of their real values")


@check("ATS-PRIV-03")
def filter_on_sensitive_item_masks_answer(ctx: CheckContext) -> None:
    """A filter on a sensitive item works with the real value, and the answer still masks it."""
    code = ctx.target.resources["population"]
    items = items_of(fetch_entry(ctx, code))
    sensitive = _sensitive_items(fetch_entry(ctx, code))
    real = _real_records(ctx)
    probes = 0
    for name, rule in sorted(sensitive.items()):
        # A value that breaks its semantic (ATS-SHR-06) is not the stored one: not a probe.
        record = next((r for r in real if _semantic_valid(r.get(name), items[name])), None)
        if record is None:
            continue
        value = record[name]
        ex = query(ctx, code, {"filter": {name: value}, **_PAGE})
        answer = query_answer(ex, f"a filter of {code} on sensitive item {name}")
        expected = sum(1 for r in real if r.get(name) == value)
        probes += 1
        if answer["total"] < expected or not answer["items"]:
            raise Finding(
                f"a filter of {code} on sensitive item {name} with a real value answered total "
                f"{answer['total']}; expected at least {expected} ({request_text(ex)})"
            )
        if name not in answer["masked"]:
            raise Finding(
                f"a filter of {code} on {name} answered masked {answer['masked']}; expected "
                f"{name} still masked ({request_text(ex)})"
            )
        # Masked at all is this clause's point; masked exactly per the rule is ATS-PRIV-02's.
        for got in answer["items"]:
            if isinstance(got, dict) and got.get(name) == value != codes.mask(value, rule):
                raise Finding(
                    f"a filter of {code} on {name} answered a record whose {name} is the real, "
                    f"unmasked value; expected it masked ({request_text(ex)})"
                )
    if not probes:
        ctx.error(f"no real value of a sensitive item of {code} to filter on")


_SEMANTIC_CHECKS = {"ID_NUMBER": codes.id_number_problem}


def _semantic_valid(value: Any, item: Mapping[str, Any]) -> bool:
    if not isinstance(value, str) or not value:
        return False
    check = _SEMANTIC_CHECKS.get(str(item.get("semantic")))
    return check is None or check(value) is None


def _request_id() -> str:
    return f"ats-priv-{secrets.token_hex(12)}"


def _audit_events(ctx: CheckContext, request_id: str) -> list[Exchange]:
    """The audit answers for ``request_id``, waiting up to the ATS-AUD-01 bound for events."""
    deadline = time.monotonic() + _AUDIT_WAIT_S
    while True:
        ex = ctx.client.get(_AUDIT, app="admin", params=[("request_id", request_id)])
        expect_status(ex, 200, what="the audit trail read by the provider-admin")
        items = expect_json_object(ex, what="the audit trail").get("items")
        if (isinstance(items, list) and items) or time.monotonic() > deadline:
            return [ex]
        time.sleep(_AUDIT_POLL_S)


@check("ATS-PRIV-04")
def filter_values_not_echoed(ctx: CheckContext) -> None:
    """Error messages never echo filter values; audit events never hold filter values or
    unmasked sensitive values."""
    population = ctx.target.resources["population"]
    entry = fetch_entry(ctx, population)
    items = items_of(entry)
    sensitive = _sensitive_items(entry)
    real = _real_records(ctx)
    known = _known_values(real, sensitive)
    marker = f"atsleak{secrets.token_hex(6)}"
    digits = int("7" + "".join(str(secrets.randbelow(10)) for _ in range(12)))
    string_item = next(
        (n for n, i in sorted(items.items()) if i.get("data_type") in ("C", "M")), None
    )
    id_item = next((n for n, r in sorted(sensitive.items()) if r == "ID_NUMBER"), None)
    real_id = next((r[id_item] for r in real if id_item and isinstance(r.get(id_item), str)), None)
    probes: list[tuple[str, dict[str, Any], list[str]]] = [
        ("an undeclared filter item", {"ats_undeclared_item": marker}, [marker]),
    ]
    if string_item:
        probes.append(
            (f"a number for string item {string_item}", {string_item: digits}, [str(digits)])
        )
    if id_item and real_id:
        probes.append((f"a list for {id_item}", {id_item: [real_id, marker]}, [real_id, marker]))
    sent: list[tuple[str, list[str]]] = []
    for label, filters, values in probes:
        rid = _request_id()
        ex = query(ctx, population, {"filter": filters}, headers={"X-Request-Id": rid})
        # Whether the node refuses the filter is ATS-SHR-02/-03's; this clause judges echoes.
        text = ex.body.decode("utf-8", "replace")
        if leak := next((v for v in values if v in text), None):
            shown = "a real id number" if leak == real_id else repr(leak)
            raise Finding(
                f"the error answer to a filter with {label} echoes the filter value {shown}; "
                f"expected messages without filter values ({request_text(ex)})"
            )
        sent.append((rid, values))
    if id_item and real_id:
        rid = _request_id()
        ex = query(ctx, population, {"filter": {id_item: real_id}}, headers={"X-Request-Id": rid})
        expect_status(ex, 200, what=f"a filter on {id_item} with a real value")
        sent.append((rid, [real_id]))
    for rid, values in sent:
        for ex in _audit_events(ctx, rid):
            body = ex.json()
            if leak := _leaked(body, [*values, *known]):
                what = "a filter value" if leak in values else "an unmasked sensitive value"
                raise Finding(
                    f"the audit events of request {rid} hold {what}; expected neither filter "
                    f"values nor unmasked sensitive values ({request_text(ex)})"
                )
    ctx.note(f"{len(sent)} requests and their audit events checked for {len(known)} values")
