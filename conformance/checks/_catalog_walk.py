"""Catalog walking and the entry rules of ATS §4, shared by the data chapters' checks.

A walk streams the entries of ``GET /api/v1/catalog/resources`` page by page (pages of 100, the
largest ATS-API-08 allows), so memory stays flat however large the catalog grows; only the first
pages are recorded as evidence, and any page that decides a finding. The entry rules run on
compiled schemas (``conformance.schemas``) and ``conformance.codes``: no per-entry schema work.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, NoReturn
from urllib.parse import quote

from conformance import codes, compare, schemas
from conformance.ats import CATALOG, HEALTH
from conformance.checks import CheckContext, Finding, Inconclusive
from conformance.checks._expect import expect_json_object, expect_status, request_text
from conformance.client import EvidenceLog, Exchange, NodeClient
from conformance.profile import load_vocabulary

__all__ = [
    "CATALOG",
    "PAGE_SIZE",
    "CatalogWalk",
    "EntryRules",
    "cached_entry",
    "china_date",
    "entry_path",
    "fetch_entry",
    "node_date",
    "parse_offset",
    "remember_entry",
    "shape_problems",
    "vocabulary_names",
    "without_null_options",
]

# ATS-API-08: the largest page a node serves; the fewest requests per entry walked.
PAGE_SIZE = 100
# The first pages of a walk go to the clause's evidence; later ones only when they decide.
RECORDED_PAGES = 2
# The tester's bound on one walk (500 000 entries in pages of 100), not a requirement on the
# node: a node whose `total` or pages never end cannot keep a check running without end.
MAX_PAGES = 5000
_ENTRY_KEY = "catalog-entry-{code}"

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_CHINA = timezone(timedelta(hours=8))


def parse_offset(text: str) -> tzinfo:
    """The fixed offset ``±hh:mm`` of a profile parameter (``"+08:00"``) as a time zone."""
    sign = -1 if text.startswith("-") else 1
    hours, minutes = text.lstrip("+-").split(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))


def china_date(timestamp: str, zone: tzinfo = _CHINA) -> date | None:
    """The date of an RFC 3339 timestamp in ``zone`` (ATS §4 counts dates in +08:00)."""
    moment = compare.instant(timestamp)
    return None if moment is None else moment.astimezone(zone).date()


def node_date(ctx: CheckContext, zone: tzinfo = _CHINA) -> date:
    """The node's date in ``zone``: from its health ``time``, else the tester's clock."""

    def read() -> date:
        ex = ctx.client.get(HEALTH, app=None, allow_transport_error=True)
        try:
            body = ex.json() if ex.status == 200 else None
            seen = china_date(str(body.get("time")), zone) if isinstance(body, dict) else None
        except Inconclusive:  # a health body that is not JSON: the tester's clock decides
            seen = None
        return seen or datetime.now(zone).date()

    return ctx.run.cached(f"node-date-{zone}", read)


def entry_path(code: str, encoded: str | None = None) -> str:
    """The lookup path of a code: as it is (slash included), or with ``%2F`` / ``%2f``."""
    if encoded is None:
        return f"{CATALOG}/{code}"
    return f"{CATALOG}/{quote(code, safe='').replace('%2F', encoded)}"


def fetch_entry(ctx: CheckContext, code: str, app: str = "consumer") -> dict[str, Any]:
    """The catalog entry of ``code`` by ``GET …/{code}``, once per run."""

    def read() -> dict[str, Any]:
        ex = ctx.client.get(entry_path(code), app=app)
        expect_status(ex, 200, what=f"the catalog lookup of {code}")
        return expect_json_object(ex, what=f"the catalog lookup of {code}")

    return ctx.run.cached(_ENTRY_KEY.format(code=code), read)


def cached_entry(ctx: CheckContext, code: str) -> dict[str, Any] | None:
    """The catalog entry of ``code`` when the run has already read it, without a request."""
    entry = ctx.run.recall(_ENTRY_KEY.format(code=code))
    return entry if isinstance(entry, dict) else None


def remember_entry(ctx: CheckContext, entry: dict[str, Any]) -> None:
    """A walked entry a check goes on to query is kept as ``fetch_entry`` would keep it, so
    that its answers' evidence is masked per its declared sensitive items (ATS §7)."""
    code = entry.get("resource_code")
    if isinstance(code, str):
        ctx.run.values.setdefault(_ENTRY_KEY.format(code=code), entry)


class _CountingLog(EvidenceLog):
    """An evidence log that keeps no exchange, only their number: the unrecorded pages of a
    walk (a page that decides a finding is added to the clause's evidence by ``_fail``)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def add(self, ex: Exchange) -> None:
        """Counts the exchange; nothing of it is kept."""
        self.count += 1


class CatalogWalk:
    """A walk of the catalog list, page by page.

    A ``strict`` walk (ATS-CAT-01) raises ``Finding`` when the pages break ATS-API-08 (a
    changing ``total``, a short page before the end, entries out of ascending ``resource_code``
    order or repeated, a count other than ``total``). A lenient walk, for the checks of the
    entries themselves, yields whatever the pages hold until a short page, so that a paging
    defect is reported once, by the clauses about paging. ``requests`` counts the requests
    sent, ``count`` the entries yielded.
    """

    def __init__(
        self,
        ctx: CheckContext,
        *,
        scope: str | None = "local",
        filters: Sequence[tuple[str, str]] = (),
        app: str = "consumer",
        size: int = PAGE_SIZE,
        client: NodeClient | None = None,
        strict: bool = False,
    ) -> None:
        self.strict = strict
        self._client = client or ctx.client
        self._evidence = ctx.evidence
        self._params = [*((("scope", scope),) if scope else ()), *filters]
        self._app = app
        self._size = size
        self.total: int | None = None
        self.count = 0
        self.requests = 0
        label = ", ".join(f"{k}={v}" for k, v in self._params)
        self.label = f"the catalog list ({label})" if label else "the catalog list"

    def _page(self, client: NodeClient, page: int) -> tuple[Exchange, list[Any], int]:
        params = [*self._params, ("page", str(page)), ("size", str(self._size))]
        ex = client.request("GET", CATALOG, app=self._app, params=params)
        self.requests += 1
        what = f"page {page} of {self.label}"
        try:
            expect_status(ex, 200, what=what)
            body = expect_json_object(ex, what=what)
        except Finding:
            self._evidence.add(ex)
            raise
        items, total = body.get("items"), body.get("total")
        number = compare.integer(total)  # 25.0 is the integer 25 (ATS-API-09)
        if not isinstance(items, list) or number is None:
            self._fail(ex, f"{what} lacks `items` (a list) or `total` (an integer)")
        return ex, items, number

    def _fail(self, ex: Exchange, reason: str) -> NoReturn:
        if not any(e.get("target") == ex.target for e in self._evidence.entries[-3:]):
            self._evidence.add(ex)
        raise Finding(f"{reason} ({request_text(ex)})")

    def _pages(self) -> Iterator[tuple[int, Exchange, list[Any], int]]:
        """The pages in turn; the next one is already requested while the caller validates
        this one, so the node's work overlaps the tester's. Pages after the first
        ``RECORDED_PAGES`` are only counted, so that memory stays flat however long the walk."""
        unrecorded = _CountingLog()
        quiet = self._client.for_clause(unrecorded)
        fetched = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-walk") as pool:
            page = 1
            pending = pool.submit(self._page, self._client, page)
            while True:
                ex, items, total = pending.result()
                fetched += len(items)
                if self.total is None:
                    self.total = total
                more = len(items) >= self._size and (
                    fetched < self.total
                    if self.strict
                    # Bounded: a lenient walk never asks past one page beyond what total says.
                    else page * self._size <= self.total + self._size
                )
                if more and page >= MAX_PAGES:
                    raise Inconclusive(
                        f"{self.label} goes on past {MAX_PAGES} pages of {self._size}; the "
                        f"tester walks at most {MAX_PAGES * self._size} entries"
                    )
                if more:
                    client = self._client if page + 1 <= RECORDED_PAGES else quiet
                    pending = pool.submit(self._page, client, page + 1)
                yield page, ex, items, total
                if not more:
                    if unrecorded.count:
                        self._evidence.note(
                            f"{self.label}: {page} pages walked; the first {RECORDED_PAGES} "
                            f"are recorded, {unrecorded.count} more only counted"
                        )
                    return
                page += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        previous: str | None = None
        ex: Exchange | None = None
        for page, ex, items, total in self._pages():
            if not self.strict:
                for item in items:
                    if isinstance(item, dict):
                        self.count += 1
                        yield item
                continue
            if total != self.total:
                self._fail(
                    ex,
                    f"page {page} of {self.label} answered total {total}, page 1 {self.total}; "
                    "expected the same total while the catalog does not change (ATS-API-08)",
                )
            if len(items) > self._size:
                self._fail(
                    ex, f"page {page} holds {len(items)} entries, more than size {self._size}"
                )
            for item in items:
                if not isinstance(item, dict):
                    self._fail(ex, f"page {page} of {self.label} holds a non-object entry")
                code = item.get("resource_code")
                if not isinstance(code, str):
                    self._fail(ex, f"an entry of page {page} has no string `resource_code`")
                if previous is not None and code <= previous:
                    word = "again" if code == previous else f"after {previous}"
                    self._fail(
                        ex,
                        f"{self.label} yields {code} {word}; expected every entry once, in "
                        "ascending resource_code order (ATS-API-08)",
                    )
                previous = code
                self.count += 1
                yield item
            total_seen = self.total or 0
            if items and self.count < total_seen and len(items) < self._size:
                self._fail(
                    ex,
                    f"page {page} of {self.label} holds {len(items)} entries before the end; "
                    f"expected {self._size} while {total_seen - self.count} of total "
                    f"{total_seen} remain (ATS-API-08)",
                )
        if self.strict and ex is not None and self.count != self.total:
            self._fail(
                ex,
                f"walking {self.label} yielded {self.count} entries; expected total "
                f"{self.total} (ATS-API-08)",
            )


def _code_of(entry: Mapping[str, Any]) -> str:
    code = entry.get("resource_code")
    return code if isinstance(code, str) else repr(code)


# ATS §4 marks these item members optional ("length"?, "semantic"?, "sensitive"?, "mask"?); a
# node that writes an absent optional member as null says the same thing in another spelling.
_OPTIONAL_ITEM_MEMBERS = ("length", "semantic", "sensitive", "mask")


def without_null_options(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """The entry with its items' optional members that are null left out, as if absent."""
    items = entry.get("items")
    if not isinstance(items, list) or not any(
        isinstance(i, dict) and any(k in i and i[k] is None for k in _OPTIONAL_ITEM_MEMBERS)
        for i in items
    ):
        return entry
    cleaned = [
        {k: v for k, v in i.items() if not (k in _OPTIONAL_ITEM_MEMBERS and v is None)}
        if isinstance(i, dict)
        else i
        for i in items
    ]
    return {**entry, "items": cleaned}


def shape_problems(entry: Mapping[str, Any], required: Sequence[str]) -> list[str]:
    """The ways an entry lacks a field of the ATS §4 table or has one of the wrong JSON type."""
    entry = without_null_options(entry)
    code = _code_of(entry)
    missing = [name for name in required if name not in entry]
    if missing:
        return [f"entry {code}: lacks {', '.join(missing)}"]
    if schemas.is_valid("catalog-entry-shape", entry):
        return []
    return [
        f"entry {code}: {line}" for line in schemas.validation_errors("catalog-entry-shape", entry)
    ]


class EntryRules:
    """The rules of the ATS §4 table for one node: every ``problems`` line names code and field.

    ``today`` is the node's date in the profile's offset; ``own_id`` is the node id that a
    ``scope=local`` entry carries.
    """

    def __init__(self, *, today: date, zone: tzinfo, name_max_chars: int) -> None:
        self.today = today
        self.zone = zone
        self.name_max_chars = name_max_chars

    def problems(self, entry: Mapping[str, Any]) -> list[str]:
        """What an entry breaks of the table's rules; empty when it keeps them all."""
        entry = without_null_options(entry)
        code = _code_of(entry)
        # The rules of catalog-entry.schema.json are checked in code, with the schema's fields
        # and enumerations checked without them: no exception of the compiled validator per
        # `if` an entry does not meet, on the walk's hot path (ATS-CAT-02).
        found = self.coded_problems(entry)
        if not found and schemas.is_valid_without_rules("catalog-entry", entry):
            return []
        found += schemas.validation_errors("catalog-entry", entry, lean=True)
        return [f"entry {code}: {line}" for line in found]

    def coded_problems(self, entry: Mapping[str, Any]) -> list[str]:
        """The rules checked in code: those JSON Schema cannot express, and the rules of
        catalog-entry.schema.json (its ``allOf``s), in the clearest wording."""
        found: list[str] = []
        classification = entry.get("classification")
        ctype = classification.get("type") if isinstance(classification, dict) else None
        reason = codes.resource_code_problem(
            entry.get("resource_code"), ctype if isinstance(ctype, str) else None
        )
        if reason:
            found.append(f"resource_code / classification.type: {reason}")
        code = entry.get("resource_code")
        path = classification.get("path") if isinstance(classification, dict) else None
        if isinstance(code, str) and "/" in code and isinstance(path, list):
            expected = 4 if len(code.split("/", 1)[0]) == 9 else 3
            if len(path) != expected:
                found.append(
                    f"classification.path has {len(path)} names; expected {expected} for "
                    f"classification code {code.split('/', 1)[0]}"
                )
        name = entry.get("name")
        if isinstance(name, str) and len(name) > self.name_max_chars:
            found.append(f"name has {len(name)} characters; expected at most {self.name_max_chars}")
        provider = entry.get("provider")
        provider_code = provider.get("code") if isinstance(provider, dict) else None
        if isinstance(provider_code, str):
            check = codes.uscc_problem if len(provider_code) == 18 else codes.division_problem
            if reason := check(provider_code):
                found.append(f"provider.code {provider_code!r}: {reason}")
        items = entry.get("items")
        if isinstance(items, list):
            names = [i.get("name") for i in items if isinstance(i, dict)]
            repeated = sorted({str(n) for n in names if names.count(n) > 1})
            if repeated:
                found.append(f"items: name {repeated[0]!r} appears more than once; expected unique")
            found.extend(_item_rules(items))
        found.extend(_kind_rules(entry))
        found.extend(self._dates(entry))
        return found

    def _dates(self, entry: Mapping[str, Any]) -> list[str]:
        published_text = entry.get("published_at")
        if not isinstance(published_text, str) or not _DATE.fullmatch(published_text):
            return []  # the schema reports the shape
        try:
            published = date.fromisoformat(published_text)
        except ValueError:
            return []
        found = []
        if published > self.today:
            found.append(
                f"published_at is {published_text}, after the node's date {self.today} in "
                f"{self.zone}; expected not after it"
            )
        updated_text = entry.get("updated_at")
        updated = china_date(updated_text, self.zone) if isinstance(updated_text, str) else None
        if updated is not None and updated < published:
            found.append(
                f"updated_at {updated_text} falls on {updated} in {self.zone}, before "
                f"published_at {published_text}; expected not before it"
            )
        return found


def _item_rules(items: Sequence[Any]) -> list[str]:
    """The conditional rules of an item (the ``allOf`` of ``$defs/item`` in
    catalog-entry.schema.json, kept the same): a C item has a length, and a mask is present
    exactly when ``sensitive`` is true."""
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        where = f"items[{index}] ({item.get('name')!r})"
        if item.get("data_type") == "C" and "length" not in item:
            found.append(f"{where}: data_type C without length; expected a length")
        if item.get("sensitive") is True and "mask" not in item:
            found.append(f"{where}: sensitive without mask; expected a mask")
        if "mask" in item and item.get("sensitive") is not True:
            found.append(f"{where}: a mask on an item that is not sensitive; expected sensitive")
    return found


def _kind_rules(entry: Mapping[str, Any]) -> list[str]:
    """Two rules of the ``allOf`` of catalog-entry.schema.json, kept the same: a NOT_SHARED
    resource is not open, and a DATABASE or SELF_DESCRIBING one declares an item."""
    found = []
    share, opened, fmt = entry.get("share"), entry.get("open"), entry.get("format")
    if (
        isinstance(share, dict)
        and share.get("type") == "NOT_SHARED"
        and isinstance(opened, dict)
        and "open" in opened
        and opened["open"] is not False
    ):
        found.append(f"open.open is {opened['open']!r} for a NOT_SHARED resource; expected false")
    kind = fmt.get("kind") if isinstance(fmt, dict) else None
    items = entry.get("items")
    if kind in ("DATABASE", "SELF_DESCRIBING") and isinstance(items, list) and not items:
        found.append(f"items is empty for format.kind {kind}; expected at least one item")
    return found


@functools.cache
def vocabulary_names(key: str) -> frozenset[str]:
    """The names of one enumeration of the shared vocabulary (``share_types`` …)."""
    return frozenset(load_vocabulary()[key])
