"""The raw-socket path reads a body with a content coding as the node meant it (issue 15)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from harness_servers import http_answer, serve

from conformance.client import NodeClient, Pacer
from conformance.target import load_target

DOCUMENT = {"code": "NOT_FOUND", "message": "没有 / none", "request_id": "req-00000001"}


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", lambda data: data),
    ],
)
def test_a_coded_body_is_decoded_on_the_raw_path(
    write_target: Callable[..., Path], coding: str, encode: Callable[[bytes], bytes]
) -> None:
    plain = json.dumps(DOCUMENT, ensure_ascii=False).encode()
    answer = http_answer(404, encode(plain), **{"Content-Encoding": coding})
    with serve(lambda _: answer) as (url, _):
        client = NodeClient(load_target(write_target(url)), pacer=Pacer(1000))
        try:
            ex = client.raw("GET", "/api/v1/nowhere", headers={"Accept-Encoding": "gzip"})
        finally:
            client.close()
    assert ex.status == 404
    assert ex.body == plain
    assert ex.error_code == "NOT_FOUND"


def test_a_body_that_does_not_decode_is_kept(write_target: Callable[..., Path]) -> None:
    answer = http_answer(200, b"not gzip at all", **{"Content-Encoding": "gzip"})
    with serve(lambda _: answer) as (url, _):
        client = NodeClient(load_target(write_target(url)), pacer=Pacer(1000))
        try:
            ex = client.raw("GET", "/api/v1/node")
        finally:
            client.close()
    assert ex.body == b"not gzip at all"
