"""Preflight: the first stage of every run, telling the tester's mistakes from the node's.

Before any clause is judged, the preflight checks what the run stands on, one line per item:
the address resolves and answers; TLS (the scheme matches the server, the protocol, the chain
against the target's ``ca_bundle``, the host name, the expiry with days left); health; the
offset of the node's clock; each app of the target file signs a request its role may make and is
accepted; each named resource exists with the share type its name says; the emulated
neighbours' listen addresses are free on the tester's side.

An item is ``ok``, a ``note`` (worth knowing, judged by the clauses), a ``refused`` app (the
clauses that need it are ERROR naming it, never FAIL) or ``stop``: the run would be meaningless
and stops there, verdict INCOMPLETE, exit status 2. Stopping items are all on the tester's side
or make every judgement void: nothing answers at the address, a TLS problem of the tester (a CA
bundle the certificate does not chain to; ``https://`` to a plain-HTTP server or the reverse),
a ``base_url`` already ending in ``/api/v1``, or every app refused. A server that answers but
not as an ATS node is judged, not stopped.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from conformance.client import EvidenceLog, NodeClient
from conformance.outcomes import Inconclusive
from conformance.target import Target

# ATS-AUTH-04: a timestamp more than 300 s from the node's clock is refused.
_CLOCK_LIMIT_S = 300.0
_CLOCK_NOTE_S = 30.0
_EXPIRY_NOTE_DAYS = 14
# OpenSSL verification results that say the chain does not reach the given CA bundle.
_UNTRUSTED = {2, 19, 20, 21}  # unable to get issuer, self-signed in chain, local issuer, leaf
_EXPIRED = 10
_HOSTNAME = 62
# The share type each named resource of the target file must have (ATS §4 ``share.type``).
_SHARE_TYPES: Mapping[str, tuple[str, ...]] = {
    "unconditional": ("UNCONDITIONAL",),
    "conditional": ("CONDITIONAL",),
    "not_shared": ("NOT_SHARED",),
    "population": ("UNCONDITIONAL", "CONDITIONAL"),
}
# A request each app's role may make (ATS §3 role table): the admin app reads the statistics,
# which only a provider-admin may; the others read the node descriptor.
_ROLE_PROBE = {"admin": "/api/v1/stats"}
_DEFAULT_PROBE = "/api/v1/node"


class Status(StrEnum):
    """How one preflight item came out."""

    OK = "ok"
    NOTE = "note"  # worth knowing; the clauses judge it
    REFUSED = "refused"  # an app the node refused: clauses that need it are ERROR
    STOP = "stop"  # the run stops here: INCOMPLETE, exit status 2


@dataclass(frozen=True)
class Item:
    """One preflight item: what was checked, how it came out, and a line saying why."""

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        """The item as the terminal and the reports show it."""
        return f"preflight {self.name:<26} {self.status.value:<7} {self.detail}"

    def to_dict(self) -> dict[str, str]:
        """The item as report.json's ``preflight`` member lists it."""
        return {"item": self.name, "status": self.status.value, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Item:
        """The item read back from report.json."""
        return cls(str(data["item"]), Status(data["status"]), str(data["detail"]))


@dataclass
class Preflight:
    """The preflight of one run: its items, in order, and the apps the node refused."""

    items: list[Item] = field(default_factory=list)
    # App name (``consumer`` …) → why the clauses that sign with it cannot be judged.
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def stop(self) -> Item | None:
        """The item that stopped the run, if any."""
        return next((i for i in self.items if i.status is Status.STOP), None)

    def add(self, name: str, status: Status, detail: str) -> Item:
        item = Item(name, status, detail)
        self.items.append(item)
        return item


def run_preflight(
    target: Target, *, neighbours_serving: bool = False, judging_auth: bool = False
) -> Preflight:
    """The preflight of ``target``; never raises for anything the node or network does.

    ``neighbours_serving``: the emulated neighbours already listen (started by the runner), so
    their addresses are taken by the suite itself, not by someone else. ``judging_auth``: the
    run judges chapter AUTH only (``--only AUTH``), so a refused app is the node's to answer for
    there: a note, neither a refusal nor a stop.
    """
    result = Preflight()
    client = NodeClient(target, EvidenceLog(target.secrets()))
    try:
        _steps(target, client, result, neighbours_serving)
        if judging_auth and result.refused:
            result.items = [
                Item(i.name, Status.NOTE, f"{i.detail} (chapter AUTH judges it)")
                if i.status in (Status.REFUSED, Status.STOP) and i.name.startswith("app")
                else i
                for i in result.items
            ]
            result.refused.clear()
    finally:
        client.close()
    return result


def _steps(target: Target, client: NodeClient, result: Preflight, serving: bool) -> None:
    node = target.node
    parts = urlsplit(node.base_url)
    if parts.path.rstrip("/").endswith("/api/v1"):
        fixed = node.base_url[: node.base_url.rstrip("/").rfind("/api/v1")]
        result.add(
            "base_url",
            Status.STOP,
            f"{node.base_url} already ends in /api/v1, which the suite adds to every path; "
            f"did you mean {fixed or parts.scheme + '://' + parts.netloc}?",
        )
        return
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not _connect(result, host, port, target.timeouts.connect_s):
        return
    if not _scheme(result, node.base_url, host, port, target.timeouts.read_s):
        return
    if node.is_https and not _tls(result, host, port, node.ca_bundle, target.timeouts.read_s):
        return
    _health(result, client)
    _apps(result, target, client)
    if result.stop is not None:
        return
    _resources(result, target, client)
    _neighbours(result, target, serving)


def _connect(result: Preflight, host: str, port: int, timeout_s: float) -> bool:
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        result.add("resolve", Status.STOP, f"{host} does not resolve: {exc.strerror}")
        return False
    shown = sorted({str(a[4][0]) for a in addresses})
    result.add("resolve", Status.OK, f"{host} → {', '.join(shown[:3])}")
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        why = "connection refused" if isinstance(exc, ConnectionRefusedError) else _why(exc)
        result.add(
            "connect", Status.STOP, f"nothing answers at {host}:{port} ({why}): is the node up?"
        )
        return False
    ms = (time.monotonic() - started) * 1000
    result.add("connect", Status.OK, f"{host}:{port} accepts connections ({ms:.0f} ms)")
    return True


def _speaks_tls(host: str, port: int, timeout_s: float) -> bool | None:
    """Whether the server at ``host:port`` completes a TLS handshake (certificate unchecked);
    None when it gave no clear answer either way."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except ssl.SSLError:
        return False
    except OSError:
        return None


def _first_bytes(host: str, port: int, timeout_s: float) -> bytes | None:
    """The first bytes the server at ``host:port`` sends back to a plain-HTTP health request;
    None when it sends nothing within ``timeout_s``."""
    request = f"GET /api/v1/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(request.encode("ascii"))
            return sock.recv(16) or None
    except OSError:
        return None


def _scheme(result: Preflight, base_url: str, host: str, port: int, timeout_s: float) -> bool:
    tls = _speaks_tls(host, port, timeout_s)
    https = base_url.lower().startswith("https://")
    first = None if tls else _first_bytes(host, port, timeout_s)
    if not https and first is None and tls is not True:
        result.add(
            "answer",
            Status.STOP,
            f"{host}:{port} accepts connections but nothing answers an HTTP request within "
            f"{timeout_s:g} s: is the node up behind it?",
        )
        return False
    if https and tls is not True and first is not None and first.startswith(b"HTTP/"):
        plain = "http://" + base_url[len("https://") :]
        result.add(
            "scheme",
            Status.STOP,
            f"{base_url} is https://, but the server speaks plain HTTP there: "
            f"did you mean {plain}?",
        )
        return False
    if not https and tls is True:
        secure = "https://" + base_url[len("http://") :]
        result.add(
            "scheme",
            Status.STOP,
            f"{base_url} is http://, but the server speaks TLS there: did you mean {secure}?",
        )
        return False
    result.add("scheme", Status.OK, f"{'HTTPS' if https else 'plain HTTP'}, as the server speaks")
    return True


def _tls(result: Preflight, host: str, port: int, ca: str | None, timeout_s: float) -> bool:
    bundle = ca or "the system's CA certificates"
    context = ssl.create_default_context(cafile=ca)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host) as conn,
        ):
            version = conn.version() or "?"
    except ssl.SSLCertVerificationError as exc:
        code = exc.verify_code
        if code in _UNTRUSTED:
            result.add(
                "tls chain",
                Status.STOP,
                f"the certificate does not chain to {bundle} ({exc.verify_message}): give the "
                "CA that issued it as node.ca_bundle in the target file",
            )
            return False
        # The host name or the validity is the node's to get right: ATS-SEC-01 judges it.
        result.add("tls certificate", Status.NOTE, f"not valid: {exc.verify_message}")
        _expiry(result, host, port, timeout_s)
        return True
    except ssl.SSLError as exc:
        result.add("tls handshake", Status.NOTE, f"failed: {_why(exc)} (ATS-SEC-01 judges it)")
        return True
    except OSError as exc:
        result.add("tls handshake", Status.STOP, f"{host}:{port}: {_why(exc)}")
        return False
    result.add("tls protocol", Status.OK, f"{version} negotiated")
    result.add("tls chain", Status.OK, f"the certificate chains to {bundle}")
    result.add("tls host name", Status.OK, f"the certificate names {host}")
    _expiry(result, host, port, timeout_s)
    return True


def _expiry(result: Preflight, host: str, port: int, timeout_s: float) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host) as conn,
        ):
            der = conn.getpeercert(binary_form=True)
        certificate = x509.load_der_x509_certificate(der or b"")
    except (OSError, ValueError) as exc:
        result.add("tls expiry", Status.NOTE, f"certificate unreadable: {_why(exc)}")
        return
    ends = certificate.not_valid_after_utc
    days = (ends - datetime.now(UTC)).days
    status = Status.OK if days >= _EXPIRY_NOTE_DAYS else Status.NOTE
    if days < 0:
        text = f"expired on {ends:%Y-%m-%d} ({-days} days ago)"
    else:
        text = f"valid until {ends:%Y-%m-%d} ({days} days left)"
    result.add("tls expiry", status, text)


def _health(result: Preflight, client: NodeClient) -> None:
    try:
        ex = client.get("/api/v1/health", app=None, pace=False)
    except Inconclusive as exc:
        result.add("health", Status.NOTE, exc.reason)
        return
    body = _json(ex.body)
    if ex.status == 200 and isinstance(body, dict) and "status" in body:
        result.add("health", Status.OK, f"{ex.summary()} {body.get('status')}")
    else:
        # Answers, but not as an ATS node: the clauses judge it (NOT_CERTIFIED), no stop.
        result.add("health", Status.NOTE, f"{ex.summary()}: not an ATS health answer")
    date = ex.headers.get("Date")
    if not date:
        result.add("clock", Status.NOTE, "the answer has no Date header: offset unknown")
        return
    try:
        offset = (parsedate_to_datetime(date) - datetime.now(UTC)).total_seconds()
    except (TypeError, ValueError):
        result.add("clock", Status.NOTE, f"Date header unreadable: {date!r}")
        return
    status = Status.OK if abs(offset) <= _CLOCK_NOTE_S else Status.NOTE
    text = f"node clock {offset:+.0f} s from the tester's"
    if abs(offset) > _CLOCK_LIMIT_S:
        text += " — beyond 300 s, every signed request will be refused (ATS-AUTH-04)"
    result.add("clock", status, text)


def _apps(result: Preflight, target: Target, client: NodeClient) -> None:
    accepted = 0
    for name, cred in target.apps.items():
        path = _ROLE_PROBE.get(name, _DEFAULT_PROBE)
        try:
            ex = client.get(path, app=name, pace=False)
        except Inconclusive as exc:
            result.add(f"app {name}", Status.NOTE, f"{cred.app_id}: {exc.reason}")
            continue
        if ex.status == 401:
            why = (
                f"{cred.app_id}: GET {path} signed with its secret answered {ex.summary()}: "
                "its secret in the target file does not match the node's"
            )
            answer = f"{ex.status} {ex.error_code or ''}".rstrip()
            result.refused[name] = (
                f"the node refused app {name} ({cred.app_id}) at preflight ({answer}): its "
                "secret in the target file does not match the node's, or the node's signature "
                "check departs from ATS §3; this clause signs with it"
            )
            result.add(f"app {name}", Status.REFUSED, why)
            continue
        accepted += 1
        if ex.status == 403:
            result.add(
                f"app {name}",
                Status.NOTE,
                f"{cred.app_id}: GET {path} answered 403: is the app registered with the role "
                "the target file gives it?",
            )
        else:
            result.add(f"app {name}", Status.OK, f"{cred.app_id}: GET {path} → {ex.status}")
    if accepted == 0 and result.refused:
        result.add(
            "apps",
            Status.STOP,
            "the node refused every app: either the secrets in the target file are wrong, or "
            "the node's signature check departs from ATS §3; to judge chapter AUTH anyway, run "
            "`conformance run --target FILE --only AUTH`",
        )


def _resources(result: Preflight, target: Target, client: NodeClient) -> None:
    app = next((a for a in ("consumer", "consumer_b", "admin") if a not in result.refused), None)
    if app is None:
        return
    for role, code in target.resources.items():
        name = f"resource {role}"
        try:
            ex = client.get(f"/api/v1/catalog/resources/{code}", app=app)
        except Inconclusive as exc:
            result.add(name, Status.NOTE, f"{code}: {exc.reason}")
            continue
        body = _json(ex.body)
        if ex.status != 200 or not isinstance(body, dict):
            result.add(name, Status.NOTE, f"{code}: {ex.summary()}: not in the node's catalog")
            continue
        share = body.get("share")
        kind = share.get("type") if isinstance(share, dict) else None
        wanted = _SHARE_TYPES.get(role, ())
        if wanted and kind not in wanted:
            result.add(
                name,
                Status.NOTE,
                f"{code}: share type {kind}, expected {' or '.join(wanted)} for resources.{role}",
            )
        else:
            result.add(name, Status.OK, f"{code}: share type {kind}")


def _neighbours(result: Preflight, target: Target, serving: bool) -> None:
    if target.neighbours is None:
        return
    for spec in target.neighbours.emulated().specs():
        name = f"neighbour {spec.role} {spec.node_id}"
        if serving:
            result.add(name, Status.OK, f"emulated at {spec.listen}")
            continue
        try:
            with socket.socket(_family(spec.host), socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((spec.host, spec.port))
        except OSError as exc:
            result.add(
                name,
                Status.NOTE,
                f"{spec.listen} is not free on the tester's side ({_why(exc)}): the clauses "
                "that need this neighbour will be ERROR",
            )
            continue
        result.add(name, Status.OK, f"{spec.listen} is free for the emulated {spec.role}")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _why(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    text = " ".join(str(text).split())
    return f"{type(exc).__name__}: {text}" if len(text) <= 160 else text[:157] + "..."
