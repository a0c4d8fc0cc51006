"""Semantics recognised in record values: ATS §4 requires `semantic` "on every item holding such
values", so an item that declares none is judged by what its values are.

Only values a black-box tester can tell apart are recognised: citizen id numbers (GB 11643,
their check character) and unified social credit codes (GB 32100, two check characters), division
codes that GB/T 2260 lists, and mobile phone numbers (11 digits from ``13`` to ``19``). An item is
recognised only when every value of a sample of at least ``MIN_VALUES`` distinct strings is of
one kind, so that a code of another scheme that happens to share one value's shape is not taken
for one. Names, addresses and fixed-line numbers have no structure to recognise them by.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from conformance import codes
from conformance.checks import CheckContext, Inconclusive
from conformance.checks._records import items_of, query

# Distinct values an item must show before its semantic is recognised from them.
MIN_VALUES = 3
# Records read from one resource to recognise its items' values (one page).
SAMPLE_RECORDS = 100
_MOBILE = re.compile(r"1[3-9][0-9]{9}")

_RECOGNISERS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("ID_NUMBER", lambda v: codes.id_number_problem(v) is None),
    ("USCC", lambda v: codes.uscc_problem(v) is None),
    ("DIVISION_CODE", lambda v: v in codes.DIVISION_NAMES),
    ("PHONE", lambda v: _MOBILE.fullmatch(v) is not None),
)


def recognised_semantic(values: Iterable[object]) -> str | None:
    """The semantic every one of ``values`` shows, or None (too few distinct strings, or not
    all of one recognised kind)."""
    distinct = {v for v in values if v is not None}
    if len(distinct) < MIN_VALUES or not all(isinstance(v, str) for v in distinct):
        return None
    texts = [str(v) for v in distinct]
    for semantic, passes in _RECOGNISERS:
        if all(passes(v) for v in texts):
            return semantic
    return None


def lacks_semantic(entry: Mapping[str, Any]) -> bool:
    """Some item of the entry declares no ``semantic``."""
    return any("semantic" not in item for item in items_of(entry).values())


def queryable_by_consumer(entry: Mapping[str, Any]) -> bool:
    """The consumer can read the resource's records without a subscription (ATS §5)."""
    share = entry.get("share")
    return (
        isinstance(share, dict)
        and share.get("type") == "UNCONDITIONAL"
        and share.get("method") == "API"
        and bool(items_of(entry))
    )


def sample_records(ctx: CheckContext, code: str) -> list[dict[str, Any]] | None:
    """One page of the consumer's records of ``code`` (read once a run); None when the query
    is not answered 200 with a list of items (the share clauses judge that)."""

    def read() -> list[dict[str, Any]] | None:
        ex = query(ctx, code, {"size": SAMPLE_RECORDS})
        if ex.status != 200:
            return None
        try:
            body = ex.json()
        except Inconclusive:  # a body that is not JSON is ATS-API-01's finding
            return None
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return None
        return [r for r in items if isinstance(r, dict)]

    found: list[dict[str, Any]] | None = ctx.run.cached(f"semantics.sample:{code}", read)
    return found


def undeclared_semantics(
    entry: Mapping[str, Any], records: list[dict[str, Any]]
) -> Iterator[tuple[str, str]]:
    """(item name, semantic) for every item without ``semantic`` whose values show one."""
    for name, item in items_of(entry).items():
        if "semantic" in item:
            continue
        semantic = recognised_semantic(r.get(name) for r in records)
        if semantic is not None:
            yield name, semantic
