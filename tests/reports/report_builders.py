"""Run reports built from the model's own constructors and the profile's own clauses.

Imported by the report tests (``from report_builders import ...``).

Clause ids, levels, chapters and titles come from ``profiles/``; the verdicts, reasons and
evidence are chosen per test. Nothing here is a hard-coded expected report.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from typing import Any

from conformance.profile import Clause, load_clauses, load_profile
from conformance.report.model import ClauseResult, RunReport, SkipCause, Verdict

HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


@functools.cache
def clauses() -> tuple[Clause, ...]:
    """Every clause of ATS-1.0, as the profiles hold it."""
    return load_clauses()


def result(
    clause: Clause,
    verdict: Verdict = Verdict.PASS,
    reason: str = "",
    evidence: Sequence[Mapping[str, Any]] = (),
    skip_cause: SkipCause | None = None,
) -> ClauseResult:
    """The result of one profile clause."""
    return ClauseResult(
        id=clause.id,
        level=clause.level,
        chapter=clause.chapter,
        title={"zh": clause.title.zh, "en": clause.title.en},
        verdict=verdict,
        reason=reason or f"{clause.title.en}: {verdict.value.lower()}",
        duration_s=0.25,
        evidence=tuple(evidence),
        skip_cause=skip_cause if verdict is Verdict.SKIP else None,
    )


def exchange(body: str, *, status: int = 200, signature: str = "***") -> dict[str, Any]:
    """An evidence entry shaped as the client records one."""
    return {
        "method": "POST",
        "target": "/api/v1/share/101001/query",
        "request_headers": {
            "X-App-Id": "consumer-a",
            "X-Signature": signature,
            "Content-Type": "application/json",
        },
        "request_body": '{"fields":["name"]}',
        "request_body_size": 19,
        "status": status,
        "headers": {"Content-Type": "application/json", "X-Request-Id": "abc12345"},
        "body": body,
        "body_size": len(body.encode("utf-8")),
        "truncated": False,
        "elapsed_s": 0.012,
        "error": None,
        "summary": f"POST /api/v1/share/101001/query → {status}",
    }


def run_report(
    results: Sequence[ClauseResult],
    *,
    lab: bool = False,
    load: Mapping[str, Any] | None = None,
    partial: bool = False,
    stopped: Mapping[str, str] | None = None,
    preflight: Sequence[Mapping[str, str]] = (),
) -> RunReport:
    """A run of these results against a provincial node."""
    return RunReport(
        profile="provincial",
        profile_digest=load_profile("provincial").digest(),
        suite_version="0.1.0",
        started_at="2026-11-25T09:00:00+08:00",
        finished_at="2026-11-25T09:00:31+08:00",
        target={
            "base_url": "http://127.0.0.1:8301",
            "level": "provincial",
            "node_id": "330000",
            "parent_id": "100000",
            "lab": lab,
            "apps": {"consumer": "consumer-a", "admin": "admin"},
            "resources": {"unconditional": "101001"},
        },
        clauses=tuple(results),
        lab=lab,
        partial=partial,
        stopped=dict(stopped or {}),
        preflight=tuple(preflight),
        load_mode="smoke" if load else "off",
        load=dict(load or {}),
    )


def make_report(
    verdicts: Mapping[str, Verdict] | None = None,
    evidence: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    drop: Sequence[str] = (),
    **options: Any,
) -> RunReport:
    """A report of every profile clause: PASS unless ``verdicts`` says otherwise."""
    chosen = verdicts or {}
    return run_report(
        [
            result(
                c,
                chosen.get(c.id, Verdict.PASS),
                evidence=(evidence or {}).get(c.id, ()),
                skip_cause=SkipCause.NOT_APPLICABLE,
            )
            for c in clauses()
            if c.id not in drop
        ],
        **options,
    )


def load_results() -> dict[str, Any]:
    """Load results of two scenarios and a stepped load, shaped as the load stage reports them."""
    steps = [
        {"name": f"step-{rate}", "rate_per_s": float(rate), "p95_ms": 5.0 + rate / 50}
        for rate in (50, 100, 150)
    ]
    return {
        "mode": "smoke",
        "workers": 1,
        "scenarios": _scenarios(),
        "problems": [],
        "error": None,
        "stepped": {"mode": "smoke", "saturation_rate_per_s": 150.0, "steps": steps},
    }


def _scenarios() -> dict[str, Any]:
    return {
        "share-query": {
            "clause": "ATS-PERF-01",
            "rate": 50.0,
            "p50_ms": 12.5,
            "p95_ms": 41.0,
            "p99_ms": 88.0,
            "failures": 0,
            "requests": 500,
            "timeline": [
                {"t": second, "rate": 49.0 + second % 3, "p95_ms": 38.0 + second}
                for second in range(10)
            ],
        },
        "catalog-page": {"rate": 20.0, "p50_ms": 30.0, "p95_ms": 70.0, "p99_ms": 120.0},
    }


_EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]*)", re.IGNORECASE)


class Page(HTMLParser):
    """The parts of a page that could load or run something."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in = tag
            (self.scripts if tag == "script" else self.styles).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "style":
            self.styles[-1] += data

    def external_references(self) -> list[str]:
        found = [
            value
            for _, attrs in self.tags
            for name, value in attrs.items()
            if name in ("src", "href", "action", "xlink:href", "poster", "data")
            and value
            and _EXTERNAL.match(value)
        ]
        css = [*self.styles, *(a.get("style") or "" for _, a in self.tags)]
        found += [u for text in css for u in _CSS_URL.findall(text) if _EXTERNAL.match(u)]
        return found

    def elements(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [
            attrs
            for name, attrs in self.tags
            if name == tag and all(attrs.get(k) == v for k, v in wanted.items())
        ]
