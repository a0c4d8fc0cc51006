"""Fault switches: each one makes the reference node violate chosen ATS clauses, and only those.

A fault is named after the defect it introduces (kebab-case). ``FAULTS`` is the registry the node
file, ``--fault`` and the fault table of ``docs/reference-node.md`` all follow; its ``clauses``
are the ids a conformance check must fail when the switch is on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from conformance.reference.switches import SwitchSet, known


@dataclass(frozen=True)
class Fault:
    """A fault is a defect description and the ATS clauses the defect breaks.

    A ``thorough`` fault breaks its clauses only as the long probes of ``--thorough`` see them:
    a default run cannot tell it from the clean node (ATS-AUTH-05's late replay).
    """

    description: str
    clauses: tuple[str, ...]
    thorough: bool = False


FAULTS: dict[str, Fault] = {
    # Chapter 1 — API
    "no-request-id": Fault("responses carry no X-Request-Id", ("ATS-API-02",)),
    "wrong-request-id": Fault(
        "a well-formed X-Request-Id of the request is not echoed; a fresh one is sent",
        ("ATS-API-02",),
    ),
    "wrong-error-body": Fault(
        "error bodies carry `error` and `detail` instead of `code`, `message`, `request_id`",
        ("ATS-API-03",),
    ),
    "non-json-content-type": Fault(
        "JSON bodies are labelled Content-Type: text/plain", ("ATS-API-01",)
    ),
    "unknown-path-200": Fault(
        "an unknown path under /api/v1 answers 200 with an empty object", ("ATS-API-04",)
    ),
    "no-405-allow": Fault("405 answers carry no Allow header", ("ATS-API-04",)),
    "500-on-bad-json": Fault(
        "a malformed JSON body answers 500 INTERNAL_ERROR instead of 400", ("ATS-API-05",)
    ),
    "reject-unknown-members": Fault(
        "an unknown body member or query parameter answers 400 instead of being ignored",
        ("ATS-API-05",),
    ),
    "accept-repeated-param": Fault(
        "a repeated single-valued query parameter is accepted (the last one wins)",
        ("ATS-API-05",),
    ),
    "accept-oversized-body": Fault("bodies over 1 MiB are accepted", ("ATS-API-06",)),
    "auth-before-size-check": Fault(
        "authentication runs before the body size check: an unsigned oversized body answers 401",
        ("ATS-API-06",),
    ),
    "leak-stack-trace": Fault(
        "error bodies carry the Python traceback and exception class", ("ATS-API-07",)
    ),
    "server-version-header": Fault("responses carry `Server: uvicorn/<version>`", ("ATS-API-07",)),
    "wrong-page-total": Fault(
        "list answers report `total` one above the number of items", ("ATS-API-08", "ATS-CAT-01")
    ),
    "unstable-page-order": Fault(
        "catalog pages are ordered by descending resource_code", ("ATS-API-08", "ATS-CAT-01")
    ),
    "accept-size-zero": Fault(
        "page size 0 and 101 are accepted (clamped) instead of answering 400",
        ("ATS-API-05", "ATS-API-08"),
    ),
    "timestamp-without-offset": Fault(
        "timestamps are written without a time zone offset", ("ATS-API-09", "ATS-NODE-01")
    ),
    # Chapter 2 — NODE
    "health-requires-auth": Fault(
        "the health endpoint answers 401 without signature headers", ("ATS-NODE-01",)
    ),
    "bad-node-descriptor": Fault(
        "the node descriptor lacks `standard_version` and `capabilities`", ("ATS-NODE-02",)
    ),
    "no-sm3": Fault(
        "HMAC-SM3 is neither listed nor accepted; only HMAC-SHA256 works",
        ("ATS-NODE-02", "ATS-AUTH-06"),
    ),
    "bad-node-id": Fault(
        "the descriptor's node_id is malformed for its level (its last digit changed)",
        ("ATS-NODE-03",),
    ),
    "wrong-node-level": Fault(
        "the descriptor declares a level other than the configured one",
        ("ATS-NODE-02", "ATS-NODE-03", "ATS-NODE-04"),
    ),
    "wrong-parent-id": Fault(
        "the descriptor declares a parent_id other than the configured one",
        ("ATS-NODE-03", "ATS-NODE-04"),
    ),
    "clock-skew": Fault("the node clock runs 60 s ahead in health `time`", ("ATS-NODE-05",)),
    # Chapter 3 — AUTH
    "accept-missing-signature": Fault(
        "a request without signature headers is served as the first consumer app",
        ("ATS-AUTH-01", "ATS-NODE-01"),
    ),
    "skip-signature-check": Fault(
        "signatures are not verified: a request changed after signing is served",
        ("ATS-AUTH-02", "ATS-AUTH-03"),
    ),
    "distinguish-unknown-app": Fault(
        "an unknown app_id answers with a message other than a wrong signature's",
        ("ATS-AUTH-03",),
    ),
    "no-clock-check": Fault("timestamps far from the node clock are accepted", ("ATS-AUTH-04",)),
    "tight-clock-window": Fault(
        "timestamps more than 60 s from the node clock are refused", ("ATS-AUTH-04",)
    ),
    "accept-replayed-nonce": Fault("a nonce may be used again", ("ATS-AUTH-05",)),
    "no-sha256": Fault("HMAC-SHA256 signatures are refused", ("ATS-AUTH-07",)),
    "missing-role-check": Fault(
        "roles are not enforced: every authenticated app may call every endpoint",
        ("ATS-AUTH-08", "ATS-SUB-03", "ATS-AUD-05"),
    ),
    # Chapter 4 — CAT
    "catalog-missing-field": Fault(
        "catalog entries lack `update_cycle`", ("ATS-CAT-01", "ATS-CAT-02")
    ),
    "bad-classification": Fault(
        "catalog entries declare a classification type that disagrees with the code",
        ("ATS-CAT-02",),
    ),
    "duplicate-catalog-entry": Fault(
        "the last catalog page repeats the first entry",
        ("ATS-API-08", "ATS-CAT-01", "ATS-CAT-03"),
    ),
    "catalog-get-unknown-200": Fault(
        "an unknown resource code answers 200 with the first entry", ("ATS-CAT-03",)
    ),
    "ignore-catalog-filters": Fault(
        "share_type, updated_since and keyword filters are ignored", ("ATS-CAT-04",)
    ),
    "dangling-related-code": Fault(
        "every entry lists an unresolvable related code", ("ATS-CAT-05",)
    ),
    "undeclared-item-in-records": Fault(
        "share records carry an extra undeclared item", ("ATS-CAT-06", "ATS-SHR-01")
    ),
    # Chapter 5 — SHR
    "wrong-data-type": Fault("numeric values are answered as strings", ("ATS-SHR-01",)),
    "ignore-fields": Fault("`fields` is ignored: every item is answered", ("ATS-SHR-02",)),
    "accept-undeclared-item": Fault(
        "an undeclared item in `fields` or `filter` is ignored instead of answering 400",
        ("ATS-SHR-02",),
    ),
    "loose-filter": Fault(
        'filters compare as text: 1 matches "1" and a value of the wrong type is accepted',
        ("ATS-SHR-03",),
    ),
    "ignore-filter": Fault("`filter` is ignored", ("ATS-SHR-03",)),
    "no-subscription-check": Fault(
        "CONDITIONAL resources are served without an approved subscription",
        ("ATS-SHR-04", "ATS-SUB-04", "ATS-SUB-05"),
    ),
    "serve-not-shared": Fault("NOT_SHARED resources are served", ("ATS-SHR-05",)),
    "hide-not-shared": Fault(
        "NOT_SHARED entries are hidden from the catalog", ("ATS-SHR-05", "ATS-CAT-03")
    ),
    "bad-check-character-in-records": Fault(
        "id numbers and credit codes in records carry a wrong check character", ("ATS-SHR-06",)
    ),
    "forward-malformed-code": Fault(
        "a malformed resource code answers 502 as if it had been forwarded", ("ATS-SHR-07",)
    ),
    # Chapter 6 — SUB
    "unconditional-subscription-pending": Fault(
        "subscriptions to UNCONDITIONAL resources stay PENDING", ("ATS-SUB-01",)
    ),
    "subscribe-not-shared": Fault(
        "subscriptions to NOT_SHARED resources are accepted", ("ATS-SUB-01",)
    ),
    "show-foreign-subscriptions": Fault(
        "a consumer sees every app's subscriptions", ("ATS-SUB-02",)
    ),
    "redecide-subscription": Fault(
        "a subscription that is not PENDING may be decided again", ("ATS-SUB-03",)
    ),
    "ignore-approved-items": Fault(
        "an approved subscription does not limit the items answered", ("ATS-SUB-04",)
    ),
    "ignore-revocation": Fault("a revoked subscription still entitles its app", ("ATS-SUB-05",)),
    # Chapter 7 — PRIV
    "skip-masking": Fault(
        "sensitive values are answered unmasked and `masked` is empty",
        ("ATS-PRIV-02", "ATS-PRIV-03"),
    ),
    "wrong-mask": Fault(
        "ID_NUMBER values keep 4 leading characters instead of 6", ("ATS-PRIV-02", "ATS-SHR-06")
    ),
    "unmarked-sensitive-item": Fault(
        "PHONE items of natural-person resources are declared not sensitive",
        ("ATS-PRIV-01",),
    ),
    "mask-breaks-filter": Fault(
        "filters on sensitive items compare against the masked value", ("ATS-PRIV-03",)
    ),
    "mask-unmasked-grant": Fault(
        "an approved subscription with unmasked: true still answers masked values",
        ("ATS-PRIV-02",),
    ),
    "leak-filter-value-in-error": Fault(
        "400 messages on filters echo the filter value", ("ATS-PRIV-04",)
    ),
    "audit-records-filter-values": Fault(
        "audit events of share queries carry the query's filter values", ("ATS-PRIV-04",)
    ),
    # Chapter 8 — CAS (conformance/reference/cascade.py and routing.py)
    "seq-not-increasing": Fault(
        "pushes to the parent reuse the previous seq instead of one above it", ("ATS-CAS-01",)
    ),
    "sync-local-only": Fault(
        "the sync push carries only local entries, not those pushed by children",
        ("ATS-CAS-01", "ATS-CAS-10", "ATS-CAS-11"),
    ),
    "incremental-sync": Fault(
        "the push triggered by POST /cascade/sync is incremental instead of full", ("ATS-CAS-01",)
    ),
    "invalid-sync-entries": Fault(
        "entries of the push triggered by POST /cascade/sync lack `update_cycle`",
        ("ATS-CAS-01",),
    ),
    "accept-out-of-order-push": Fault(
        "incremental pushes are accepted whatever their seq", ("ATS-CAS-02",)
    ),
    "full-push-keeps-missing": Fault(
        "a full push only upserts: codes missing from it are kept",
        ("ATS-CAS-02", "ATS-CAS-10", "ATS-CAS-11"),
    ),
    "ignore-deleted": Fault(
        "`deleted` codes of incremental pushes are kept",
        ("ATS-CAS-02", "ATS-CAS-10", "ATS-CAS-11"),
    ),
    "accept-foreign-push": Fault(
        "pushes signed by a node app that is not bound to a child, or naming another "
        "source_node_id, are accepted",
        ("ATS-CAS-03",),
    ),
    "accept-out-of-subtree-entry": Fault(
        "pushed entries whose node_id lies outside the child's subtree are accepted",
        ("ATS-CAS-03",),
    ),
    "accept-invalid-entry": Fault(
        "pushed entries are stored without validation",
        ("ATS-CAS-03", "ATS-CAT-01", "ATS-CAT-02"),
    ),
    "partial-push-on-error": Fault(
        "a push refused for a later entry keeps the entries before it (no transaction)",
        ("ATS-CAS-03",),
    ),
    "upstream-error-as-502": Fault(
        "an ATS error answer of the next hop is answered 502 instead of being relayed",
        ("ATS-CAS-04", "ATS-CAS-05", "ATS-SHR-07"),
    ),
    "new-request-id-on-forward": Fault(
        "forwarded queries carry a fresh X-Request-Id", ("ATS-CAS-04", "ATS-CAS-05", "ATS-AUD-04")
    ),
    "no-origin-headers": Fault(
        "forwarded queries carry no X-Origin-Node and X-Origin-App",
        ("ATS-CAS-04", "ATS-CAS-05", "ATS-AUD-04"),
    ),
    "no-upward-routing": Fault(
        "a code outside the subtree answers 404 instead of being forwarded to the parent",
        ("ATS-CAS-05",),
    ),
    "route-back-to-parent": Fault(
        "a query received from the parent for a code outside the subtree is forwarded back up",
        ("ATS-CAS-05",),
    ),
    "ignore-hop-limit": Fault(
        "a request arriving with X-Hop-Limit 1 is forwarded (with X-Hop-Limit 1) instead of "
        "answering 508",
        ("ATS-CAS-06",),
    ),
    "no-loop-check": Fault(
        "a request whose X-Route already holds this node is forwarded again", ("ATS-CAS-07",)
    ),
    "no-forward-timeout": Fault(
        "forwarded queries wait for the next hop without a time limit", ("ATS-CAS-08",)
    ),
    "relay-upstream-failure": Fault(
        "a next hop's 401, unrelayable 5xx or non-ATS answer is relayed instead of answering 502",
        ("ATS-CAS-08",),
    ),
    "forward-caller-headers": Fault(
        "forwarded queries carry the caller's signature headers instead of the node's own",
        ("ATS-CAS-04", "ATS-CAS-05", "ATS-CAS-09", "ATS-AUD-04"),
    ),
    "no-repush": Fault(
        "changes pushed by children are never pushed on to the parent",
        ("ATS-CAS-10", "ATS-CAS-11"),
    ),
    "drop-deletions": Fault(
        "removals pushed by children are not pushed on to the parent",
        ("ATS-CAS-10", "ATS-CAS-11"),
    ),
    "slow-sync": Fault(
        "changes pushed by children are pushed on to the parent only after 8 s",
        ("ATS-CAS-11",),
    ),
    # Chapter 9 — AUD
    "no-audit-on-denied": Fault(
        "denied requests (4xx) are not recorded in the audit trail",
        ("ATS-AUD-01", "ATS-AUD-04"),
    ),
    "no-auth-failure-audit": Fault("401 answers are not recorded as AUTH_FAILURE", ("ATS-AUD-02",)),
    "audit-forwarder-as-origin": Fault(
        "a query routed down from the parent is recorded with the parent's node app as "
        "origin_app instead of X-Origin-App",
        ("ATS-AUD-04",),
    ),
    "mutable-audit": Fault("DELETE /api/v1/audit/events clears the audit trail", ("ATS-AUD-03",)),
    "audit-time-on-read": Fault(
        "audit events carry the time they are read instead of the time they were recorded",
        ("ATS-AUD-03",),
    ),
    # Chapter 10 — STAT
    "wrong-stats-types": Fault(
        "`connectivity_rate` is answered as a percentage string", ("ATS-STAT-01",)
    ),
    "no-call-counting": Fault("calls_total and calls_failed stay at zero", ("ATS-STAT-02",)),
    "stale-connectivity": Fault(
        "children are never probed: connectivity_rate stays 1", ("ATS-STAT-02",)
    ),
    "childless-connectivity-zero": Fault(
        "a node without children answers connectivity_rate 0 instead of 1", ("ATS-STAT-02",)
    ),
    # Chapter 11 — SEC
    "allow-tls1-0": Fault("an HTTPS node accepts TLS 1.0 and 1.1 handshakes", ("ATS-SEC-01",)),
    "no-hsts": Fault("HTTPS responses carry no Strict-Transport-Security", ("ATS-SEC-02",)),
    "serve-data-over-http": Fault(
        "the plain-HTTP address of an HTTPS node (tls.http_listen) serves the API instead of "
        "redirecting",
        ("ATS-SEC-06",),
    ),
    "injectable-keyword": Fault(
        "the catalog keyword is matched with SQL LIKE unescaped: % and _ match every entry",
        ("ATS-SEC-04",),
    ),
    "500-on-nul-in-code": Fault(
        "a share query whose resource code holds a NUL character answers 500 INTERNAL_ERROR",
        ("ATS-SEC-04",),
    ),
    "500-on-quote-in-filter": Fault(
        "a share query whose filter value holds a quote (') answers 500 INTERNAL_ERROR",
        ("ATS-SEC-04",),
    ),
    "forward-quoted-code": Fault(
        "a share query whose resource code holds a quote (') is forwarded to the parent "
        "instead of answering 404",
        ("ATS-SEC-04",),
    ),
    "no-nosniff": Fault("responses carry no X-Content-Type-Options", ("ATS-SEC-02",)),
    "no-cache-control": Fault("responses carry no Cache-Control: no-store", ("ATS-SEC-02",)),
    "no-rate-limit": Fault("requests are never rate limited", ("ATS-SEC-03",)),
    "no-retry-after": Fault("429 answers carry no Retry-After", ("ATS-SEC-03",)),
    "wildcard-cors": Fault("responses carry Access-Control-Allow-Origin: *", ("ATS-SEC-05",)),
    "echo-origin-with-credentials": Fault(
        "responses echo any Origin in Access-Control-Allow-Origin with "
        "Access-Control-Allow-Credentials: true",
        ("ATS-SEC-05",),
    ),
    # Chapter 12 — PERF (conformance/reference/share.py)
    "slow-share-query": Fault(
        "local share queries are answered after 700 ms", ("ATS-PERF-01", "ATS-PERF-04")
    ),
    "slow-catalog-page": Fault(
        "catalog pages of 100 entries are answered after 900 ms", ("ATS-PERF-02",)
    ),
    "5xx-under-concurrency": Fault(
        "each local share query holds the node 25 ms; one arriving while another is held "
        "answers 503 UNAVAILABLE",
        ("ATS-PERF-01", "ATS-PERF-03", "ATS-PERF-04"),
    ),
    # Issue 17: defects only small pages, query variants, subtree lookups, substring filters,
    # unsigned requests and values without `semantic` reveal.
    "page-starts-early": Fault(
        "catalog pages after the first start one entry early", ("ATS-API-08", "ATS-CAT-01")
    ),
    "signature-ignores-query": Fault(
        "a signature computed without the query string is accepted as well",
        ("ATS-AUTH-02",),
    ),
    "lookup-local-only": Fault(
        "GET /catalog/resources/{code} finds only local entries, not those pushed by children",
        ("ATS-CAT-03", "ATS-CAT-05"),
    ),
    "substring-filter": Fault(
        "a string filter value matches every value containing it, in any case (LIKE %v%)",
        ("ATS-SHR-03",),
    ),
    "unsigned-catalog": Fault(
        "the catalog list is served without authentication", ("ATS-NODE-01", "ATS-AUTH-01")
    ),
    "phone-without-semantic": Fault(
        "the PHONE items of natural-person resources declare no semantic and are not sensitive",
        ("ATS-CAT-02", "ATS-PRIV-01"),
    ),
    # Chapter 1 — API, added with the bundled OpenAPI description (conformance/reference/app.py)
    "incomplete-405-allow": Fault(
        "a 405's Allow names only the methods of the first route matching the path "
        "(Allow: POST on /api/v1/subscriptions, which serves GET too)",
        ("ATS-API-04",),
    ),
    # Issue 17: defects only the long nonce replay, a reordered query and small pages of the
    # subscription and audit lists reveal.
    "nonce-memory-300s": Fault(
        "a nonce is forgotten 300 s after its first use instead of 600 s (seen only with "
        "--thorough)",
        ("ATS-AUTH-05",),
        thorough=True,
    ),
    "unsorted-canonical-query": Fault(
        "the canonical query keeps its pairs in the order sent instead of sorting them: a "
        "request whose query is not sent in sorted order is refused",
        ("ATS-API-05", "ATS-AUTH-02", "ATS-AUTH-06", "ATS-AUTH-07"),
    ),
    "subscription-audit-pages-overlap": Fault(
        "subscription and audit pages after the first start one item early",
        ("ATS-API-08",),
    ),
}


class UnknownFaultError(ValueError):
    """A fault name is not in ``FAULTS``."""


@dataclass(frozen=True)
class FaultSet(SwitchSet):
    """A fault set is the fault switches that are on for one node; every name is in ``FAULTS``."""

    @classmethod
    def of(cls, names: Iterable[str]) -> FaultSet:
        """The fault set of these names; an unknown name raises ``UnknownFaultError``."""
        return cls(known(names, FAULTS, "fault", UnknownFaultError))
