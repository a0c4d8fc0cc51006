"""Checks of ATS-1.0 chapter 11 (SEC): TLS, security headers, rate limiting, injection, CORS,
plain HTTP.

A lab run (ATS §11: a plain-HTTP target the tester declares as such) cannot assess transport
security: ATS-SEC-01, the HSTS part of ATS-SEC-02 and ATS-SEC-06 are then skipped with
``LAB_SKIP`` as their reason. Outside a lab run a plain-HTTP target fails all three.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote, unquote, urlsplit

from conformance import compare, tls
from conformance.ats import AUDIT_EVENTS as AUDIT
from conformance.ats import (
    CATALOG,
    HEALTH,
    NODE,
    SHARE_PREFIX,
    STATS,
    SUBSCRIPTIONS,
    UNKNOWN_PATH,
)
from conformance.ats import share_query_path as _share
from conformance.checks import CheckContext, Finding, Inconclusive, check
from conformance.checks._catalog_walk import CatalogWalk
from conformance.checks._expect import answer_text, expect_status, request_text
from conformance.checks._payloads import corpus
from conformance.checks.node import fetch_descriptor
from conformance.client import Exchange

__all__ = ["LAB_SKIP", "InjectionCase", "injection_cases"]

LAB_SKIP = "lab run: plain HTTP allowed, transport security not assessed"

# Well formed (ATS §4) and absent from any catalog the suite knows: a 404 on every node.
UNKNOWN_CODE = "399999/999999"

# Tester-side bounds of ATS-SEC-03 (the burst's size cap and its threads are clause
# parameters): the steady phase lasts this long and sends at most this many, and Retry-After is
# awaited only up to this many seconds.
_STEADY_S = 3.0
_MAX_STEADY = 300
_MAX_RETRY_WAIT_S = 60
# The most keep-alive connections a burst opens (a slow node needs more to take it in time).
_MAX_BURST_CONNECTIONS = 64
# Tolerance on the tester's time of an answer (read in turn after the node sent it).
_ANSWER_TIMING_S = 0.1
# Answers within a window beyond this multiple of the limit, none 429: no limiting at all.
_OVER_LIMIT = 1.5
# The largest burst sent one request per connection, to a node that closes each after one answer.
_MAX_BURST_CONNECTIONS_CLOSING = 1000
_RETRY_AFTER = re.compile(r"[0-9]+")
_MAX_AGE = re.compile(r"(?:^|;)\s*max-age\s*=\s*\"?([0-9]+)\"?\s*(?:;|$)", re.IGNORECASE)
_SHOWN = 3


def _resource(ctx: CheckContext, role: str) -> str:
    code = ctx.target.resources.get(role)
    if not code:
        raise Inconclusive(f"{ctx.target.source}: resources.{role} is not set")
    return code


def _listed(problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:_SHOWN])
    more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
    return shown + more


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _not_https(ctx: CheckContext) -> str:
    return (
        f"the target is not HTTPS: {ctx.target.node.base_url} is plain HTTP; expected HTTPS "
        f"(ATS §11 certifies HTTPS nodes only; a lab run must be declared with --lab or "
        f"`lab: true` in {ctx.target.source})"
    )


def _https_only(ctx: CheckContext, part: str) -> NoReturn:
    """A clause that needs HTTPS on a plain-HTTP target: SKIP in a lab run, else FAIL."""
    if ctx.lab:
        ctx.skip(LAB_SKIP)
    ctx.fail(f"{part}{_not_https(ctx)}")


# -- ATS-SEC-01 ------------------------------------------------------------------------------


@check("ATS-SEC-01")
def tls_modern_and_certificate_valid(ctx: CheckContext) -> None:
    """Over HTTPS only TLS 1.2 or newer is accepted, with a certificate valid for the host."""
    node = ctx.target.node
    if not node.is_https:
        _https_only(ctx, "")
    host, port = _host_port(node.base_url)
    timeout = ctx.target.timeouts.connect_s + ctx.target.timeouts.read_s
    minimum = tls.tls_version(str(ctx.params.get("min_tls_version", "TLSv1.2")))
    problems: list[str] = []
    undecided: list[str] = []
    try:
        verified = tls.probe_certificate(host, port, ca_bundle=node.ca_bundle, timeout_s=timeout)
        ctx.note(f"verifying handshake with {host}:{port}: {verified.detail}")
        if not verified.accepted:
            bundle = node.ca_bundle or "the system's CA store"
            problems.append(f"{verified.detail} (chain checked against {bundle})")
        elif verified.version is not None and tls.tls_version(verified.version) < minimum:
            problems.append(f"the node negotiated {verified.version}; expected TLS 1.2 or newer")
        for name in ctx.params.get("refused_tls_versions", ("TLSv1", "TLSv1.1")):
            probe = tls.probe_version(host, port, str(name), timeout_s=timeout)
            ctx.note(probe.detail)
            if not probe.offered:
                undecided.append(probe.detail)
            elif probe.accepted:
                problems.append(
                    f"a {tls.TLS_VERSIONS[str(name)]} handshake was accepted; expected it refused"
                )
    except ConnectionError as exc:
        ctx.error(str(exc))
    if problems:
        ctx.fail(_listed(problems))
    if undecided:
        ctx.error(f"part of the clause could not be assessed: {_listed(undecided)}")


# -- ATS-SEC-02 ------------------------------------------------------------------------------


def _header_probes(ctx: CheckContext) -> list[Exchange]:
    """Answers of every kind on every path family: successes, 401, 403, 404, unsigned."""
    unconditional = _resource(ctx, "unconditional")
    not_shared = ctx.target.resources.get("not_shared") or unconditional
    client = ctx.client
    return [
        client.request("GET", HEALTH, app=None),
        client.get(NODE, app="consumer"),
        client.get(CATALOG, app="consumer", params={"size": 1}),
        client.get(f"{CATALOG}/{unconditional}", app="consumer"),
        client.get(f"{CATALOG}/{UNKNOWN_CODE}", app="consumer"),
        client.get(CATALOG, app=None),
        client.post(_share(unconditional), app="consumer", json={"size": 1}),
        client.post(_share(not_shared), app="consumer", json={}),
        client.post(_share(unconditional), app=None, json={}),
        client.get(SUBSCRIPTIONS, app="consumer", params={"size": 1}),
        client.get(f"{SUBSCRIPTIONS}/ats-no-such-subscription", app="consumer"),
        client.get(AUDIT, app="admin", params={"size": 1}),
        client.get(AUDIT, app="consumer"),
        client.get(STATS, app="admin"),
        client.get(STATS, app=None),
        client.request("GET", UNKNOWN_PATH, app=None),
    ]


def _directives(value: str) -> set[str]:
    return {part.split("=", 1)[0].strip().lower() for part in value.split(",") if part.strip()}


def _hsts_problem(ex: Exchange, minimum: int) -> str | None:
    value = ex.headers.get("Strict-Transport-Security")
    if value is None:
        return "no Strict-Transport-Security"
    match = _MAX_AGE.search(value)
    if match is None:
        return f"Strict-Transport-Security {value!r} has no max-age"
    if int(match.group(1)) < minimum:
        return f"Strict-Transport-Security max-age {match.group(1)} is below {minimum}"
    return None


@check("ATS-SEC-02")
def security_headers_present(ctx: CheckContext) -> None:
    """Every answer carries nosniff; HTTPS answers carry HSTS; data paths carry no-store."""
    prefixes = tuple(str(p) for p in ctx.params.get("no_store_prefixes", ()))
    minimum = int(ctx.params.get("hsts_min_max_age", 31536000))
    https = ctx.target.node.is_https
    problems: list[str] = []
    if not https:
        # "Over HTTPS responses carry HSTS": the part does not apply to a plain-HTTP target,
        # whose transport is ATS-SEC-01's finding (issue 15, item 4).
        ctx.note(
            LAB_SKIP
            if ctx.lab
            else "the HSTS part concerns HTTPS answers: not applicable to this plain-HTTP "
            "target (ATS-SEC-01 judges its transport)"
        )
    exchanges = _header_probes(ctx)
    for ex in exchanges:
        if ex.status is None:
            continue
        where = f"{request_text(ex)} → {answer_text(ex)}"
        nosniff = ex.headers.get("X-Content-Type-Options", "")
        if nosniff.strip().lower() != "nosniff":
            problems.append(f"{where} carries no X-Content-Type-Options: nosniff")
        path = urlsplit(ex.target).path
        # The gateway prefix of base_url may stand before /api/v1.
        if any(p in path for p in prefixes):
            cache = ex.headers.get("Cache-Control")
            if cache is None or "no-store" not in _directives(cache):
                seen = f"Cache-Control {cache!r}" if cache is not None else "no Cache-Control"
                problems.append(f"{where} carries {seen}; expected no-store")
        if https:
            hsts = _hsts_problem(ex, minimum)
            if hsts is not None:
                problems.append(f"{where} carries {hsts}; expected max-age ≥ {minimum}")
    ctx.note(f"{len(exchanges)} answers examined")
    if problems:
        ctx.fail(_listed(problems))


# -- ATS-SEC-03 ------------------------------------------------------------------------------


def _rate_limit(ctx: CheckContext) -> float:
    limit = fetch_descriptor(ctx).get("rate_limit_per_app")
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
        raise Finding(
            f"the node descriptor's rate_limit_per_app is {limit!r}; expected a positive number"
        )
    return float(limit)


def _burst_app(ctx: CheckContext) -> str:
    # The burst uses the second consumer so that the rest of the run is not slowed down.
    return "consumer_b" if "consumer_b" in ctx.target.apps else "consumer"


def _retry_after_problem(ex: Exchange) -> str | None:
    value = ex.headers.get("Retry-After")
    if value is None:
        return f"{request_text(ex)} was answered 429 without Retry-After"
    if not _RETRY_AFTER.fullmatch(value.strip()) or int(value) < 1:
        return (
            f"{request_text(ex)} was answered 429 with Retry-After {value!r}; "
            f"expected an integer ≥ 1"
        )
    # A body without `code` is ATS-API-03's finding (issue 15, item 5); another code is this one's.
    if ex.error_code not in (None, "RATE_LIMITED"):
        return f"{request_text(ex)} was answered {answer_text(ex)}; expected 429 RATE_LIMITED"
    return None


@check("ATS-SEC-03")
def rate_limit_enforced(ctx: CheckContext) -> None:
    """A burst of twice the limit draws 429 with Retry-After; half the limit never does."""
    limit = _rate_limit(ctx)
    burst = math.ceil(limit * float(ctx.params.get("burst_factor", 2)))
    window = float(ctx.params.get("window_s", 1))
    cap = int(ctx.params.get("max_burst", 2000))
    if burst > cap:
        # A choice of the node (ATS-NODE-02), not a defect: the run lacks the means, not the node.
        ctx.not_assessed(
            f"rate_limit_per_app is {limit:g}: the burst of {burst} requests ATS-SEC-03 needs "
            f"exceeds what the tester bursts ({cap} within {window:g} s, params.max_burst); "
            f"assess it with a load generator that sends {burst} signed requests of one consumer "
            f"app within {window:g} s and counts the 429 RATE_LIMITED answers"
        )
    app = _burst_app(ctx)
    # Pipelined over keep-alive connections, so that the tester's CPU never limits the burst
    # (HTTP/1.1 servers answer pipelined requests in order): enough connections that a node
    # answering one request per connection in `latency` still takes the burst within the window.
    # The latency of a request on a kept-alive connection: the second of two (no handshake).
    latency = math.inf
    for _ in range(2):
        probe_started = time.monotonic()
        ctx.client.get(NODE, app=app, pace=False)
        latency = min(latency, time.monotonic() - probe_started)
    connections = min(
        _MAX_BURST_CONNECTIONS,
        max(int(ctx.params.get("burst_connections", 4)), math.ceil(2 * burst * latency / window)),
    )
    started = time.monotonic()
    answers = ctx.client.burst(app, NODE, burst, connections=connections)
    if len(answers) < burst // 2 and burst <= _MAX_BURST_CONNECTIONS_CLOSING:
        # A node may close every connection after one answer (`Connection: close`, HTTP/1.1
        # allows it): the burst then goes one request per connection.
        ctx.note(
            f"only {len(answers)} of {burst} pipelined requests were answered (the node closes "
            f"its connections): the burst is sent again, one request per connection"
        )
        connections = burst
        started = time.monotonic()
        answers = ctx.client.burst(app, NODE, burst, connections=connections)
    if len(answers) < burst // 2:
        ctx.error(
            f"only {len(answers)} of a burst of {burst} pipelined requests were answered: the "
            f"node closed its keep-alive connections early"
        )
    limited = [a for a in answers if a.exchange.status == 429]
    span = max(a.sent_at for a in answers) - min(a.sent_at for a in answers)
    # The tester reads answers in order on each connection: their times carry its own delay.
    densest = _densest(sorted(a.answered_at for a in answers), window + _ANSWER_TIMING_S)
    ctx.note(
        f"burst: {burst} requests by {app} over {connections} connections sent in {span:.2f} s, "
        f"{len(answers)} answered ({time.monotonic() - started:.2f} s until the last answer, at "
        f"most {densest} within {window:g} s), {len(limited)} answered 429"
    )
    # The evidence keeps the first answers and the first 429s, not every answer of the burst.
    for answer in [*answers[:2], *limited[:2]]:
        ctx.client.evidence.add(answer.exchange)
    if not limited:
        # The window counts authenticated requests: judged by when the node answered them, not
        # by when they were sent (a node may take a pipelined burst over more than a second).
        # A node answering far more than its limit within a window without one 429 does not
        # limit over a sliding window; one answering fewer than the burst was not reached by it.
        if densest <= _OVER_LIMIT * limit and densest < burst:
            ctx.not_assessed(
                f"the node answered the {burst} requests over more than {window:g} s (at most "
                f"{densest} within any {window:g} s) and none 429: the burst of 2 × "
                f"rate_limit_per_app {limit:g} within {window:g} s did not reach it; assess it "
                f"with a load generator that has {burst} requests of one consumer app answered "
                f"within {window:g} s"
            )
        ctx.fail(
            f"the node answered {densest} requests of one app within {window:g} s "
            f"(rate_limit_per_app {limit:g}, a burst of {burst}) and none 429; expected at least "
            f"one 429 RATE_LIMITED"
        )
    problems = [p for p in (_retry_after_problem(a.exchange) for a in limited) if p]
    if problems:
        ctx.fail(_listed(problems))
    wait = max(int(a.exchange.headers["Retry-After"]) for a in limited)
    if wait > _MAX_RETRY_WAIT_S:
        ctx.error(f"Retry-After is {wait} s; the tester waits at most {_MAX_RETRY_WAIT_S} s")
    # The burst's requests still in flight at the first 429 may answer later: wait from the last.
    last = max(a.answered_at for a in answers)
    time.sleep(max(0.0, last + wait - time.monotonic()))
    again = ctx.client.get(NODE, app=app, pace=False)
    if again.status == 429:
        ctx.fail(
            f"a request {wait} s after Retry-After {wait} was answered {answer_text(again)}; "
            f"expected the app served again after Retry-After"
        )
    expect_status(again, 200, what=f"a request {wait} s after Retry-After {wait}")
    _steady(ctx, app, limit * float(ctx.params.get("steady_factor", 0.5)))


def _densest(moments: Sequence[float], window: float) -> int:
    """The most of the sorted ``moments`` that fall within any span of ``window`` seconds."""
    best, first = 0, 0
    for last, moment in enumerate(moments):
        while moment - moments[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return best


def _steady(ctx: CheckContext, app: str, rate: float) -> None:
    """Requests at ``rate`` per second for a few seconds, none of them answered 429."""
    count = min(_MAX_STEADY, max(2, int(rate * _STEADY_S)))
    interval = 1.0 / rate
    # Let the window of the recovery request pass, then never send two closer than interval.
    time.sleep(interval)
    next_at = time.monotonic()
    for _ in range(count):
        time.sleep(max(0.0, next_at - time.monotonic()))
        ex = ctx.client.get(NODE, app=app, pace=False)
        next_at = max(next_at + interval, time.monotonic())
        if ex.status == 429:
            ctx.fail(
                f"a steady {rate:g} requests per second (at most half the limit) drew 429 "
                f"({request_text(ex)}); expected no 429"
            )
    ctx.note(f"steady: {count} requests at {rate:g}/s, none answered 429")


# -- ATS-SEC-04 ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InjectionCase:
    """One injection payload of the corpus: its description, kind and text as sent."""

    description: str
    kind: str
    value: str
    encoded: bool = False

    def in_path(self) -> str:
        """The payload as a path segment on the wire (traversal keeps its slashes)."""
        if self.encoded:
            return self.value
        return quote(self.value, safe="/" if self.kind == "path_traversal" else "")

    def in_query(self) -> str:
        """The payload as a query value on the wire."""
        return self.value if self.encoded else quote(self.value, safe="")


def injection_cases(kinds: Iterable[str] | None = None) -> tuple[InjectionCase, ...]:
    """The cases of ``profiles/corpora/injection.yaml``, only those of ``kinds`` when given."""
    wanted = set(kinds) if kinds is not None else None
    cases = []
    for raw in corpus("injection")["cases"]:
        if wanted is not None and raw["kind"] not in wanted:
            continue
        value = str(raw["value"]) * int(raw.get("repeat", 1))
        cases.append(
            InjectionCase(
                str(raw["description"]), str(raw["kind"]), value, bool(raw.get("encoded"))
            )
        )
    return tuple(cases)


def _harmless() -> InjectionCase:
    return InjectionCase("a harmless value", "harmless", str(corpus("injection")["harmless"]))


def _signed_raw(
    ctx: CheckContext, method: str, target: str, body: bytes = b"", app: str = "consumer"
) -> Exchange:
    headers = ctx.client.signed_headers(app, method, target, body)
    if body:
        headers["Content-Type"] = "application/json"
    return ctx.client.raw(method, target, headers=headers, body=body, allow_transport_error=True)


def _records(ex: Exchange) -> int:
    """How many records or entries a 2xx answer carries (0 for anything else)."""
    if ex.status is None or not 200 <= ex.status < 300:
        return 0
    try:
        body = json.loads(ex.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return 1 if ex.body.strip() else 0
    if not isinstance(body, dict):
        return 1
    items = body.get("items")
    total = body.get("total")
    if isinstance(items, list):
        return max(len(items), compare.integer(total) or 0)
    return 1 if body else 0


@dataclass(frozen=True)
class _Place:
    """Where a payload goes: a name for reasons and how to send a value there."""

    name: str
    send: Callable[[InjectionCase], Exchange]
    text_only: bool = False
    sampled: bool = False
    # The records a payload legitimately draws as plain text (ATS-CAT-04: `keyword` is a
    # substring, so `%` matches an entry whose name holds a literal %), beyond the harmless
    # value's: a node whose catalog holds them is not injectable for answering them.
    literal: Callable[[InjectionCase], int] = lambda case: 0


def _string_item(ctx: CheckContext, code: str) -> str:
    ex = ctx.client.get(f"{CATALOG}/{code}", app="consumer")
    expect_status(ex, 200, what=f"the catalog entry of {code}")
    entry = ex.json()
    items = entry.get("items") if isinstance(entry, dict) else None
    for item in items or ():
        if isinstance(item, dict) and item.get("data_type") in ("C", "M"):
            return str(item["name"])
    raise Inconclusive(f"the resource {code} declares no character item to filter on")


def _places(ctx: CheckContext, wanted: Iterable[str]) -> Iterator[_Place]:
    wanted = set(wanted)
    filtered = ctx.target.resources.get("population") or _resource(ctx, "unconditional")
    if "path_segment" in wanted:
        yield _Place(
            "a catalog path segment", lambda c: _signed_raw(ctx, "GET", f"{CATALOG}/{c.in_path()}")
        )
        yield _Place(
            "a share query path segment",
            lambda c: _signed_raw(ctx, "POST", _share(c.in_path()), b"{}"),
        )
    if "query_parameter" in wanted:
        # Every case goes into the free-text keyword; the enumerated and typed parameters
        # get the first case of each kind, which keeps the request count bounded.
        texts = functools.cache(lambda: _catalog_texts(ctx))
        for name in ("keyword", "share_type", "scope", "page", "updated_since"):
            yield _Place(
                f"the catalog query parameter {name}",
                functools.partial(_send_query_value, ctx, name),
                sampled=name != "keyword",
                literal=(lambda case: _literal_matches(texts(), case))
                if name == "keyword"
                else (lambda case: 0),
            )
    if "filter_value" in wanted:
        item = _string_item(ctx, filtered)

        def send_filter(case: InjectionCase) -> Exchange:
            body = json.dumps({"filter": {item: case.value}}, ensure_ascii=False)
            return _signed_raw(ctx, "POST", _share(filtered), body.encode("utf-8"))

        yield _Place(f"a filter value of {item} on {filtered}", send_filter, text_only=True)


def _catalog_texts(ctx: CheckContext) -> list[tuple[str, str]]:
    """The name and summary of every entry of the local catalog (what `keyword` searches)."""
    return [
        (str(e.get("name", "")), str(e.get("summary", ""))) for e in CatalogWalk(ctx, scope=None)
    ]


def _literal_matches(texts: Sequence[tuple[str, str]], case: InjectionCase) -> int:
    """How many entries hold the payload, read as plain text, in their name or summary."""
    value = unquote(case.value) if case.encoded else case.value
    return sum(1 for name, summary in texts if value in name or value in summary)


def _send_query_value(ctx: CheckContext, name: str, case: InjectionCase) -> Exchange:
    return _signed_raw(ctx, "GET", f"{CATALOG}?{name}={case.in_query()}")


def _recorded_forwards(ctx: CheckContext) -> int | None:
    """How many share queries the emulated neighbours received so far (None: not observable)."""
    if ctx.neighbours is None or not ctx.neighbours.all():
        return None
    return sum(len(n.recorded(SHARE_PREFIX)) for n in ctx.neighbours.all())


@check("ATS-SEC-04")
def injection_payloads_harmless(ctx: CheckContext) -> None:
    """Injection payloads answer 4xx or no more records than a harmless value, never 5xx."""
    cases = injection_cases(ctx.params.get("payload_kinds"))
    places = list(_places(ctx, ctx.params.get("places", ("path_segment",))))
    harmless = _harmless()
    problems: list[str] = []
    forwards_before = _recorded_forwards(ctx)
    sent = 0
    for place in places:
        baseline = place.send(harmless)
        if baseline.status is None or baseline.status >= 500:
            ctx.error(f"the harmless value in {place.name} got {answer_text(baseline)}")
        allowed = _records(baseline)
        kinds_sent: set[str] = set()
        for case in cases:
            if (place.text_only and case.encoded) or (place.sampled and case.kind in kinds_sent):
                continue
            kinds_sent.add(case.kind)
            ex = place.send(case)
            sent += 1
            problem = _injection_problem(ex, case, place.name, allowed + place.literal(case))
            if problem:
                problems.append(problem)
    ctx.note(f"{sent} payload requests in {len(places)} places")
    forwards_after = _recorded_forwards(ctx)
    if forwards_before is None:
        ctx.note("no emulated neighbour records requests: forwarding was not observable")
    elif forwards_after != forwards_before:
        problems.append(
            f"{(forwards_after or 0) - forwards_before} share queries reached the emulated "
            f"neighbours while payloads were sent; expected path payloads never forwarded"
        )
    if problems:
        ctx.fail(_listed(problems))


def _injection_problem(ex: Exchange, case: InjectionCase, place: str, allowed: int) -> str | None:
    what = f"{case.description} in {place}"
    if ex.status is None:
        # A node may close the connection on an overlong request line instead of answering.
        if case.kind == "oversized":
            return None
        return f"{what} got {answer_text(ex)}; expected a 4xx or an empty result"
    if ex.status == 429:
        raise Inconclusive(
            f"{request_text(ex)} was rate limited (429); the clause could not be judged"
        )
    if 400 <= ex.status < 500:
        return None
    if 200 <= ex.status < 300:
        found = _records(ex)
        if found > allowed:
            return (
                f"{what} was answered {found} records, the harmless value {allowed}; expected "
                f"no more ({request_text(ex)})"
            )
        return None
    return (
        f"{what} was answered {answer_text(ex)}; expected a 4xx or an empty result "
        f"({request_text(ex)})"
    )


# -- ATS-SEC-05 ------------------------------------------------------------------------------


def _cors_problem(ex: Exchange, origin: str) -> str | None:
    allow = ex.headers.get("Access-Control-Allow-Origin")
    if allow is None:
        return None
    where = f"{request_text(ex)} → {answer_text(ex)}"
    if allow.strip() == "*":
        return f"{where} carries Access-Control-Allow-Origin: *"
    credentials = ex.headers.get("Access-Control-Allow-Credentials", "")
    if allow.strip() == origin and credentials.strip().lower() == "true":
        return f"{where} echoes Origin {origin} with Access-Control-Allow-Credentials: true"
    return None


@check("ATS-SEC-05")
def cors_not_permissive(ctx: CheckContext) -> None:
    """Authenticated endpoints never allow every origin, nor an echoed one with credentials."""
    origin = str(ctx.params.get("probe_origin", "https://attacker.example"))
    unconditional = _resource(ctx, "unconditional")
    client = ctx.client
    cross = {"Origin": origin}
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-app-id,x-timestamp,x-nonce,x-signature",
    }
    exchanges = [
        client.get(NODE, app="consumer", headers=cross),
        client.get(CATALOG, app="consumer", params={"size": 1}, headers=cross),
        client.post(_share(unconditional), app="consumer", json={"size": 1}, headers=cross),
        client.get(SUBSCRIPTIONS, app="consumer", params={"size": 1}, headers=cross),
        client.get(AUDIT, app="admin", params={"size": 1}, headers=cross),
        client.get(NODE, app=None, headers=cross),
        client.request("OPTIONS", NODE, app=None, headers=preflight),
        client.request("OPTIONS", _share(unconditional), app=None, headers=preflight),
        client.request("OPTIONS", AUDIT, app=None, headers=preflight),
    ]
    problems = [p for p in (_cors_problem(ex, origin) for ex in exchanges) if p]
    if problems:
        ctx.fail(_listed(problems))


# -- ATS-SEC-06 ------------------------------------------------------------------------------


def _data_problem(ex: Exchange) -> str | None:
    where = f"{request_text(ex)} over plain HTTP"
    if ex.status is None or 300 <= ex.status < 400:
        return None
    if ex.status < 300:
        return (
            f"{where} was answered {answer_text(ex)} with data; expected a refusal, a redirect "
            f"or an error"
        )
    try:
        body = json.loads(ex.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if _holds_data(body):
        return f"{where} was answered {answer_text(ex)} with data in its body; expected none"
    return None


def _holds_data(body: Any) -> bool:
    """An error answer's body holds data: listed items, a catalog entry or a descriptor. An
    ATS error body with extra members (ATS-API-03: "at least" its three) holds none."""
    if not isinstance(body, dict):
        return False
    items = body.get("items")
    if isinstance(items, list) and items:
        return True
    if isinstance(body.get("code"), str) and isinstance(body.get("message"), str):
        return False
    return {"resource_code", "summary"} <= body.keys() or {"node_id", "level"} <= body.keys()


@check("ATS-SEC-06")
def no_data_over_plain_http(ctx: CheckContext) -> None:
    """The node's plain-HTTP address refuses, redirects or errs without data."""
    node = ctx.target.node
    if not node.is_https:
        # The clause concerns "a node certified over HTTPS": a plain-HTTP target cannot be
        # certified at all, which is ATS-SEC-01's finding, not this clause's (issue 15, item 4).
        ctx.skip(
            LAB_SKIP
            if ctx.lab
            else "the clause concerns a node certified over HTTPS; this target is plain HTTP "
            "(ATS-SEC-01 fails it)"
        )
    plain = tls.plain_http_url(node)
    ctx.note(f"plain-HTTP address probed: {plain}")
    probes: Sequence[tuple[str, Mapping[str, Any]]] = (
        (NODE, {}),
        (CATALOG, {"size": 1}),
    )
    problems = []
    for path, params in probes:
        ex = ctx.client.request(
            "GET",
            path,
            app="consumer",
            params=dict(params) or None,
            base_url=plain,
            allow_transport_error=True,
        )
        problem = _data_problem(ex)
        if problem:
            problems.append(problem)
    if problems:
        ctx.fail(_listed(problems))
