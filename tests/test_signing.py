"""Request signatures of ATS chapter 3: SM3 backends, HMACs, canonical query and string."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import time
from collections.abc import Iterator, Mapping
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from hypothesis import given
from hypothesis import strategies as st

from conformance import signing
from conformance.signing import (
    SIGNATURE_METHODS,
    SignatureMethodError,
    body_digest,
    canonical_query,
    canonical_string,
    new_nonce,
    sign_headers,
    signature,
    sm3_backend,
    verify,
)

BACKENDS = sorted(signing._BACKENDS)

# GB/T 32905-2016 appendix A: the two SM3 examples.
SM3_VECTORS = [
    pytest.param(
        b"abc",
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0",
        id="the 3-byte message abc",
    ),
    pytest.param(
        b"abcd" * 16,
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732",
        id="the 64-byte message abcd repeated 16 times",
    ),
]

# ATS Annex A: the common inputs of both examples.
ANNEX_SECRET = "s3cr3t-ATS-example-key-0000000000000000"
ANNEX_FIELDS = {"app_id": "demo-app", "timestamp": "1700000000000", "nonce": "abcdef0123456789"}
ANNEX_GET_TARGET = "/api/v1/catalog/resources?size=5&page=2&keyword=%E4%BA%BA"
ANNEX_POST_TARGET = "/api/v1/share/101001/330001/query"
ANNEX_POST_BODY = b'{"filter":{"gender":"F"}}'

# The published vectors of the Annex A examples (also in docs/signing.md). They were checked
# against an independent HMAC implementation (the openssl command line) when first computed.
ANNEX_VECTORS = [
    pytest.param(
        "GET",
        ANNEX_GET_TARGET,
        b"",
        "HMAC-SM3",
        "GET\n/api/v1/catalog/resources\nkeyword=%E4%BA%BA&page=2&size=5\ndemo-app\n"
        "1700000000000\nabcdef0123456789\n"
        "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b",
        "7b56536ec69a9e0fb5feccedd193e1ad38e9cd730859b8c23a1408df452d09e2",
        id="example 1 signed with HMAC-SM3",
    ),
    pytest.param(
        "GET",
        ANNEX_GET_TARGET,
        b"",
        "HMAC-SHA256",
        "GET\n/api/v1/catalog/resources\nkeyword=%E4%BA%BA&page=2&size=5\ndemo-app\n"
        "1700000000000\nabcdef0123456789\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "246ce94ed2712f576e8bc55e6bdb37d65497551b28570fa57b931c65251400ee",
        id="example 1 signed with HMAC-SHA256",
    ),
    pytest.param(
        "POST",
        ANNEX_POST_TARGET,
        ANNEX_POST_BODY,
        "HMAC-SM3",
        "POST\n/api/v1/share/101001/330001/query\n\ndemo-app\n1700000000000\nabcdef0123456789\n"
        "2e0954fddfd2e5fd150091a6050cdcd0e3880b4f2d890306b57d5057288aae28",
        "7ede002466d2d3ec48eda17dfb09a995c95daf89abf3f638fc4a8ec42fe2a487",
        id="example 2 signed with HMAC-SM3",
    ),
    pytest.param(
        "POST",
        ANNEX_POST_TARGET,
        ANNEX_POST_BODY,
        "HMAC-SHA256",
        "POST\n/api/v1/share/101001/330001/query\n\ndemo-app\n1700000000000\nabcdef0123456789\n"
        "679eff4f5b62fb920de7aa942e4f686ec00ea69186427277d45bc08ccc4f47c1",
        "1701231241058e49268e33382e46510de83e6b79a7f620365b72b9a12a13ee41",
        id="example 2 signed with HMAC-SHA256",
    ),
]

CANONICAL_QUERY_CASES = [
    pytest.param("", "", id="an empty query is empty"),
    pytest.param("&&", "", id="a query of empty pieces is empty"),
    pytest.param("b=2&a=1", "a=1&b=2", id="pairs are sorted by name"),
    pytest.param("a=2&a=10&a=1", "a=1&a=10&a=2", id="repeats are kept and sorted by value"),
    pytest.param("a=1&&b=2&", "a=1&b=2", id="empty pieces are dropped"),
    pytest.param("flag&a=1", "a=1&flag=", id="a piece without = has an empty value"),
    pytest.param("a=", "a=", id="an empty value stays empty"),
    pytest.param("=v", "=v", id="an empty name is kept"),
    pytest.param("a=1=2", "a=1%3D2", id="only the first = splits"),
    pytest.param("q=a+b", "q=a%2Bb", id="a plus is a literal plus, not a space"),
    pytest.param("q=a%20b", "q=a%20b", id="an encoded space stays encoded"),
    pytest.param("q=%e4%ba%ba", "q=%E4%BA%BA", id="lower-case escapes are re-encoded upper case"),
    pytest.param("q=%41%2d%7E", "q=A-~", id="escaped unreserved characters are decoded"),
    pytest.param("q=人", "q=%E4%BA%BA", id="a raw non-ASCII character is its UTF-8 bytes"),
    pytest.param("q=*'()!", "q=%2A%27%28%29%21", id="reserved marks are encoded"),
    pytest.param("q=%2F&q=/", "q=%2F&q=%2F", id="an escaped and a raw slash are the same"),
    pytest.param("b=1&B=1&_=1&~=1", "B=1&_=1&b=1&~=1", id="names are sorted by bytes"),
    pytest.param("a.b=1&a=1&a%20=1", "a=1&a%20=1&a.b=1", id="encoded names sort as encoded"),
    pytest.param("q=%", "q=%25", id="a lone percent is a literal percent"),
    pytest.param("q=%4", "q=%254", id="a truncated escape is literal text"),
    pytest.param("q=%zz", "q=%25zz", id="an escape with non-hex digits is literal text"),
    pytest.param("q=%FF%FE", "q=%FF%FE", id="bytes that are not UTF-8 are kept byte for byte"),
    pytest.param("q=%C3", "q=%C3", id="a truncated UTF-8 sequence is kept byte for byte"),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each available SM3 backend in turn is the one in use."""
    before = sm3_backend()
    signing._select_backend(request.param)
    yield request.param
    signing._select_backend(before)


def _independent_hmac_sm3(key: bytes, msg: bytes, backend: str) -> str:
    """HMAC-SM3 computed by the implementation that is not ``backend``."""
    if backend == "hashlib":
        mac = crypto_hmac.HMAC(key, hashes.SM3())
        mac.update(msg)
        return mac.finalize().hex()
    return hmac.new(key, msg, "sm3").hexdigest()


def test_the_hashlib_backend_is_preferred_where_openssl_has_sm3() -> None:
    assert sm3_backend() == ("hashlib" if "hashlib" in signing._BACKENDS else "cryptography")


@pytest.mark.parametrize(("message", "expected"), SM3_VECTORS)
def test_without_sm3_in_hashlib_the_cryptography_backend_is_chosen_and_meets_gbt_32905(
    monkeypatch: pytest.MonkeyPatch, message: bytes, expected: str
) -> None:
    # An OpenSSL build without SM3 (e.g. a FIPS one): hashlib.new("sm3") raises ValueError.
    original = hashlib.new

    def without_sm3(name: str, *args: object, **kwargs: object) -> object:
        if name.lower() == "sm3":
            raise ValueError(f"unsupported hash type {name}")
        return original(name, *args, **kwargs)

    monkeypatch.setattr(hashlib, "new", without_sm3)
    backends = signing._available_backends()
    assert set(backends) == {"cryptography"}
    chosen = signing._preferred_backend(backends)
    assert chosen.name == "cryptography"
    monkeypatch.setattr(signing, "_sm3", chosen)
    assert sm3_backend() == "cryptography"
    assert body_digest(message, "HMAC-SM3") == expected


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="not available"):
        signing._select_backend("gmssl")


@pytest.mark.parametrize(("message", "expected"), SM3_VECTORS)
def test_sm3_matches_gbt_32905(backend: str, message: bytes, expected: str) -> None:
    assert sm3_backend() == backend
    assert body_digest(message, "HMAC-SM3") == expected


def test_sha256_body_digest_of_nothing_is_the_empty_string_digest() -> None:
    expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert body_digest(b"", "HMAC-SHA256") == expected


def test_hmac_sm3_matches_an_independent_implementation(backend: str) -> None:
    key, msg = "secret-ключ-密钥", "line one\nline two 人"
    expected = _independent_hmac_sm3(key.encode(), msg.encode(), backend)
    assert signature(key, msg, "HMAC-SM3") == expected


def test_hmac_sha256_matches_rfc_4231_case_2() -> None:
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert signature("Jefe", "what do ya want for nothing?", "HMAC-SHA256") == expected


@given(key=st.binary(max_size=200), msg=st.binary(max_size=300))
def test_sm3_backends_agree(key: bytes, msg: bytes) -> None:
    if len(signing._BACKENDS) < 2:
        pytest.skip("only one SM3 backend is available here")
    first, second = (signing._BACKENDS[name] for name in BACKENDS)
    assert first.digest(msg) == second.digest(msg)
    assert first.hmac(key, msg) == second.hmac(key, msg)


@pytest.mark.parametrize(("raw", "expected"), CANONICAL_QUERY_CASES)
def test_canonical_query(raw: str, expected: str) -> None:
    assert canonical_query(raw) == expected
    assert canonical_query(raw.encode("utf-8")) == expected


_CANONICAL_QUERY = re.compile(
    r"(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})*=(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})*"
)


@given(raw=st.text(max_size=200))
def test_canonical_query_is_defined_for_any_text(raw: str) -> None:
    result = canonical_query(raw)
    assert all(_CANONICAL_QUERY.fullmatch(pair) for pair in result.split("&") if result)


def test_lone_surrogates_in_a_text_query_do_not_raise() -> None:
    assert canonical_query("a=\ud800&b=\udcff") == "a=%ED%A0%80&b=%FF"


@given(raw=st.binary(max_size=200))
def test_canonical_query_is_defined_for_any_bytes(raw: bytes) -> None:
    result = canonical_query(raw)
    assert all(_CANONICAL_QUERY.fullmatch(pair) for pair in result.split("&") if result)


_PAIRS = st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6)


@given(pairs=_PAIRS, order=st.randoms(use_true_random=False), safe=st.sampled_from(["", "/:@"]))
def test_canonical_query_ignores_order_and_encoding_choices(
    pairs: list[tuple[str, str]], order: random.Random, safe: str
) -> None:
    """Reordering the pairs, encoding more or fewer characters, or the escapes' hex case give the
    same canonical query."""
    encoded = [f"{quote(name, safe=safe)}={quote(value, safe=safe)}" for name, value in pairs]
    shuffled = list(encoded)
    order.shuffle(shuffled)
    lower_hex = [re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), p) for p in shuffled]
    assert canonical_query("&".join(encoded)) == canonical_query("&".join(lower_hex))
    expected = sorted(
        (quote(name.encode(), safe="-._~"), quote(value.encode(), safe="-._~"))
        for name, value in pairs
    )
    assert canonical_query("&".join(shuffled)) == "&".join(f"{n}={v}" for n, v in expected)


@pytest.mark.parametrize(
    ("method", "target", "body", "signature_method", "canonical", "expected"), ANNEX_VECTORS
)
def test_annex_a_examples(
    backend: str,
    method: str,
    target: str,
    body: bytes,
    signature_method: str,
    canonical: str,
    expected: str,
) -> None:
    path, _, query = target.partition("?")
    built = canonical_string(
        method=method,
        path=path,
        query=query,
        body=body,
        signature_method=signature_method,
        **ANNEX_FIELDS,
    )
    assert built == canonical
    assert signature(ANNEX_SECRET, canonical, signature_method) == expected
    headers = sign_headers(
        method=method,
        target=target,
        body=body,
        app_id=ANNEX_FIELDS["app_id"],
        secret=ANNEX_SECRET,
        signature_method=signature_method,
        timestamp=int(ANNEX_FIELDS["timestamp"]),
        nonce=ANNEX_FIELDS["nonce"],
    )
    assert headers == {
        "X-App-Id": "demo-app",
        "X-Timestamp": "1700000000000",
        "X-Nonce": "abcdef0123456789",
        "X-Signature-Method": signature_method,
        "X-Signature": expected,
    }


def test_annex_a_body_digest_of_the_empty_body_is_the_published_one() -> None:
    expected = "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
    assert body_digest(b"", "HMAC-SM3") == expected


def _annex_canonical(**changes: object) -> str:
    fields: dict[str, object] = {
        "method": "POST",
        "path": ANNEX_POST_TARGET,
        "query": "",
        "body": ANNEX_POST_BODY,
        "signature_method": "HMAC-SM3",
        **ANNEX_FIELDS,
    }
    fields.update(changes)
    return canonical_string(**fields)  # type: ignore[arg-type]


def test_the_method_line_is_upper_case() -> None:
    assert _annex_canonical(method="post") == _annex_canonical()


def test_a_bytes_target_is_taken_byte_for_byte() -> None:
    raw_path = "/api/v1/x/%E4/\xff".encode("latin-1")
    as_bytes = _annex_canonical(path=raw_path, query=b"a=%ff")
    as_text = _annex_canonical(path=raw_path.decode("utf-8", "surrogateescape"), query="a=%FF")
    assert as_bytes == as_text
    assert signature(ANNEX_SECRET, as_bytes, "HMAC-SM3") == _independent_hmac_sm3(
        ANNEX_SECRET.encode(), as_bytes.encode("utf-8", "surrogateescape"), "cryptography"
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"method": "PUT"}, id="the method"),
        pytest.param({"path": "/api/v1/share/101001/330002/query"}, id="the path"),
        pytest.param({"path": "/api/v1/share/101001%2F330001/query"}, id="the path's encoding"),
        pytest.param({"query": "x=1"}, id="an added parameter"),
        pytest.param({"body": b'{"filter":{"gender":"M"}}'}, id="the body"),
        pytest.param({"timestamp": "1700000000001"}, id="the timestamp"),
        pytest.param({"nonce": "abcdef0123456780"}, id="the nonce"),
        pytest.param({"app_id": "demo-app2"}, id="the app id"),
        pytest.param({"signature_method": "HMAC-SHA256"}, id="the signature method"),
    ],
)
def test_any_change_after_signing_breaks_the_signature(change: dict[str, object]) -> None:
    """ATS-AUTH-02: a change of any signed element makes the signature not match."""
    presented = signature(ANNEX_SECRET, _annex_canonical(), "HMAC-SM3")
    changed = _annex_canonical(**change)
    assert not verify(ANNEX_SECRET, changed, presented, "HMAC-SM3")


@pytest.mark.parametrize("signature_method", SIGNATURE_METHODS)
def test_verify_accepts_the_signature_in_either_hex_case(signature_method: str) -> None:
    canonical = _annex_canonical()
    presented = signature(ANNEX_SECRET, canonical, signature_method)
    assert verify(ANNEX_SECRET, canonical, presented, signature_method)
    assert verify(ANNEX_SECRET, canonical, presented.upper(), signature_method)


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param("", id="an empty signature"),
        pytest.param("0" * 64, id="a wrong signature"),
        pytest.param("7ede0024", id="a prefix of the signature"),
        pytest.param("７ede" + "0" * 60, id="full-width digits"),
        pytest.param("\udcff" * 64, id="undecodable bytes"),
    ],
)
def test_verify_rejects_what_does_not_match(presented: str) -> None:
    assert not verify(ANNEX_SECRET, _annex_canonical(), presented, "HMAC-SM3")


def test_verify_rejects_another_secret() -> None:
    canonical = _annex_canonical()
    presented = signature(ANNEX_SECRET, canonical, "HMAC-SM3")
    assert not verify(ANNEX_SECRET + "x", canonical, presented, "HMAC-SM3")


@pytest.mark.parametrize("method", ["HMAC-SM2", "hmac-sm3", "HMAC-MD5", ""])
def test_an_unknown_signature_method_is_refused(method: str) -> None:
    with pytest.raises(SignatureMethodError, match="not one of HMAC-SM3, HMAC-SHA256"):
        signature(ANNEX_SECRET, "x", method)
    with pytest.raises(ValueError, match="not one of"):
        body_digest(b"", method)


def test_nonces_are_32_random_alphanumerics() -> None:
    nonces = {new_nonce() for _ in range(200)}
    assert len(nonces) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", nonce) for nonce in nonces)


def test_sign_headers_uses_a_fresh_timestamp_and_nonce() -> None:
    before = time.time_ns() // 1_000_000
    first = sign_headers(method="GET", target="/api/v1/node", body=b"", app_id="a", secret="s")
    second = sign_headers(method="GET", target="/api/v1/node", body=b"", app_id="a", secret="s")
    after = time.time_ns() // 1_000_000
    assert re.fullmatch(r"[0-9]{13}", first["X-Timestamp"])
    assert before <= int(first["X-Timestamp"]) <= after
    assert first["X-Nonce"] != second["X-Nonce"]
    assert first["X-Signature-Method"] == "HMAC-SM3"
    assert "s" not in first.values()


def test_sign_headers_splits_the_target_at_its_first_question_mark() -> None:
    headers = sign_headers(
        method="GET",
        target="/api/v1/catalog/resources?keyword=a?b",
        body=b"",
        app_id="a",
        secret="s",
        timestamp=1700000000000,
        nonce="n" * 16,
    )
    canonical = canonical_string(
        method="GET",
        path="/api/v1/catalog/resources",
        query="keyword=a?b",
        app_id="a",
        timestamp="1700000000000",
        nonce="n" * 16,
        body=b"",
        signature_method="HMAC-SM3",
    )
    assert canonical.splitlines()[2] == "keyword=a%3Fb"
    assert verify("s", canonical, headers["X-Signature"], "HMAC-SM3")


def test_hmac_is_keyed_with_the_utf8_bytes_of_the_secret() -> None:
    expected = hmac.new("密钥".encode(), b"m", hashlib.sha256).hexdigest()
    assert signature("密钥", "m", "HMAC-SHA256") == expected


# --- SigningAuth: requests and httpx sign what they transmit ---------------------------------

SECRET = "s" * 40


def _verified(method: str, target: str, body: bytes, headers: Mapping[str, str]) -> bool:
    path, _, query = target.partition("?")
    canonical = canonical_string(
        method=method,
        path=path,
        query=query,
        app_id=headers["X-App-Id"],
        timestamp=headers["X-Timestamp"],
        nonce=headers["X-Nonce"],
        body=body,
        signature_method=headers["X-Signature-Method"],
    )
    return verify(SECRET, canonical, headers["X-Signature"], headers["X-Signature-Method"])


def test_signing_auth_signs_a_requests_request_over_its_encoded_target_and_body() -> None:
    import requests

    auth = signing.SigningAuth("app-1", SECRET)
    prepared = requests.Request(
        "POST",
        "http://node.example/gw/api/v1/share/101001/330001/query",
        params={"q": "人 +", "a": "1"},
        json={"fields": ["名称"]},
        auth=auth,
    ).prepare()
    assert isinstance(prepared.body, bytes)
    assert prepared.path_url == "/gw/api/v1/share/101001/330001/query?q=%E4%BA%BA+%2B&a=1"
    assert prepared.headers["X-Signature-Method"] == "HMAC-SM3"
    assert _verified("POST", prepared.path_url, prepared.body, prepared.headers)


def test_signing_auth_signs_an_httpx_request_over_its_raw_target_and_content() -> None:
    import httpx

    auth = signing.SigningAuth("app-1", SECRET, signature_method="HMAC-SHA256")
    request = httpx.Request(
        "GET", "http://node.example/api/v1/catalog/resources", params={"keyword": "人口"}
    )
    signed = next(auth.auth_flow(request))
    target = signed.url.raw_path.decode("ascii")
    assert target == "/api/v1/catalog/resources?keyword=%E4%BA%BA%E5%8F%A3"
    assert signed.headers["X-Signature-Method"] == "HMAC-SHA256"
    assert _verified("GET", target, b"", signed.headers)


def test_a_named_signature_method_is_used_and_an_unknown_one_kept() -> None:
    import httpx

    auth = signing.SigningAuth("app-1", SECRET)
    chosen = httpx.Request(
        "GET", "http://n/api/v1/node", headers={"X-Signature-Method": "HMAC-SHA256"}
    )
    signed = next(auth.auth_flow(chosen))
    assert _verified("GET", "/api/v1/node", b"", signed.headers)
    odd = httpx.Request("GET", "http://n/api/v1/node", headers={"X-Signature-Method": "HMAC-MD5"})
    assert next(auth.auth_flow(odd)).headers["X-Signature-Method"] == "HMAC-MD5"


def test_with_a_placeholder_only_requests_carrying_it_are_signed() -> None:
    import httpx

    auth = signing.SigningAuth("app-1", SECRET, placeholder="sign-me")
    stripped = next(auth.auth_flow(httpx.Request("GET", "http://n/api/v1/node")))
    assert "X-Signature" not in stripped.headers
    invented = httpx.Request("GET", "http://n/api/v1/node", headers={"X-Signature": "00ff"})
    assert next(auth.auth_flow(invented)).headers["X-Signature"] == "00ff"
    marked = httpx.Request("GET", "http://n/api/v1/node", headers={"X-Signature": "sign-me"})
    signed = next(auth.auth_flow(marked))
    assert _verified("GET", "/api/v1/node", b"", signed.headers)


def test_the_secret_stays_out_of_the_auth_object_repr() -> None:
    assert SECRET not in repr(signing.SigningAuth("app-1", SECRET))
