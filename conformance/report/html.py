"""report.html: one self-contained, bilingual file a certification officer reads and signs.

The page has no external resource of any kind (government networks are often isolated): its
style, its small filter script and its charts (inline SVG) are part of the file, and a
Content-Security-Policy forbids the browser to fetch anything or to run any script but the
filter script. Everything a node sent is escaped before it reaches the page, so that a node
answering ``<script>`` shows that text and runs nothing. Chinese comes first; a language switch
(pure CSS, so it works without script) shows Chinese, English or both.

The writer renders the run model and recomputes nothing (the Allure HTML report is built apart,
by ``conformance.allure_report``).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from conformance.masking import ANY_RUN
from conformance.profile import ProfileError, load_clauses, load_profile
from conformance.report.integrity import read_report, report_identity
from conformance.report.model import RunReport, Verdict, printable

TEMPLATES = Path(__file__).with_name("templates")
_PERCENTILE = re.compile(r"^p(\d{2,3}(?:\.\d+)?)(?:_ms)?$")
_TIME_KEYS = ("t", "t_s", "time_s", "elapsed_s", "second", "time")
_RATE_KEY = re.compile(r"rate|rps|per_s|throughput")
_PALETTE = ("#1f5fa8", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0f766e")


@functools.cache
def labels() -> dict[str, Any]:
    """The bilingual labels of the HTML reports."""
    return dict(yaml.safe_load((TEMPLATES / "labels.yaml").read_text(encoding="utf-8")))


@functools.cache
def environment() -> jinja2.Environment:
    """The template environment: autoescaping on, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # A node's control characters (NUL …) are shown escaped, never written into the page.
        finalize=lambda value: (
            printable(value) if isinstance(value, str) and not isinstance(value, Markup) else value
        ),
    )
    env.globals["L"] = labels()
    return env


def page_security() -> tuple[Markup, str]:
    """The inline filter script and the Content-Security-Policy that admits it and nothing else."""
    script = (TEMPLATES / "filters.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )
    return Markup(script), policy


# -- evidence --------------------------------------------------------------------------


# The client already masked the evidence; the writer masks it again (``conformance.masking``)
# in case an entry reached the report another way (ATS §3: X-Signature).
def scrub_text(text: str) -> str:
    """``text`` with anything that looks like a signature or secret value replaced by ``***``."""
    return ANY_RUN.text(text)


def scrub_headers(headers: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Header pairs with credential values masked."""
    return list(ANY_RUN.headers(headers).items())


def pretty_body(text: str | None) -> str:
    """A body as a reader wants it: indented JSON where it is JSON, else the text as sent."""
    if not text:
        return ""
    try:
        parsed = json.loads(text)
    except ValueError:
        return scrub_text(text)
    return scrub_text(json.dumps(parsed, ensure_ascii=False, indent=2))


@dataclass(frozen=True)
class EvidenceView:
    """One evidence entry prepared for the page: a note, an exchange, or other data."""

    kind: str
    summary: str = ""
    note: str = ""
    request_headers: Sequence[tuple[str, str]] = ()
    request_body: str = ""
    request_body_size: int | None = None
    status: Any = None
    headers: Sequence[tuple[str, str]] = ()
    body: str = ""
    body_size: int | None = None
    truncated: bool = False
    error: str = ""
    elapsed_s: Any = None
    data: str = ""


def evidence_view(entry: Mapping[str, Any]) -> EvidenceView:
    """The page's view of one evidence entry as the client recorded it."""
    if set(entry) == {"note"}:
        return EvidenceView(kind="note", note=scrub_text(str(entry["note"])))
    if "method" in entry or "status" in entry:
        request_body = str(entry.get("request_body") or "")
        body = str(entry.get("body") or "")
        return EvidenceView(
            kind="exchange",
            summary=scrub_text(
                str(entry.get("summary") or f"{entry.get('method')} {entry.get('target')}")
            ),
            request_headers=scrub_headers(entry.get("request_headers") or {}),
            request_body=pretty_body(request_body),
            request_body_size=_cut_size(entry.get("request_body_size"), request_body),
            status=entry.get("status"),
            headers=scrub_headers(entry.get("headers") or {}),
            body=pretty_body(body),
            body_size=_cut_size(entry.get("body_size"), body),
            truncated=bool(entry.get("truncated")),
            error=scrub_text(str(entry.get("error") or "")),
            elapsed_s=entry.get("elapsed_s"),
        )
    return EvidenceView(
        kind="data", data=scrub_text(json.dumps(dict(entry), ensure_ascii=False, indent=2))
    )


def _cut_size(size: Any, shown: str) -> int | None:
    # The client cuts bodies at a bound: the original size is shown only when it was cut.
    if isinstance(size, int) and size > len(shown.encode("utf-8")):
        return size
    return None


# -- load charts -----------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioView:
    """One load scenario prepared for the page: its figures and its charts (inline SVG)."""

    name: str
    figures: Sequence[tuple[str, str]]
    charts: Sequence[tuple[str, Markup]]
    # The clause's threshold beside a figure it bounds (``≤ 500``), by figure key.
    thresholds: Mapping[str, str] = dataclasses.field(default_factory=dict)


# Which clause parameter bounds which load figure, and how (ATS-PERF-01..04).
_THRESHOLDS = {
    "p95_ms": ("≤", "p95_ms"),
    "p99_ms": ("≤", "p99_ms"),
    "failure_ratio": ("≤", "max_failure_ratio"),
    "rate_per_s": ("≥", "rate_per_s"),
}


def _clause_params(profile: str) -> dict[str, Mapping[str, Any]]:
    """Every clause's parameters in the run's profile (its level's overrides applied)."""
    try:
        return {c.id: c.params for c in load_profile(profile).clauses}
    except ProfileError:
        try:
            return {c.id: c.params for c in load_clauses()}
        except ProfileError:
            return {}


def _with_thresholds(
    views: list[ScenarioView], scenarios: Mapping[str, Any], profile: str
) -> list[ScenarioView]:
    params = _clause_params(profile)
    out = []
    for view in views:
        scenario = scenarios.get(view.name)
        clause = scenario.get("clause") if isinstance(scenario, Mapping) else None
        bounds = params.get(str(clause), {})
        thresholds = {
            key: f"{sign} {_shown(bounds[param])}"
            for key, (sign, param) in _THRESHOLDS.items()
            if param in bounds
        }
        out.append(dataclasses.replace(view, thresholds=thresholds) if thresholds else view)
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    if isinstance(value, Mapping | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def load_views(load: Mapping[str, Any]) -> list[ScenarioView]:
    """Every scenario of the run's load results with its figures and charts.

    The load stage reports ``{mode, workers, scenarios: {name: figures}, problems, error,
    stepped: {saturation_rate_per_s, steps: [...], ...}}``; a flat ``{name: figures}`` is read too.
    """
    general = [(str(k), _shown(v)) for k, v in load.items() if not isinstance(v, Mapping)]
    views = [ScenarioView(name="", figures=general, charts=())] if general else []
    scenarios = load.get("scenarios")
    members = scenarios if isinstance(scenarios, Mapping) else load
    for name, scenario in members.items():
        if isinstance(scenario, Mapping) and name != "stepped":
            views.append(_scenario_view(str(name), scenario))
    stepped = load.get("stepped")
    if isinstance(stepped, Mapping):
        views.append(_stepped_view(stepped))
    return views


def _stepped_view(stepped: Mapping[str, Any]) -> ScenarioView:
    # ATS-PERF-04: the steps of increasing rate and the saturation point they found.
    figures = [(str(k), _shown(v)) for k, v in stepped.items() if k != "steps"]
    steps = [s for s in stepped.get("steps") or () if isinstance(s, Mapping)]
    bars = []
    for index, step in enumerate(steps):
        name = str(step.get("name") or f"step {index + 1}")
        figures.append(
            (
                name,
                " · ".join(
                    f"{key} {_shown(step[key])}"
                    for key in ("rate_per_s", "p95_ms", "p99_ms", "failure_ratio")
                    if key in step
                ),
            )
        )
        if (p95 := _number(step.get("p95_ms"))) is not None:
            bars.append((name, p95))
    charts = [("steps_chart", bar_chart(bars, unit="ms"))] if bars else []
    return ScenarioView(name="stepped", figures=figures, charts=charts)


def _scenario_view(name: str, scenario: Mapping[str, Any]) -> ScenarioView:
    figures: list[tuple[str, str]] = []
    for key, value in scenario.items():
        if key == "timeline":
            continue
        if isinstance(value, Mapping):
            figures += [(f"{key}.{k}", _shown(v)) for k, v in value.items()]
        else:
            figures.append((str(key), _shown(value)))
    charts: list[tuple[str, Markup]] = []
    percentiles = sorted(
        (float(m.group(1)), key, number)
        for key, value in scenario.items()
        if (m := _PERCENTILE.match(str(key))) and (number := _number(value)) is not None
    )
    if percentiles:
        bars = [(f"p{_shown(p).removesuffix('.0')}", v) for p, _, v in percentiles]
        charts.append(("latency_chart", bar_chart(bars, unit="ms")))
    timeline = scenario.get("timeline")
    if isinstance(timeline, list):
        points = [p for p in timeline if isinstance(p, Mapping)]
        rate = _series(points, lambda k: bool(_RATE_KEY.search(k)))
        if rate:
            charts.append(("rate_chart", line_chart(rate, unit="/s")))
        latency = _series(points, lambda k: bool(_PERCENTILE.match(k)))
        if latency:
            charts.append(("latency_time_chart", line_chart(latency, unit="ms")))
    return ScenarioView(name=name, figures=figures, charts=charts)


def _series(
    points: Sequence[Mapping[str, Any]], wanted: Any
) -> dict[str, list[tuple[float, float]]]:
    time_key = next((k for k in _TIME_KEYS if points and k in points[0]), None)
    series: dict[str, list[tuple[float, float]]] = {}
    for index, point in enumerate(points):
        x = _number(point.get(time_key)) if time_key else float(index)
        if x is None:
            continue
        for key, value in point.items():
            y = _number(value)
            if key != time_key and y is not None and wanted(str(key)):
                series.setdefault(str(key), []).append((x, y))
    return series


_W, _H, _LEFT, _BOTTOM, _TOP, _RIGHT = 560, 220, 56, 28, 14, 12


def _svg(title: str) -> ET.Element:
    svg = ET.Element(
        "svg",
        {
            "viewBox": f"0 0 {_W} {_H}",
            "width": str(_W),
            "height": str(_H),
            "role": "img",
            "class": "chart",
        },
    )
    ET.SubElement(svg, "title").text = title
    return svg


def _axis(svg: ET.Element, top: float, unit: str) -> None:
    plot_h = _H - _TOP - _BOTTOM
    for step in range(5):
        value = top * step / 4
        y = _H - _BOTTOM - plot_h * step / 4
        ET.SubElement(
            svg,
            "line",
            {"x1": str(_LEFT), "x2": str(_W - _RIGHT), "y1": f"{y:.1f}", "y2": f"{y:.1f}",
             "class": "grid"},
        )  # fmt: skip
        label = ET.SubElement(
            svg, "text", {"x": str(_LEFT - 6), "y": f"{y + 4:.1f}", "text-anchor": "end"}
        )
        label.text = f"{value:.4g}"
    ET.SubElement(svg, "text", {"x": "4", "y": str(_TOP - 2)}).text = unit


def _nice_top(values: Iterable[float]) -> float:
    peak = max([*values, 0.0])
    if peak <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(peak))
    for factor in (1, 2, 2.5, 5, 10):
        if peak <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def bar_chart(bars: Sequence[tuple[str, float]], *, unit: str) -> Markup:
    """An inline SVG bar chart of labelled values."""
    svg = _svg(", ".join(f"{name} {value:.4g} {unit}" for name, value in bars))
    top = _nice_top(v for _, v in bars)
    _axis(svg, top, unit)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = plot_w / max(len(bars), 1)
    for index, (name, value) in enumerate(bars):
        height = plot_h * value / top
        x = _LEFT + slot * index + slot * 0.2
        ET.SubElement(
            svg,
            "rect",
            {"x": f"{x:.1f}", "y": f"{_H - _BOTTOM - height:.1f}", "width": f"{slot * 0.6:.1f}",
             "height": f"{height:.1f}", "fill": _PALETTE[index % len(_PALETTE)]},
        )  # fmt: skip
        centre = f"{x + slot * 0.3:.1f}"
        ET.SubElement(
            svg, "text", {"x": centre, "y": f"{_H - _BOTTOM - height - 4:.1f}",
                          "text-anchor": "middle"}
        ).text = f"{value:.4g}"  # fmt: skip
        ET.SubElement(
            svg, "text", {"x": centre, "y": str(_H - 8), "text-anchor": "middle"}
        ).text = name
    return Markup(ET.tostring(svg, encoding="unicode"))


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, unit: str) -> Markup:
    """An inline SVG line chart of one or more series over time (seconds)."""
    svg = _svg(", ".join(series))
    xs = [x for points in series.values() for x, _ in points]
    x_min, x_max = min(xs), max(xs)
    span = (x_max - x_min) or 1.0
    top = _nice_top(y for points in series.values() for _, y in points)
    _axis(svg, top, unit)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    for value, anchor in ((x_min, "start"), (x_max, "end")):
        x = _LEFT + plot_w * (value - x_min) / span
        ET.SubElement(
            svg, "text", {"x": f"{x:.1f}", "y": str(_H - 8), "text-anchor": anchor}
        ).text = f"{value:.4g} s"
    for index, (name, points) in enumerate(series.items()):
        colour = _PALETTE[index % len(_PALETTE)]
        coordinates = " ".join(
            f"{_LEFT + plot_w * (x - x_min) / span:.1f},{_H - _BOTTOM - plot_h * y / top:.1f}"
            for x, y in points
        )
        ET.SubElement(
            svg, "polyline",
            {"points": coordinates, "fill": "none", "stroke": colour, "stroke-width": "2"},
        )  # fmt: skip
        legend = ET.SubElement(
            svg, "text",
            {"x": str(_W - _RIGHT - 4), "y": str(_TOP + 12 + 14 * index), "text-anchor": "end",
             "fill": colour},
        )  # fmt: skip
        legend.text = name
    return Markup(ET.tostring(svg, encoding="unicode"))


# -- the page --------------------------------------------------------------------------


@functools.cache
def clause_texts() -> dict[str, Mapping[str, str]]:
    """The standard's text (summary, zh/en) of every clause, from the profiles."""
    try:
        return {c.id: {"zh": c.summary.zh, "en": c.summary.en} for c in load_clauses()}
    except ProfileError:
        return {}


def headline_zh(report: RunReport) -> str:
    """The banner's headline in Chinese (``RunReport.headline`` is the English one)."""
    counts = report.counts
    text = (
        f"{labels()['run_verdicts'][report.verdict.value]['zh']}：通过 {counts['PASS']}，"
        f"不通过 {counts['FAIL']}，出错 {counts['ERROR']}，跳过 {counts['SKIP']}"
    )
    notes = [
        (sum(r.waived for r in report.clauses), "项不通过已由认证机构豁免"),
        (len(report.unimplemented_must()), "项“必须”条款未实现检查"),
        (len(report.unassessed_must()), "项“必须”条款未能评估，不构成认证"),
    ]
    text += "".join(f"；{n} {what}" for n, what in notes if n)
    if report.lab:
        text += "；实验室运行（明文 HTTP），不构成认证"
    if report.partial:
        text += "；部分运行，不构成认证"
    return text


def _decisive(evidence: Sequence[EvidenceView]) -> EvidenceView | None:
    """The exchange that decided a finding: the last one recorded (a check stops at its
    finding), or None when there is none."""
    exchanges = [e for e in evidence if e.kind == "exchange"]
    return exchanges[-1] if exchanges else None


def render_html(report: RunReport) -> str:
    """report.html of ``report``: one self-contained bilingual page."""
    script, policy = page_security()
    summary = report.summary()
    chapters = list(summary["by_chapter"])
    views = [(r, [evidence_view(e) for e in r.evidence]) for r in report.clauses]
    clauses = [{"result": r, "evidence": evidence} for r, evidence in views]
    texts = clause_texts()
    findings = [
        {
            "result": r,
            "evidence": evidence,
            "text": texts.get(r.id),
            "decisive": _decisive(evidence),
        }
        for r, evidence in views
        if r.verdict in (Verdict.FAIL, Verdict.ERROR)
    ]
    report_id, digest = report_identity(report)
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            verdict=report.verdict.value,
            counts=report.counts,
            summary=summary,
            chapters=chapters,
            verdicts=[v.value for v in Verdict],
            clauses=clauses,
            unimplemented=report.unimplemented_must(),
            unassessed=report.unassessed_must(),
            target=dict(report.target),
            findings=findings,
            report_id=report_id,
            digest=digest,
            headline_zh=headline_zh(report),
            load=_with_thresholds(
                load_views(report.load), report.load.get("scenarios") or {}, report.profile
            ),
            script=script,
            policy=policy,
        )
    )


def write_html(report: RunReport, path: Path) -> Path:
    """Writes report.html of ``report`` to ``path``."""
    path.write_text(render_html(report), encoding="utf-8")
    return path


def html_from_json(source: Path, out: Path | None = None) -> Path:
    """Writes report.html of the report.json at ``source`` (beside it unless ``out``).

    Raises ``ReportFileError`` (one line) when ``source`` is not a readable report.
    """
    return write_html(read_report(source), out or source.with_name("report.html"))
