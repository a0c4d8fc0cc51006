"""The authority's key pair: SM2 with SM3 (GB/T 32918, GM/T 0009), and detached signatures.

The private key is PKCS#8 PEM encrypted with a passphrase; the public key is a
SubjectPublicKeyInfo PEM that anyone may hold. A signature is SM2 over SM3 with the GM/T 0009
default distinguishing identifier ``1234567812345678``, DER encoded, so OpenSSL 3 checks it too:
``openssl pkeyutl -verify -pubin -inkey PUB -rawin -digest sm3 -pkeyopt distid:1234567812345678``.

SM2 comes from tongsuopy (bindings to Tongsuo, the OpenAtom fork of OpenSSL): its nonces come
from the library's CSPRNG, its keys are standard PEM, and its signatures interoperate with OpenSSL.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.signing import body_digest

ALGORITHM = "SM2-with-SM3"
# GM/T 0009-2012 §10: the user id when none is agreed; tongsuopy and OpenSSL's pkeyutl use it.
DISTID = "1234567812345678"
PRIVATE_KEY_FILE = "authority.key.pem"
PUBLIC_KEY_FILE = "authority.pub.pem"
MIN_PASSPHRASE = 8


class AuthorityKeyError(Exception):
    """A key, passphrase or signature file cannot be used; the message is one line."""


def sm3_hex(data: bytes) -> str:
    """The lower-case hex SM3 digest of ``data``."""
    return body_digest(data, "HMAC-SM3")


def read_passphrase(env_name: str | None, *, confirm: bool = False) -> bytes:
    """The passphrase from the environment variable ``env_name``, or typed at a terminal."""
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise AuthorityKeyError(f"passphrase: {env_name} is not set in the environment")
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise AuthorityKeyError("passphrase: no terminal to ask on; give --passphrase-env NAME")
    value = getpass.getpass("authority key passphrase: ")
    if confirm and getpass.getpass("again: ") != value:
        raise AuthorityKeyError("passphrase: the two entries differ")
    return value.encode("utf-8")


def _serialization() -> Any:
    from tongsuopy.crypto import serialization

    return serialization


def fingerprint(public_pem: bytes) -> str:
    """The SM3 digest of the public key's DER encoding: how reports and certificates name it."""
    serialization = _serialization()
    key = serialization.load_pem_public_key(public_pem)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return sm3_hex(der)


def init_keys(folder: Path, passphrase: bytes) -> tuple[Path, Path]:
    """Creates a new SM2 key pair in ``folder``; never overwrites one. Answers the two paths."""
    from tongsuopy.crypto.asymciphers import ec

    if len(passphrase) < MIN_PASSPHRASE:
        raise AuthorityKeyError(f"passphrase: at least {MIN_PASSPHRASE} characters")
    private_path, public_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise AuthorityKeyError(f"{path}: exists; an authority key is never overwritten")
    serialization = _serialization()
    key = ec.generate_private_key(ec.SM2())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    folder.mkdir(parents=True, exist_ok=True)
    # The private key is created readable by its owner only, never briefly world-readable.
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


@dataclass(frozen=True)
class SigningKey:
    """The authority's private key, decrypted, and its public key's fingerprint."""

    key: Any
    fingerprint: str

    def __repr__(self) -> str:
        return f"SigningKey(fingerprint={self.fingerprint[:16]}…)"

    def sign(self, data: bytes) -> dict[str, Any]:
        """The detached signature document of ``data``."""
        from tongsuopy.crypto import hashes
        from tongsuopy.crypto.asymciphers import ec

        der = self.key.sign(data, ec.ECDSA(hashes.SM3()))
        return {
            "algorithm": ALGORITHM,
            "distid": DISTID,
            "key_fingerprint": self.fingerprint,
            "signed_sm3": sm3_hex(data),
            "signature": base64.b64encode(der).decode("ascii"),
        }


def load_signing_key(path: Path, passphrase: bytes) -> SigningKey:
    """The private key at ``path`` decrypted with ``passphrase``."""
    from tongsuopy.crypto.asymciphers import ec

    serialization = _serialization()
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise AuthorityKeyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"ENCRYPTED PRIVATE KEY" not in pem:
        raise AuthorityKeyError(f"{path}: not an encrypted private key (PKCS#8 PEM)")
    try:
        key = serialization.load_pem_private_key(pem, passphrase)
    except (ValueError, TypeError):
        raise AuthorityKeyError(f"{path}: wrong passphrase, or not a private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "SM2":
        raise AuthorityKeyError(f"{path}: not an SM2 key")
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(key, fingerprint(public_pem))


@dataclass(frozen=True)
class VerifyingKey:
    """The authority's public key."""

    key: Any
    fingerprint: str
    source: str

    def verifies(self, data: bytes, signature: Mapping[str, Any]) -> bool:
        """Whether ``signature`` (a detached signature document) is this key's over ``data``."""
        from tongsuopy.crypto import hashes
        from tongsuopy.crypto.asymciphers import ec
        from tongsuopy.crypto.exceptions import InvalidSignature

        try:
            der = base64.b64decode(str(signature.get("signature", "")), validate=True)
            self.key.verify(der, data, ec.ECDSA(hashes.SM3()))
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True


def load_verifying_key(path: Path) -> VerifyingKey:
    """The public key at ``path``."""
    from tongsuopy.crypto.asymciphers import ec

    serialization = _serialization()
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise AuthorityKeyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise AuthorityKeyError(f"{path}: not a public key (PEM)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "SM2":
        raise AuthorityKeyError(f"{path}: not an SM2 public key")
    return VerifyingKey(key, fingerprint(pem), str(path))


def read_signature(path: Path) -> dict[str, Any]:
    """The detached signature document at ``path``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuthorityKeyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError):
        raise AuthorityKeyError(f"{path}: damaged: not a signature document") from None
    if not isinstance(document, dict) or document.get("algorithm") != ALGORITHM:
        raise AuthorityKeyError(f"{path}: damaged: not an {ALGORITHM} signature document")
    return document


def write_signature(path: Path, signature: Mapping[str, Any]) -> Path:
    """Writes a detached signature document to ``path``."""
    path.write_text(json.dumps(signature, indent=2) + "\n", encoding="utf-8")
    return path
