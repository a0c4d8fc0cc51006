"""Request signatures of ATS-1.0 chapter 3: canonical string, HMAC-SM3 and HMAC-SHA256.

Both sides use this module: the harness signs its requests with it and the reference node
verifies them with it. ``SigningAuth`` signs the requests of any ``requests`` or ``httpx``
client (a client generated from the bundled OpenAPI description included) over the exact
target and body they transmit. SM3 (GM/T 0004, GB/T 32905) comes from ``hashlib`` where the OpenSSL
build provides it, else from the ``cryptography`` package, which brings its own OpenSSL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

import httpx
import requests

__all__ = [
    "DEFAULT_SIGNATURE_METHOD",
    "SIGNATURE_METHODS",
    "SignatureMethodError",
    "SigningAuth",
    "body_digest",
    "canonical_query",
    "canonical_string",
    "new_nonce",
    "sign_headers",
    "signature",
    "sm3_backend",
    "verify",
]

SIGNATURE_METHODS = ("HMAC-SM3", "HMAC-SHA256")

# ATS §3: the method used when X-Signature-Method is absent.
DEFAULT_SIGNATURE_METHOD = "HMAC-SM3"

# ATS §3 canonical query: every byte outside A-Z a-z 0-9 - . _ ~ is written as %XX.
_UNRESERVED = frozenset((string.ascii_letters + string.digits + "-._~").encode("ascii"))
_NONCE_ALPHABET = string.ascii_letters + string.digits
_NONCE_LENGTH = 32


class SignatureMethodError(ValueError):
    """A signature method is not one of ``SIGNATURE_METHODS``."""


@dataclass(frozen=True)
class _Sm3Backend:
    """An SM3 implementation: a name, a plain digest and an HMAC, both as lower-case hex."""

    name: str
    digest: Callable[[bytes], str]
    hmac: Callable[[bytes, bytes], str]


def _hashlib_sm3() -> _Sm3Backend | None:
    try:
        hashlib.new("sm3", b"")
    except ValueError:
        return None
    return _Sm3Backend(
        name="hashlib",
        digest=lambda data: hashlib.new("sm3", data).hexdigest(),
        hmac=lambda key, msg: hmac.new(key, msg, "sm3").hexdigest(),
    )


def _cryptography_sm3() -> _Sm3Backend:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import hmac as crypto_hmac

    def digest(data: bytes) -> str:
        hasher = hashes.Hash(hashes.SM3())
        hasher.update(data)
        return hasher.finalize().hex()

    def keyed(key: bytes, msg: bytes) -> str:
        mac = crypto_hmac.HMAC(key, hashes.SM3())
        mac.update(msg)
        return mac.finalize().hex()

    return _Sm3Backend(name="cryptography", digest=digest, hmac=keyed)


def _available_backends() -> dict[str, _Sm3Backend]:
    found = {"cryptography": _cryptography_sm3()}
    from_hashlib = _hashlib_sm3()
    if from_hashlib is not None:
        found["hashlib"] = from_hashlib
    return found


def _preferred_backend(backends: dict[str, _Sm3Backend]) -> _Sm3Backend:
    """The SM3 implementation to use: hashlib's where OpenSSL has SM3, else cryptography's."""
    return backends.get("hashlib", backends["cryptography"])


_BACKENDS = _available_backends()
_sm3 = _preferred_backend(_BACKENDS)


def _select_backend(name: str) -> None:
    """The SM3 implementation named ``name`` is the one in use from now on (for tests)."""
    global _sm3
    if name not in _BACKENDS:
        available = ", ".join(sorted(_BACKENDS))
        raise ValueError(f"SM3 backend {name!r} is not available here; available: {available}")
    _sm3 = _BACKENDS[name]


def sm3_backend() -> str:
    """The SM3 implementation in use: ``"hashlib"`` or ``"cryptography"``."""
    return _sm3.name


def _check_method(signature_method: str) -> None:
    if signature_method not in SIGNATURE_METHODS:
        raise SignatureMethodError(
            f"signature method {signature_method!r} is not one of {', '.join(SIGNATURE_METHODS)}"
        )


def _utf8(text: str) -> bytes:
    # A server that received raw bytes may hand them over decoded with surrogateescape; those
    # bytes come back unchanged. Other lone surrogates cannot come from HTTP; they are still
    # encoded, character by character (surrogatepass), so that a verifier never raises.
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b"".join(_utf8_char(char) for char in text)


def _utf8_char(char: str) -> bytes:
    try:
        return char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return char.encode("utf-8", "surrogatepass")


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def body_digest(body: bytes, signature_method: str) -> str:
    """The lower-case hex SM3 (HMAC-SM3) or SHA-256 (HMAC-SHA256) digest of the body bytes."""
    _check_method(signature_method)
    if signature_method == "HMAC-SM3":
        return _sm3.digest(body)
    return hashlib.sha256(body).hexdigest()


def _percent_encode(raw: bytes) -> str:
    return "".join(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in raw)


def canonical_query(raw_query: str | bytes) -> str:
    """The canonical query of ATS §3 for a raw query, as transmitted, without the ``?``.

    Pieces split on ``&``, empty pieces dropped, each split at its first ``=`` (no ``=``: the
    value is empty), name and value percent-decoded to bytes (``+`` stays a plus), every byte
    outside ``A-Z a-z 0-9 - . _ ~`` written ``%XX`` in upper case, pairs sorted by encoded name
    then encoded value, joined ``name=value`` with ``&``.

    A ``%`` not followed by two hex digits is a literal ``%`` (it becomes ``%25``), and decoded
    bytes that are not valid UTF-8 are re-encoded byte for byte: the result is defined for any
    input and never raises.
    """
    raw = raw_query if isinstance(raw_query, bytes) else _utf8(raw_query)
    pairs = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        pairs.append(
            (_percent_encode(unquote_to_bytes(name)), _percent_encode(unquote_to_bytes(value)))
        )
    # The encoded forms are ASCII, so comparing str is comparing bytes.
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_string(
    *,
    method: str,
    path: str | bytes,
    query: str | bytes,
    app_id: str,
    timestamp: str | int,
    nonce: str,
    body: bytes,
    signature_method: str,
) -> str:
    """The seven-line canonical string of ATS §3 that the signature covers.

    ``path`` and ``query`` are the raw request target split at its first ``?``, exactly as
    transmitted (bytes are taken as they are; ``query`` is empty when there is none).
    """
    lines = (
        method.upper(),
        _text(path),
        canonical_query(query),
        app_id,
        str(timestamp),
        nonce,
        body_digest(body, signature_method),
    )
    return "\n".join(lines)


def signature(secret: str, canonical: str, signature_method: str) -> str:
    """The lower-case hex HMAC of the canonical string, keyed with the UTF-8 bytes of the secret."""
    _check_method(signature_method)
    key, msg = _utf8(secret), _utf8(canonical)
    if signature_method == "HMAC-SM3":
        return _sm3.hmac(key, msg)
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def verify(secret: str, canonical: str, presented: str, signature_method: str) -> bool:
    """The presented signature matches, hex compared case-insensitively in constant time."""
    expected = signature(secret, canonical, signature_method).encode("ascii")
    # Non-ASCII characters become "?", which is never a hex digit, so they never match.
    return hmac.compare_digest(expected, presented.lower().encode("ascii", "replace"))


def new_nonce() -> str:
    """A fresh random nonce: 32 characters from ``[A-Za-z0-9]`` (ATS §3 allows 16 to 64)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(_NONCE_LENGTH))


def sign_headers(
    *,
    method: str,
    target: str | bytes,
    body: bytes,
    app_id: str,
    secret: str,
    signature_method: str = DEFAULT_SIGNATURE_METHOD,
    timestamp: str | int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The five ``X-`` signature headers of ATS §3 for a request target ``path[?query]``.

    A fresh epoch-millisecond timestamp and a fresh nonce are used unless given.
    """
    raw_target = _text(target)
    path, _, query = raw_target.partition("?")
    stamp = str(time.time_ns() // 1_000_000) if timestamp is None else str(timestamp)
    once = new_nonce() if nonce is None else nonce
    canonical = canonical_string(
        method=method,
        path=path,
        query=query,
        app_id=app_id,
        timestamp=stamp,
        nonce=once,
        body=body,
        signature_method=signature_method,
    )
    return {
        "X-App-Id": app_id,
        "X-Timestamp": stamp,
        "X-Nonce": once,
        "X-Signature-Method": signature_method,
        "X-Signature": signature(secret, canonical, signature_method),
    }


@dataclass(frozen=True)
class SigningAuth(requests.auth.AuthBase, httpx.Auth):
    """The ATS §3 signature of one app, as an auth object for ``requests`` and ``httpx``.

    It signs each request at send time over what goes on the wire: the path and query of the
    request target exactly as the client encoded them, and the body bytes. With ``placeholder``
    set, only requests whose ``X-Signature`` header holds that value are signed — a fuzzer can
    then send some requests unsigned on purpose and have the others signed for real.

    ``requests.Session(auth=SigningAuth(...))`` or ``httpx.Client(auth=SigningAuth(...))``.
    """

    app_id: str
    secret: str = field(repr=False)
    signature_method: str = DEFAULT_SIGNATURE_METHOD
    placeholder: str | None = None

    # httpx: the body must be read before the flow runs, so that it can be digested.
    requires_request_body = True

    def _headers(
        self, method: str, target: bytes, body: bytes, named: str | None
    ) -> dict[str, str]:
        # A request that names its signature method is signed with it; one that names a method
        # ATS does not define keeps that name, and the node refuses it (ATS §3).
        chosen = named if named in SIGNATURE_METHODS else self.signature_method
        headers = sign_headers(
            method=method,
            target=target,
            body=body,
            app_id=self.app_id,
            secret=self.secret,
            signature_method=chosen,
        )
        if named is not None:
            headers["X-Signature-Method"] = named
        return headers

    def _wanted(self, present: str | None) -> bool:
        return self.placeholder is None or present == self.placeholder

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """``requests``: the prepared request, signed over its path_url and body."""
        if not self._wanted(request.headers.get("X-Signature")):
            return request
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes):
            raise TypeError("a streamed body cannot be signed: pass the body as bytes")
        method = request.method or "GET"
        named = request.headers.get("X-Signature-Method")
        target = request.path_url.encode("utf-8")
        request.headers.update(self._headers(method, target, body, named))
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """``httpx``: the request, signed over its raw path and query and its content."""
        if self._wanted(request.headers.get("X-Signature")):
            named = request.headers.get("X-Signature-Method")
            target = request.url.raw_path
            request.headers.update(self._headers(request.method, target, request.content, named))
        yield request
