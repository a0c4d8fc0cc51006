"""Real reference nodes on loopback for the SEC and AUD checks, with a test PKI made at test time.

Each environment is one reference node process (``python -m conformance.reference``), over
HTTPS with a certificate of a CA generated here (never committed) or over plain HTTP, its parent
emulated by the suite (``conformance.neighbours``) and its child down. Checks run exactly as in
a conformance run: a ``CheckContext`` with the run's client, evidence and run state.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.nodes import CHILD_ID, free_port, plan_node, start

from conformance.checks import (
    CheckContext,
    RunState,
    registry,
)
from conformance.client import EvidenceLog, NodeClient
from conformance.data import data_dir
from conformance.neighbours import NeighbourSet, start_neighbours
from conformance.outcomes import decide
from conformance.profile import get_clause
from conformance.target import Target, load_target
from conformance.topology import RunningNode

NODE_ID = "330000"
ROLES = json.loads((data_dir("fixtures") / "catalogs" / f"{NODE_ID}.json").read_text("utf-8"))[
    "roles"
]
SEC_AUD = tuple(f"ATS-SEC-0{n}" for n in range(1, 7)) + tuple(f"ATS-AUD-0{n}" for n in range(1, 6))


@dataclass(frozen=True)
class Pki:
    """A test CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path
    # A certificate of the same CA for another host name only, and its key.
    misnamed_cert: Path
    misnamed_key: Path


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _ca(folder: Path, label: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(label))
        .issuer_name(_name(label))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _server_cert(
    folder: Path,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: Sequence[x509.GeneralName],
    stem: str,
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"ats-{stem}"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = folder / f"{stem}.pem"
    key_path = folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate it signs, one it signs for another name, an unrelated CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert, ca_path = _ca(folder, "ats-test-ca")
    _, _, other = _ca(folder, "ats-other-ca")
    local = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert, key = _server_cert(folder, ca_key, ca_cert, local, "node")
    # RFC 5737 keeps 192.0.2.0/24 for documentation: no host the tests reach has this address.
    elsewhere = [x509.DNSName("node.example"), x509.IPAddress(ipaddress.ip_address("192.0.2.1"))]
    misnamed_cert, misnamed_key = _server_cert(folder, ca_key, ca_cert, elsewhere, "misnamed")
    return Pki(ca_path, cert, key, other, misnamed_cert, misnamed_key)


@dataclass
class Env:
    """A running candidate node, its target, its emulated parent and the run's client."""

    node: RunningNode
    target: Target
    neighbours: NeighbourSet | None
    client: NodeClient
    run: RunState = field(default_factory=RunState)
    skip_causes: dict[str, str] = field(default_factory=dict)

    def assess(self, clause_id: str) -> tuple[str, str, list[dict[str, object]]]:
        """The verdict, reason and evidence of the clause's check against this node."""
        registered = registry()[clause_id]
        evidence = EvidenceLog(self.target.secrets())
        ctx = CheckContext(
            clause=get_clause(clause_id),
            target=self.target,
            client=self.client.for_clause(evidence),
            run=self.run,
            evidence=evidence,
            neighbours=self.neighbours,
        )
        decision = decide(lambda: registered.function(ctx), passed=registered.doc)
        if decision.skip_cause is not None:
            self.skip_causes[clause_id] = decision.skip_cause.value
        return decision.verdict.value, decision.reason, evidence.entries

    def stop(self) -> None:
        """The node, the emulated parent and the client are stopped."""
        self.client.close()
        if self.neighbours is not None:
            self.neighbours.stop()
        self.node.stop()


def start_env(
    folder: Path,
    pki: Pki | None,
    faults: Sequence[str] = (),
    *,
    lab: bool = False,
    ca_bundle: Path | None = None,
    rate_limit: int = 50,
    variants: Sequence[str] = (),
) -> Env:
    """A provincial reference node (HTTPS with ``pki``, else plain HTTP) and its target; the
    target file names its parent (emulated) and not its child (down)."""
    planned = plan_node(folder, rate_limit=rate_limit, database=":memory:", omit=(CHILD_ID,))
    bundle = ca_bundle or (pki.ca if pki is not None else None)
    if pki is not None:
        plain = f"127.0.0.1:{free_port()}"
        planned.node["tls"] = {"cert": str(pki.cert), "key": str(pki.key), "http_listen": plain}
        planned.target["node"]["http_url"] = f"http://{plain}"
    planned.target["node"]["ca_bundle"] = str(bundle) if bundle is not None else None
    planned.target["lab"] = lab
    planned.write()
    target = load_target(planned.target_file)
    assert target.neighbours is not None
    neighbours = start_neighbours(target.neighbours)
    try:
        node = start(planned, faults, variants)
    except BaseException:
        neighbours.stop()
        raise
    target = load_target(planned.target_file)
    return Env(node, target, neighbours, NodeClient(target))


@pytest.fixture(scope="module")
def https_env(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Env]:
    """The clean reference node over HTTPS, with its plain-HTTP redirect address."""
    env = start_env(tmp_path_factory.mktemp("https"), pki)
    yield env
    env.stop()


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """The clean reference node over plain HTTP, declared a lab run."""
    env = start_env(tmp_path_factory.mktemp("lab"), None, lab=True)
    yield env
    env.stop()
