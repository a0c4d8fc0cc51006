"""Share queries (ATS §5) and subscriptions (ATS §6) as the data chapters' checks use them.

Every subscription the suite creates is listed in the run state (``RunState.subscriptions``) and
noted in the clause's evidence; ``Subscriptions`` revokes what a check created when it ends —
ATS-1.0 has no deletion, so revocation is the clean-up it allows.

Real values of sensitive items never reach the report: every share query goes through
``query``, which masks them per ATS §7 in the evidence of its exchange (the answer of an unmasked
grant, a filter on a real value, an error that echoes one) and says so in a note. Against a real
node those values are real citizens'. ``query`` also keeps, bounded, what ATS-PRIV-04 scans later:
the filters the run sent, with their request ids and error answers.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any

from conformance import codes, compare, schemas
from conformance.ats import SUBSCRIPTIONS, share_query_path
from conformance.checks import CheckContext, Finding, Inconclusive
from conformance.checks._catalog_walk import cached_entry, fetch_entry
from conformance.checks._expect import expect_json_object, expect_status, request_text
from conformance.checks._payloads import corpus
from conformance.client import EVIDENCE_BODY, Exchange
from conformance.profile import load_vocabulary

__all__ = [
    "SUBSCRIPTIONS",
    "RecordSet",
    "SentFilter",
    "Subscriptions",
    "approved_subscriptions",
    "distinctive",
    "entitled",
    "fetch_records",
    "generation_examples",
    "generation_seed",
    "items_of",
    "known_real_values",
    "mask_evidence",
    "query",
    "query_answer",
    "real_records",
    "same_json",
    "sensitive_items",
    "sent_filters",
    "value_problem",
]

# ATS-API-08: the largest page; the fewest requests per record read.
RECORD_PAGE = 100
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
# ATS-SHR-01 says "base64 string" and no more: the standard or the URL-safe alphabet of RFC 4648,
# padded or not, in MIME lines or one line, are each a base64 string (issue 15, item 4).
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}", re.ASCII)
_LINE_BREAKS = re.compile(r"\r?\n")
# Real values of sensitive items the run has seen (real → masked), at most this many: the first
# page of an unmasked grant holds 100 records of a few sensitive items each.
MAX_REAL_VALUES = 5000
# Filtered share queries kept for ATS-PRIV-04 (the latest), each with at most a 4 KiB error body.
MAX_SENT_FILTERS = 500
# A value shorter than this, in ASCII, is not looked for in other bodies: short codes and numbers
# occur there by chance (a 6-digit division code in a time's microseconds).
_DISTINCTIVE_ASCII = 8
_REAL_VALUES = "real-sensitive-values"
_SENT_FILTERS = "sent-filters"
_REAL_RECORDS = "real-records-{code}"


def query(
    ctx: CheckContext,
    code: str,
    body: Mapping[str, Any] | None = None,
    *,
    app: str = "consumer",
    headers: Mapping[str, str] | None = None,
) -> Exchange:
    """One share query on ``code`` signed by ``app``, with a request id of the suite.

    Its evidence shows the values of sensitive items masked (ATS §7), and a filtered query is
    kept for ATS-PRIV-04.
    """
    sent = dict(headers or {})
    if not any(k.lower() == "x-request-id" for k in sent):
        sent["X-Request-Id"] = f"ats-share-{secrets.token_hex(8)}"
    request_id = next(v for k, v in sent.items() if k.lower() == "x-request-id")
    started = time.monotonic()
    ex = ctx.client.post(share_query_path(code), app=app, json=dict(body or {}), headers=sent)
    recorded = ctx.evidence.entries[-1:]
    _mask_answer(ctx, code, ex, recorded)
    _mask_known(ctx, recorded)
    _keep_filter(ctx, code, (body or {}).get("filter"), request_id, started, ex)
    return ex


def sensitive_items(entry: Mapping[str, Any]) -> dict[str, str]:
    """The declared sensitive items of a catalog entry and their mask rules (ATS §4, §7)."""
    return {
        name: str(item["mask"])
        for name, item in items_of(entry).items()
        if item.get("sensitive") is True and item.get("mask") in codes.MASK_RULES
    }


def _real_values(ctx: CheckContext) -> dict[str, str]:
    return ctx.run.cached(_REAL_VALUES, dict)


def known_real_values(ctx: CheckContext) -> list[str]:
    """The real values of sensitive items the run has seen, distinctive ones, longest first."""
    return sorted((v for v in _real_values(ctx) if distinctive(v)), key=len, reverse=True)


def distinctive(value: str) -> bool:
    """``value`` is long enough, or non-ASCII, that finding it in another body is no chance."""
    if value.isascii():
        return len(value) >= _DISTINCTIVE_ASCII and not _is_date(value[:10])
    return len(value) >= 2


def _mask_answer(
    ctx: CheckContext, code: str, ex: Exchange, recorded: list[dict[str, Any]]
) -> None:
    """The recorded answer of ``ex`` shows its sensitive items' values masked; the real ones
    are kept for masking later evidence and for ATS-PRIV-04."""
    entry = cached_entry(ctx, code)
    sensitive = sensitive_items(entry) if entry is not None else {}
    if not recorded or not sensitive or ex.status != 200:
        return
    try:
        answer = json.loads(ex.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return
    records = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(records, list):
        return
    real = _real_values(ctx)
    masked = 0
    for record in records:
        for name, rule in sensitive.items():
            value = record.get(name) if isinstance(record, dict) else None
            shown = codes.mask(value, rule) if isinstance(value, str) else value
            if isinstance(value, str) and shown != value:
                if len(real) < MAX_REAL_VALUES:
                    real[value] = str(shown)
                record[name] = shown
                masked += 1
    if masked:
        text = json.dumps(answer, ensure_ascii=False).encode("utf-8")[:EVIDENCE_BODY]
        recorded[0]["body"] = text.decode("utf-8", "ignore")
        ctx.note(
            f"the tester masked {masked} unmasked values of sensitive items in the answer above "
            "per ATS §7 before recording it: they are personal data"
        )


def _mask_known(ctx: CheckContext, entries: Iterable[dict[str, Any]]) -> None:
    """Real values the run knows are replaced by their masks in the recorded exchanges."""
    real = _real_values(ctx)
    if not real:
        return
    for entry in entries:
        replaced = 0
        for member in ("target", "request_body", "body", "summary"):
            text = entry.get(member)
            if not isinstance(text, str):
                continue
            for value, shown in real.items():
                if value in text:
                    text = text.replace(value, shown)
                    replaced += 1
            entry[member] = text
        if replaced and not entry.get("masked_by_tester"):
            entry["masked_by_tester"] = True
            ctx.note(
                "the tester masked real values of sensitive items in the exchange "
                f"{entry.get('method')} {entry.get('target')} per ATS §7 before recording it"
            )


def mask_evidence(ctx: CheckContext) -> None:
    """Every exchange of the clause's evidence shows the real values the run knows masked
    (for exchanges made outside ``query``, such as audit reads)."""
    _mask_known(ctx, [e for e in ctx.evidence.entries if "method" in e])


@dataclass(frozen=True)
class SentFilter:
    """A filtered share query the suite sent: its request id, the distinctive filter values,
    its status and, for an error, the answer's body (cut at 4 KiB)."""

    request_id: str
    code: str
    values: tuple[str, ...]
    status: int | None
    error_body: str
    sent_at: float


def _filter_values(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for member in value.values():
            yield from _filter_values(member)
    elif isinstance(value, list | tuple):
        for member in value:
            yield from _filter_values(member)
    elif isinstance(value, str):
        yield value
    elif _is_number(value):
        yield json.dumps(value)


def _keep_filter(
    ctx: CheckContext, code: str, filters: Any, request_id: str, started: float, ex: Exchange
) -> None:
    values = tuple(sorted({v for v in _filter_values(filters) if distinctive(v) and v not in code}))
    if not values:
        return
    kept: deque[SentFilter] = ctx.run.cached(_SENT_FILTERS, lambda: deque(maxlen=MAX_SENT_FILTERS))
    failed = ex.status is not None and ex.status >= 400
    error_body = ex.body[:EVIDENCE_BODY].decode("utf-8", "replace") if failed else ""
    kept.append(SentFilter(request_id, code, values, ex.status, error_body, started))


def sent_filters(ctx: CheckContext) -> list[SentFilter]:
    """The filtered share queries of the run so far (the latest ``MAX_SENT_FILTERS``)."""
    return list(ctx.run.recall(_SENT_FILTERS, ()))


def real_records(ctx: CheckContext, code: str) -> RecordSet:
    """The first page of ``code`` under an approved unmasked subscription of consumer_b
    (approved by the admin, revoked once read), once per run; ``masked`` is what it still masks.

    The evidence shows these values masked (``query``); the run keeps them to mask later
    evidence and for ATS-PRIV-04's scan.
    """

    def read() -> RecordSet:
        fetch_entry(ctx, code)
        with Subscriptions(ctx) as subs:
            subs.approved("consumer_b", code, unmasked=True, what="an unmasked subscription")
            ex = query(ctx, code, {"page": 1, "size": RECORD_PAGE}, app="consumer_b")
            answer = query_answer(ex, f"a query of {code} under an unmasked grant")
        records = [r for r in answer["items"] if isinstance(r, dict)]
        return RecordSet(records, answer["total"], list(answer["masked"]))

    return ctx.run.cached(_REAL_RECORDS.format(code=code), read)


def query_answer(ex: Exchange, what: str) -> dict[str, Any]:
    """The 200 answer of a share query, with the ATS §5 answer shape, parsed."""
    expect_status(ex, 200, what=what)
    body = expect_json_object(ex, what=what)
    errors = schemas.validation_errors("share-query-answer", body)
    if errors:
        raise Finding(f"{what} was answered with {errors[0]} ({request_text(ex)})")
    # 25.0 is the integer 25 (ATS-API-09): the counters are read as the integers they stand for.
    for member in ("page", "size", "total"):
        if compare.is_integer(body.get(member)):
            body[member] = compare.integer(body[member])
    return body


def items_of(entry: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The declared items of a catalog entry by name."""
    items = entry.get("items")
    if not isinstance(items, list):
        return {}
    return {str(i["name"]): i for i in items if isinstance(i, dict) and "name" in i}


class RecordSet:
    """The records of a query walked over its pages, with its ``total`` and ``masked``."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        total: int,
        masked: list[str],
        complete: bool = True,
    ) -> None:
        self.records = records
        self.total = total
        self.masked = masked
        # False: ``records`` are the first pages only, a sample of the ``total`` (``sample``).
        self.complete = complete


def fetch_records(
    ctx: CheckContext,
    code: str,
    body: Mapping[str, Any] | None = None,
    *,
    app: str = "consumer",
    what: str,
    max_records: int,
    sample: bool = False,
) -> RecordSet:
    """Every record of a query (at most ``max_records``, else inconclusive), page by page.

    With ``sample`` a larger answer is no dead end: its first ``max_records`` records are read
    (a bounded sample, ``complete`` false) and the caller judges what a sample can show.
    """
    records: list[dict[str, Any]] = []
    total: int | None = None
    masked: list[str] = []
    page = 1
    while True:
        ex = query(ctx, code, {**(body or {}), "page": page, "size": RECORD_PAGE}, app=app)
        answer = query_answer(ex, f"{what} (page {page})")
        if total is None:
            total, masked = answer["total"], list(answer["masked"])
            if total > max_records and not sample:
                raise Inconclusive(
                    f"{what} holds {total} records, more than the {max_records} the check reads"
                )
        elif answer["total"] != total:
            raise Finding(
                f"{what} answered total {answer['total']} on page {page}, {total} on page 1; "
                f"expected a stable total ({request_text(ex)})"
            )
        items = answer["items"]
        records.extend(items)
        if sample and total > max_records and len(records) >= max_records:
            return RecordSet(records, total, masked, complete=False)
        if not items or len(records) >= total:
            break
        page += 1
    if len(records) != total:
        raise Finding(f"{what} walked {len(records)} records over its pages; total says {total}")
    return RecordSet(records, total, masked)


def _is_date(value: str) -> bool:
    if not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timestamp(value: str) -> bool:
    if not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_base64(value: str) -> bool:
    text = _LINE_BREAKS.sub("", value)
    if not _BASE64.fullmatch(text):
        return False
    data = text.rstrip("=")
    if len(data) % 4 == 1 or (text != data and len(text) % 4):
        return False  # no whole byte in the last group, or padding to no multiple of 4
    standard = data.replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error:
        return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_JSON_KIND_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "number": _is_number,
    # A zero fraction counts as an integer, as in JSON Schema.
    "integer": lambda v: _is_number(v) and float(v).is_integer(),
    "date": lambda v: isinstance(v, str) and _is_date(v),
    "date-time": lambda v: isinstance(v, str) and _is_timestamp(v),
    "boolean": lambda v: isinstance(v, bool),
    "base64": lambda v: isinstance(v, str) and _is_base64(v),
}


def value_problem(value: object, item: Mapping[str, Any]) -> str | None:
    """Why a non-null value does not fit its item's ``data_type`` (ATS-SHR-01), else None."""
    if value is None:
        return None
    data_type = str(item.get("data_type"))
    kind = load_vocabulary()["data_types"].get(data_type, {}).get("json")
    check = _JSON_KIND_CHECKS.get(str(kind))
    if check is None:
        return f"declares data_type {data_type!r}, which ATS §4 does not define"
    shown = _shown(value)
    if not check(value):
        return f"is {shown}; expected a JSON {kind} for data_type {data_type}"
    length = item.get("length")
    if kind == "string" and isinstance(length, int) and len(str(value)) > length:
        return (
            f"has {len(str(value))} characters; expected at most its length {length} "
            f"(data_type {data_type})"
        )
    return None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def approved_subscriptions(ctx: CheckContext, app: str, code: str) -> list[dict[str, Any]]:
    """The ``APPROVED`` subscriptions of ``app`` on ``code``, as the app itself lists them."""
    params = [("resource_code", code), ("status", "APPROVED"), ("size", "100")]
    ex = ctx.client.get(SUBSCRIPTIONS, app=app, params=params)
    expect_status(ex, 200, what=f"the subscription list of {app}")
    body = expect_json_object(ex, what=f"the subscription list of {app}")
    items = body.get("items")
    if not isinstance(items, list):
        raise Finding(f"the subscription list of {app} has no `items` list ({request_text(ex)})")
    return [s for s in items if isinstance(s, dict) and s.get("status") == "APPROVED"]


class Subscriptions:
    """The subscriptions one check creates; on exit each not yet final is revoked by the admin.

    Use as a context manager: ``with Subscriptions(ctx) as subs: …``. The clean-up never
    decides the clause: a revocation the node refuses is noted, not reported.
    """

    def __init__(self, ctx: CheckContext, purpose: str | None = None) -> None:
        self.ctx = ctx
        self.purpose = purpose or str(corpus("data-chapters")["purpose"])
        self.created: dict[str, str] = {}

    def __enter__(self) -> Subscriptions:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for sid, status in list(self.created.items()):
            if status in ("REJECTED", "REVOKED"):
                continue
            try:
                ex = self.ctx.client.delete(f"{SUBSCRIPTIONS}/{sid}", app="admin")
            except Inconclusive as exc:
                self.ctx.note(f"clean-up: subscription {sid} could not be revoked: {exc.reason}")
                continue
            if ex.status == 200:
                self.created[sid] = "REVOKED"
            else:
                self.ctx.note(f"clean-up: revoking subscription {sid} answered {ex.status}")

    def create(
        self,
        app: str,
        code: str,
        *,
        fields: Sequence[str] = (),
        unmasked: bool = False,
    ) -> Exchange:
        """``POST /subscriptions`` by ``app``; a 201 is recorded for the run and the clean-up."""
        body = {
            "resource_code": code,
            "purpose": self.purpose,
            "fields": list(fields),
            "unmasked": unmasked,
        }
        ex = self.ctx.client.post(SUBSCRIPTIONS, app=app, json=body)
        if ex.status == 201:
            try:
                made = ex.json()
            except Inconclusive:
                made = {}
            sid = made.get("subscription_id") if isinstance(made, dict) else None
            if isinstance(sid, str | int):
                self.created[str(sid)] = str(made.get("status"))
                self.ctx.run.subscriptions.append(str(sid))
                self.ctx.note(
                    f"created subscription {sid} of app {app} on {code} "
                    f"(fields {list(fields) or 'all'}, unmasked {unmasked}): {made.get('status')}"
                )
        return ex

    def made(self, app: str, code: str, *, what: str, **options: Any) -> dict[str, Any]:
        """A subscription the node must create (201 with the ATS §6 shape), parsed."""
        ex = self.create(app, code, **options)
        expect_status(ex, 201, what=what)
        body = expect_json_object(ex, what=what)
        errors = schemas.validation_errors("subscription", body)
        if errors:
            raise Finding(f"{what} was answered with {errors[0]} ({request_text(ex)})")
        return body

    def decide(self, sid: str, decision: str, *, app: str = "admin") -> Exchange:
        """``POST /subscriptions/{id}/decision``."""
        body = {"decision": decision, "reason": "ATS conformance run"}
        ex = self.ctx.client.post(f"{SUBSCRIPTIONS}/{sid}/decision", app=app, json=body)
        self._track(sid, ex)
        return ex

    def revoke(self, sid: str, *, app: str = "admin") -> Exchange:
        """``DELETE /subscriptions/{id}``."""
        ex = self.ctx.client.delete(f"{SUBSCRIPTIONS}/{sid}", app=app)
        self._track(sid, ex)
        return ex

    def _track(self, sid: str, ex: Exchange) -> None:
        if ex.status == 200 and sid in self.created:
            try:
                status = ex.json().get("status")
            except (Inconclusive, AttributeError):
                return
            self.created[sid] = str(status)

    def approved(
        self, app: str, code: str, *, what: str, fields: Sequence[str] = (), unmasked: bool = False
    ) -> dict[str, Any]:
        """A subscription of ``app`` on ``code`` approved by the admin when it is PENDING."""
        made = self.made(app, code, what=what, fields=fields, unmasked=unmasked)
        sid = str(made["subscription_id"])
        if made["status"] == "PENDING":
            ex = self.decide(sid, "APPROVE")
            expect_status(ex, 200, what=f"the approval of {what}")
            made = expect_json_object(ex, what=f"the approval of {what}")
        if made.get("status") != "APPROVED":
            raise Finding(f"{what} reads {made.get('status')!r} after approval; expected APPROVED")
        return made


@contextmanager
def entitled(ctx: CheckContext, app: str, entry: Mapping[str, Any]) -> Iterator[None]:
    """``app`` may query ``entry`` for the block: a CONDITIONAL resource gets an approved
    subscription (revoked afterwards); an UNCONDITIONAL one needs none."""
    share = entry.get("share")
    if not isinstance(share, dict) or share.get("type") != "CONDITIONAL":
        yield
        return
    code = str(entry.get("resource_code"))
    with Subscriptions(ctx) as subs:
        subs.approved(app, code, what=f"a subscription of {app} to {code}")
        yield


def generation_seed(ctx: CheckContext) -> int:
    """The seed of generated cases: the clause's ``seed`` parameter, else one per run (null).

    The evidence records it, so a run is reproduced by setting ``seed`` in the profile's
    overrides of the clause.
    """
    given = ctx.params.get("seed")
    value = int(given) if given is not None else ctx.run.cached("hypothesis-seed", _fresh_seed)
    origin = "the profile's seed" if given is not None else "a seed drawn for this run"
    ctx.note(
        f"generated cases use {origin} {value}; set params.seed: {value} for "
        f"{ctx.clause.id} under the profile's overrides to reproduce them"
    )
    return int(value)


def generation_examples(ctx: CheckContext) -> int:
    """The number of generated cases: the clause's ``max_examples`` parameter."""
    return int(ctx.params["max_examples"])


def _fresh_seed() -> int:
    return secrets.randbelow(2**32)


def same_json(a: object, b: object) -> bool:
    """The two values are equal with the same JSON type (``true`` never equals ``1``), by
    meaning (``compare.same_value``: numbers numerically, timestamps as instants)."""
    return compare.same_value(a, b)
