"""The certificate: one bilingual page the authority issues for a signed, certified run.

Issued only for a bundle that verifies with the authority's public key and whose run is
CERTIFIED or CERTIFIED_WITH_FINDINGS, complete (no ``--only``), not a lab run, and judged
against a packaged profile exactly as this suite holds it (a rehearsal or hand-made profile
tunes the thresholds and load windows: it is never a certification); every other bundle is
refused with one line. The page is self-contained HTML (no script, nothing fetched);
where headless Chromium is installed it is also printed to PDF. ``certificate.json`` beside it
holds the same facts for the register.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jinja2

from conformance import __version__
from conformance.authority.bundle import Check, verify_bundle
from conformance.authority.keys import VerifyingKey, sm3_hex
from conformance.profile import load_profile, profile_names
from conformance.report.model import RunReport

CERTIFYING = ("CERTIFIED", "CERTIFIED_WITH_FINDINGS")
VALIDITY_DAYS = 365
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_PDF_TIMEOUT_S = 60
_TEMPLATES = Path(__file__).with_name("templates")


class CertificateRefused(Exception):
    """No certificate for this bundle; the message is the one line that says why."""


@dataclass(frozen=True)
class Certificate:
    """What a certificate states; every field is printed on the page."""

    number: str
    node_id: str
    node_name: str
    level: str
    operator: str
    standard: str
    profile: str
    profile_digest: str
    verdict: str
    run_finished_at: str
    issued_on: str
    valid_until: str
    bundle_file: str
    bundle_sm3: str
    report_sm3: str
    signer: str
    suite_version: str
    verify_command: str

    def to_dict(self) -> dict[str, Any]:
        """certificate.json."""
        return asdict(self)


def _request(target: dict[str, Any], name: str) -> str:
    # The certification request block of the target file (optional): operator organisation etc.
    request = target.get("request") or {}
    return str(request.get(name) or "") if isinstance(request, dict) else ""


def _refuse_unpackaged_profile(bundle: Path, report: RunReport, stated: str) -> None:
    # A certificate states the plan of the standard's profile for the node's level; a
    # rehearsal profile (short load windows) or an edited one is the same name with another
    # plan, so the digest of the plan decides, not the name.
    if report.profile in profile_names():
        packaged = load_profile(report.profile).digest()
        if report.profile_digest == packaged:
            return
        why = (
            f"profile {report.profile} with digest {report.profile_digest[:12] or 'none'}, not "
            f"the packaged {report.profile} ({packaged[:12]}, suite {__version__})"
        )
    else:
        why = f"profile {report.profile} is not a packaged profile ({', '.join(profile_names())})"
    raise CertificateRefused(
        f"{bundle}: {why}: a rehearsal or custom profile, {stated}: never a certificate"
    )


def certificate_for(
    bundle: Path,
    pubkey: VerifyingKey,
    *,
    issued_on: date,
    validity_days: int = VALIDITY_DAYS,
    number: str | None = None,
    operator: str | None = None,
    node_name: str | None = None,
) -> Certificate:
    """The certificate of ``bundle``; raises ``CertificateRefused`` with one line."""
    checked = verify_bundle(bundle, pubkey)
    if checked.state is not Check.VERIFIED:
        raise CertificateRefused(
            f"{bundle}: not what the authority signed ({'; '.join(checked.lines)})"
        )
    try:
        document = json.loads(checked.members["report.json"].decode("utf-8"))
        report = RunReport.from_dict(document)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CertificateRefused(
            f"{bundle}: report.json is not a complete report ({exc})"
        ) from None
    stated = str(document.get("verdict"))
    if report.partial or report.lab:
        scope = "partial run (" + (", ".join(report.selection) or "selected clauses") + ")"
        what = scope if report.partial else "lab run (plain HTTP)"
        raise CertificateRefused(f"{bundle}: {what}, {stated}: never a certificate")
    if stated not in CERTIFYING:
        raise CertificateRefused(
            f"{bundle}: the run is {stated}: a certificate is issued for "
            f"{' or '.join(CERTIFYING)} only"
        )
    if report.verdict.value != stated:
        raise CertificateRefused(
            f"{bundle}: report.json states {stated}, its clauses give {report.verdict.value}"
        )
    _refuse_unpackaged_profile(bundle, report, stated)
    signer = str(report.waivers.get("signer") or "") if report.waivers else ""
    if report.waivers and any(r.waived for r in report.clauses) and signer != pubkey.fingerprint:
        raise CertificateRefused(f"{bundle}: its waivers were not signed by this authority key")
    if validity_days < 1:
        raise CertificateRefused(f"validity: at least one day, got {validity_days}")
    target = dict(report.target)
    node_id = str(target.get("node_id", ""))
    bundle_sm3 = sm3_hex(bundle.read_bytes())
    integrity = document.get("integrity") or {}
    return Certificate(
        number=number or f"ATS-{node_id}-{issued_on:%Y%m%d}-{bundle_sm3[:8].upper()}",
        node_id=node_id,
        node_name=node_name or _request(target, "node_name") or str(target.get("name") or ""),
        level=str(target.get("level", "")),
        operator=operator or _request(target, "operator"),
        standard=report.standard,
        profile=report.profile,
        profile_digest=report.profile_digest,
        verdict=stated,
        run_finished_at=report.finished_at,
        issued_on=issued_on.isoformat(),
        valid_until=(issued_on + timedelta(days=validity_days)).isoformat(),
        bundle_file=bundle.name,
        bundle_sm3=bundle_sm3,
        report_sm3=str(integrity.get("digest", "")),
        signer=pubkey.fingerprint,
        suite_version=report.suite_version,
        verify_command=f"conformance report verify {bundle.name} --pubkey authority.pub.pem",
    )


def render_certificate(certificate: Certificate) -> str:
    """The certificate as one self-contained HTML page."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("certificate.html.j2").render(c=certificate)


def find_browser() -> str | None:
    """A headless Chromium on PATH, or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def chinese_font_missing() -> str | None:
    """Why a PDF printed here would show boxes for the Chinese half of the page, or None.

    Chromium embeds the fonts of the machine that prints; without one covering Chinese the
    certificate's headline, labels and verdict print as empty boxes. fontconfig decides; a
    machine without ``fc-list`` cannot tell, and prints."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    done = subprocess.run(
        [fc_list, ":lang=zh", "family"],
        capture_output=True, text=True, timeout=_PDF_TIMEOUT_S,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if done.returncode != 0 or done.stdout.strip():
        return None
    return (
        "no font for Chinese is installed (fc-list :lang=zh lists none): the PDF would print "
        "boxes; install one (e.g. fonts-noto-cjk) and issue again"
    )


def print_pdf(page: Path, pdf: Path, browser: str) -> Path:
    """``page`` printed to ``pdf`` by headless Chromium; raises ``OSError`` if it could not."""
    with tempfile.TemporaryDirectory(prefix="ats-chromium-") as profile:
        done = subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--no-first-run",
                f"--user-data-dir={profile}", "--no-pdf-header-footer",
                f"--print-to-pdf={pdf}", page.resolve().as_uri(),
            ],
            capture_output=True, text=True, timeout=_PDF_TIMEOUT_S,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    if done.returncode != 0 or not pdf.is_file():
        raise OSError(f"headless Chromium could not print {page}: exit {done.returncode}")
    return pdf


def write_certificate(certificate: Certificate, folder: Path) -> dict[str, Path]:
    """certificate.html and certificate.json in ``folder``; answers their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "certificate.html"
    page.write_text(render_certificate(certificate), encoding="utf-8")
    facts = folder / "certificate.json"
    facts.write_text(
        json.dumps(certificate.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return {"certificate.html": page, "certificate.json": facts}


def read_certificate(path: Path) -> Certificate:
    """The certificate.json at ``path``; raises ``CertificateRefused`` with one line."""
    try:
        return Certificate(**json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise CertificateRefused(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise CertificateRefused(f"{path}: not a certificate.json ({exc})") from None
