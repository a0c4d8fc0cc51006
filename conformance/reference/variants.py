"""Variant switches: each one makes the reference node take another choice ATS leaves open.

A variant is the mirror of a fault (``conformance/reference/faults.py``): a fault breaks chosen
clauses, a variant breaks none — it is a behaviour the text allows, and every check must PASS
with it on ("where the text leaves a choice, each choice passes", Revision of 2026-12). Each
variant names the sentence of ATS that allows it and the chapters whose checks it touches (the
chapters CI runs it on). ``VARIANTS`` is the registry the node file, ``--variant`` and the
variant table of ``docs/reference-node.md`` follow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from conformance.reference.switches import SwitchSet, known


@dataclass(frozen=True)
class Variant:
    """A variant is a conformant behaviour, the ATS sentence that allows it, and the chapters
    whose checks it touches."""

    description: str
    allowed_by: str
    touches: tuple[str, ...]


VARIANTS: dict[str, Variant] = {
    "offset-timestamps": Variant(
        "timestamps (`time`, `created_at`, `updated_at`) are written in +08:00 with milliseconds, "
        "entries pushed by children with `Z` stamps included",
        "ATS-API-09: Timestamps are RFC 3339 with `Z` or an explicit `±hh:mm` offset, fractional "
        "seconds allowed […] a node may re-serialize what it received.",
        ("API", "NODE", "CAT", "SUB", "AUD", "CAS"),
    ),
    "float-integers": Variant(
        "`page`, `size`, `total` and the stats counters are written as 25.0",
        "ATS-API-09: Integers are JSON numbers with no fractional part (`25` and `25.0` are the "
        "same integer).",
        ("API", "CAT", "SHR", "SUB", "PRIV", "AUD", "STAT"),
    ),
    "extra-members": Variant(
        "the descriptor, catalog entries and their item definitions, query answers, "
        "subscriptions, stats, audit events and error bodies the node gives itself carry an "
        "extra member (relayed answers stay JSON-equal)",
        "§4: Every field below is required (extra members are allowed); ATS-API-03: a body with "
        "at least `{code, message, request_id}`.",
        ("API", "NODE", "CAT", "SHR", "SUB", "PRIV", "CAS", "AUD", "STAT", "SEC"),
    ),
    "conditional-population": Variant(
        "the resource the target file names `population` is CONDITIONAL",
        "§4: `share` is `UNCONDITIONAL`, `CONDITIONAL` or `NOT_SHARED`; nothing requires the "
        "resource about natural persons to be unconditional.",
        ("SHR", "SUB", "PRIV", "SEC"),
    ),
    "uuid-event-ids": Variant(
        "audit `event_id` values are random UUIDs (still listed in code point order)",
        "§9 fixes no form of `event_id`; ATS-API-08 orders audit events by `event_id`, strings "
        "by Unicode code point.",
        ("API", "AUD", "PRIV"),
    ),
    "head-405": Variant(
        "HEAD is answered 405 with an Allow header that does not list it",
        "ATS-API-04: `HEAD` is served wherever `GET` is, or answers 405.",
        ("API", "AUTH"),
    ),
    "wire-format": Variant(
        "responses are chunked, carry `Connection: close` and `Content-Type: application/json; "
        "charset=utf-8`, and JSON bodies are ASCII-escaped, indented, members in reverse order",
        "ATS-API-01: Request and response bodies are UTF-8 JSON; responses with a body carry "
        "`Content-Type: application/json` (a `charset=utf-8` parameter is allowed).",
        ("API", "NODE", "AUTH", "CAT", "SEC"),
    ),
    "server-name": Variant(
        "responses carry `Server: ats-node` (a name without a version)",
        "ATS-API-07: a `Server` header, if present, carries no version number.",
        ("API",),
    ),
    "gzip": Variant(
        "bodies are gzip-compressed when the request accepts it",
        "ATS-API-01 fixes the media type, not the content coding; HTTP (RFC 9110 §8.4) lets a "
        "server apply a coding the request accepts.",
        ("API", "NODE", "CAT", "SEC"),
    ),
    "spaced-route": Variant(
        "`X-Route` is written with `, ` separators, in answers and in forwarded queries",
        "§8: `X-Route` is a comma-separated list of node ids, and whitespace around a comma is "
        "allowed and ignored.",
        ("SHR", "CAS", "AUD"),
    ),
    "reverse-record-order": Variant(
        "share query records come in descending order of their first item",
        "§5: Records come in a stable order (no order is fixed).",
        ("SHR", "PRIV", "SEC"),
    ),
    "literal-wildcards": Variant(
        "catalog summaries hold a literal `%` and `_` (so `keyword=%` matches them)",
        "§4: `summary` is non-empty (any text); ATS-CAT-04: `keyword` is a case-sensitive "
        "substring of `name` or `summary`.",
        ("CAT", "SEC"),
    ),
    "large-resource": Variant(
        "the unconditional resource holds 5 000 records",
        "§5 and ATS-API-08 bound a page (size ≤ 100), not a resource: a query is paged.",
        ("SHR", "SEC"),
    ),
    "slow-node": Variant(
        "every request is answered 40 ms later",
        "ATS-PERF-01 bounds latency at p95 ≤ 500 ms only; no other clause fixes a speed.",
        ("API", "AUTH", "SEC"),
    ),
    "slow-auth": Variant(
        "authentication takes 6 ms more per request",
        "ATS chapter 3 fixes what is verified, not how fast; ATS-SEC-03 counts authenticated "
        "requests over a sliding window, whenever they were sent.",
        ("AUTH", "SEC"),
    ),
    "high-rate-limit": Variant(
        "the default consumer rate limit is 1 200 requests/s",
        "ATS-NODE-02: `rate_limit_per_app` (requests per second granted to a consumer app by "
        "default); ATS-SEC-03 fixes how it is enforced, not its value.",
        ("NODE", "SEC"),
    ),
    "clock-window": Variant(
        "timestamps up to 285 s from the node clock are accepted, nonces remembered 24 h",
        "ATS-AUTH-04: more than 300 s answers 401; within 270 s is accepted. ATS-AUTH-05: a "
        "nonce used within the last 600 s answers 401 (remembering longer is allowed).",
        ("AUTH",),
    ),
}


class UnknownVariantError(ValueError):
    """A variant name is not in ``VARIANTS``."""


@dataclass(frozen=True)
class VariantSet(SwitchSet):
    """A variant set is the variant switches on for one node; every name is in ``VARIANTS``."""

    @classmethod
    def of(cls, names: Iterable[str]) -> VariantSet:
        """The variant set of these names; an unknown name raises ``UnknownVariantError``."""
        return cls(known(names, VARIANTS, "variant", UnknownVariantError))
