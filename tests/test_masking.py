"""conformance.masking: every form a secret takes in evidence is masked."""

from __future__ import annotations

import json

from conformance.masking import ANY_RUN, MASK, Masker, mask_headers

SECRET = "s3cr3t-Value_0123456789abcdefABCDEF"
LONGER = SECRET + "-and-more"
SIGNATURE = "0a1b2c3d4e5f" * 5


def test_known_secrets_are_masked_in_urls_headers_and_bodies() -> None:
    masker = Masker([SECRET, "", LONGER])
    assert masker.text(f"/api/v1/node?key={SECRET}&x=1") == f"/api/v1/node?key={MASK}&x=1"
    assert masker.headers({"X-Echo": f"was {SECRET}"}) == {"X-Echo": f"was {MASK}"}
    assert masker.body(json.dumps({"note": SECRET}).encode(), 4096) == '{"note": "***"}'
    # The longer secret is masked whole, not left with its tail.
    assert masker.text(LONGER) == MASK


def test_a_body_is_cut_before_it_is_masked() -> None:
    assert Masker([SECRET]).body(b"abc" + SECRET.encode(), 3) == "abc"
    assert Masker().body(b"\xff ok", 10) == "\ufffd ok"


def test_credential_headers_are_masked_whatever_their_case() -> None:
    headers = {
        "X-Signature": SIGNATURE,
        "x-signature": SIGNATURE,
        "Authorization": "Bearer abc",
        "Proxy-Authorization": "Basic abc",
        "Cookie": "session=abc",
        "X-App-Id": "consumer",
    }
    masked = mask_headers(headers)
    assert masked == {**dict.fromkeys(list(headers)[:5], MASK), "X-App-Id": "consumer"}
    assert SIGNATURE not in repr(masked)


def test_assigned_credentials_are_masked_for_writers_that_know_no_secret() -> None:
    for text in (
        f'{{"secret": "{SECRET}"}}',
        f"secret={SECRET}",
        f"X-Signature: {SIGNATURE}",
        f"authorization = '{SECRET}'",
    ):
        masked = ANY_RUN.text(text)
        assert SECRET not in masked, masked
        assert SIGNATURE not in masked, masked
        assert MASK in masked
    # Masking twice changes nothing.
    once = ANY_RUN.text(f"secret={SECRET}")
    assert ANY_RUN.text(once) == once


def test_a_whole_evidence_entry_is_masked() -> None:
    entry = {
        "method": "POST",
        "target": f"/api/v1/share/x/query?s={SECRET}",
        "request_headers": {"X-Signature": SIGNATURE, "X-Nonce": "n" * 16},
        "request_body": json.dumps({"secret": "other"}),
        "status": 200,
        "notes": [f"echoed {SECRET}"],
    }
    masked = Masker([SECRET]).value(entry)
    text = json.dumps(masked)
    assert not [s for s in (SECRET, SIGNATURE, "other") if s in text], text
    assert masked["status"] == 200
    assert masked["request_headers"]["X-Nonce"] == "n" * 16
