"""Tester-side TLS probes for ATS-SEC-01 and ATS-SEC-06.

A probe opens its own TCP connection to the node and performs one TLS handshake with a client
context pinned to the versions it wants to try. Old versions (TLS 1.0, 1.1) are offered with
OpenSSL's security level 0, so that the local OpenSSL's defaults do not refuse them on the
client side and the verdict reflects the server. When the local OpenSSL cannot offer a version
at all, the probe says so (``offered`` is False): the tester cannot decide, never a pass.
"""

from __future__ import annotations

import socket
import ssl
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from conformance.target import NodeSpec

__all__ = [
    "TLS_VERSIONS",
    "Handshake",
    "client_offers",
    "plain_http_url",
    "probe_certificate",
    "probe_version",
    "tls_version",
]

# The names the profile uses (ssl.TLSVersion member names) and the names OpenSSL reports.
TLS_VERSIONS: dict[str, str] = {
    "TLSv1": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}
_ENUM_NAMES = {"TLSv1": "TLSv1", "TLSv1.1": "TLSv1_1", "TLSv1.2": "TLSv1_2", "TLSv1.3": "TLSv1_3"}


@dataclass(frozen=True)
class Handshake:
    """The outcome of one TLS handshake attempt.

    ``offered`` is False when the local OpenSSL could not offer the version (nothing was
    decided); ``accepted`` is True when the handshake completed; ``version`` is the negotiated
    protocol (``"TLSv1.2"``) and ``detail`` a one-line description of what happened.
    """

    offered: bool
    accepted: bool
    version: str | None
    detail: str


def tls_version(name: str) -> ssl.TLSVersion:
    """The ``ssl.TLSVersion`` of a profile name such as ``TLSv1.2``; unknown names raise."""
    try:
        return ssl.TLSVersion[_ENUM_NAMES[name]]
    except KeyError:
        raise ValueError(
            f"unknown TLS version {name!r}; valid: {', '.join(TLS_VERSIONS)}"
        ) from None


def _pinned_context(name: str) -> ssl.SSLContext:
    """A client context offering exactly the version ``name``, certificate not verified."""
    version = tls_version(name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # TLS 1.0 and 1.1 are deprecated in Python; offering them is the point of the probe.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        # Security level 0: the local OpenSSL's own policy must not refuse the old version.
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def client_offers(name: str) -> str | None:
    """None when the local OpenSSL can send a ClientHello for ``name``, else why it cannot.

    The handshake runs against memory buffers: a ClientHello is produced (or refused) without
    any network traffic.
    """
    try:
        context = _pinned_context(name)
        client = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
        client.do_handshake()
    except ssl.SSLWantReadError:
        return None
    except (ssl.SSLError, ValueError) as exc:
        return f"the tester's OpenSSL ({ssl.OPENSSL_VERSION}) cannot offer {name}: {exc}"
    return None


def probe_version(host: str, port: int, name: str, *, timeout_s: float) -> Handshake:
    """One handshake with ``host:port`` offering only TLS version ``name``."""
    why_not = client_offers(name)
    if why_not is not None:
        return Handshake(False, False, None, why_not)
    context = _pinned_context(name)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            return Handshake(True, True, tls.version(), f"{name} handshake completed")
    except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
        # The ClientHello could be produced (checked above): a failure now is the node's answer.
        return Handshake(True, False, None, f"{name} refused by the node: {_short(exc)}")
    except OSError as exc:
        raise ConnectionError(f"cannot connect to {host}:{port}: {_short(exc)}") from None


def probe_certificate(
    host: str, port: int, *, ca_bundle: str | None, timeout_s: float
) -> Handshake:
    """A default, verifying handshake: chain to ``ca_bundle`` (else the system's CAs) and host
    name checked, the best version both sides support negotiated."""
    context = ssl.create_default_context(cafile=ca_bundle)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            return Handshake(True, True, tls.version(), "certificate verified for " + host)
    except ssl.SSLCertVerificationError as exc:
        return Handshake(True, False, None, f"certificate not valid: {exc.verify_message}")
    except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
        return Handshake(True, False, None, f"TLS handshake failed: {_short(exc)}")
    except OSError as exc:
        raise ConnectionError(f"cannot connect to {host}:{port}: {_short(exc)}") from None


def plain_http_url(node: NodeSpec) -> str:
    """The node's plain-HTTP address (ATS-SEC-06): ``http_url``, else ``base_url`` with the
    ``http`` scheme on the same host and port."""
    if node.http_url:
        return node.http_url
    parts = urlsplit(node.base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    netloc = f"{parts.hostname}:{port}"
    if parts.hostname and ":" in parts.hostname:
        netloc = f"[{parts.hostname}]:{port}"
    return urlunsplit(("http", netloc, parts.path, "", ""))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
