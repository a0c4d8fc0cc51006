"""Request corpora of chapters 1 and 3 (data under profiles/corpora) and generated malformed input.

The fixed cases are YAML, each with a description in the "X is Y" style. The generated cases of
ATS-API-05 come from hypothesis strategies: each strategy yields a case that the standard
decides exactly (400 INVALID_REQUEST, or 200 where an unknown member or parameter is ignored),
never one where ATS leaves a choice (``null`` members, ``1.0`` as a page, signs or spaces
around digits, non-ASCII digits).
"""

from __future__ import annotations

import functools
import json
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml
from hypothesis import strategies as st

from conformance.data import data_dir

__all__ = [
    "GeneratedCase",
    "corpus",
    "invalid_list_queries",
    "invalid_query_bodies",
    "malformed_json_bodies",
    "substitute",
]


@functools.cache
def corpus(name: str) -> dict[str, Any]:
    """The corpus ``profiles/corpora/<name>.yaml``, parsed."""
    path = data_dir("profiles") / "corpora" / f"{name}.yaml"
    with path.open(encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path.name}: expected a mapping at the top level")
    return loaded


def substitute(text: str, **values: str) -> str:
    """``text`` with its ``{name}`` placeholders replaced; other braces are left as they are."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


@dataclass(frozen=True)
class GeneratedCase:
    """A generated request part: its description, the bytes or query sent, and the answer due."""

    description: str
    payload: str | bytes
    expected_status: int


# Values of the wrong JSON type for each member of a share query (ATS §5): the standard calls
# for arrays of item names, an object, and integers within the ATS-API-08 bounds.
_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    st.text(string.ascii_letters, max_size=8),
)
_NOT_A_LIST = st.one_of(
    _SCALARS, st.dictionaries(st.text(string.ascii_lowercase, max_size=4), _SCALARS, max_size=2)
)
_NOT_AN_OBJECT = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=3))
_NOT_AN_INTEGER = st.one_of(
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    st.text(string.ascii_letters + string.digits, max_size=6),
    st.lists(st.integers(min_value=1, max_value=5), max_size=2),
)


def _out_of_range(member: str, max_size: int) -> st.SearchStrategy[int]:
    low = st.integers(min_value=-(10**12), max_value=0)
    if member == "size":
        return st.one_of(low, st.integers(min_value=max_size + 1, max_value=10**12))
    return low


def invalid_query_bodies(max_size: int) -> st.SearchStrategy[GeneratedCase]:
    """Share query bodies with one member of the wrong type or out of range (answered 400)."""
    fields = st.one_of(
        _NOT_A_LIST, st.lists(st.one_of(st.integers(), st.booleans()), min_size=1, max_size=3)
    ).map(lambda v: ("fields", v, "a fields member that is not a list of names"))
    filters = _NOT_AN_OBJECT.map(lambda v: ("filter", v, "a filter member that is not an object"))
    wrong_ints = st.sampled_from(["page", "size"]).flatmap(
        lambda m: _NOT_AN_INTEGER.map(lambda v: (m, v, f"a {m} that is not an integer"))
    )
    ranges = st.sampled_from(["page", "size"]).flatmap(
        lambda m: _out_of_range(m, max_size).map(lambda v: (m, v, f"a {m} out of range"))
    )
    return st.one_of(fields, filters, wrong_ints, ranges).map(
        lambda t: GeneratedCase(
            f"{t[2]} is invalid", json.dumps({t[0]: t[1]}, ensure_ascii=False), 400
        )
    )


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True


def malformed_json_bodies() -> st.SearchStrategy[GeneratedCase]:
    """Bodies that are not JSON: cut valid query bodies and arbitrary bytes (answered 400)."""
    valid = st.fixed_dictionaries(
        {},
        optional={
            "fields": st.lists(st.text(string.ascii_lowercase, min_size=1, max_size=6), max_size=3),
            "page": st.integers(min_value=1, max_value=9),
            "size": st.integers(min_value=1, max_value=100),
        },
    ).map(lambda d: json.dumps(d).encode())
    cut = valid.flatmap(
        lambda raw: st.integers(min_value=1, max_value=len(raw) - 1).map(lambda i: raw[:i])
    )
    noise = st.binary(min_size=1, max_size=64)
    return (
        st.one_of(cut, noise)
        .filter(lambda raw: not _is_json(raw))
        .map(lambda raw: GeneratedCase("a body that is not JSON is malformed", raw, 400))
    )


# ATS-API-08 and chapter 4: the single-valued query parameters of the catalog list, each with a
# valid value, so that repeating one is the only defect of the query.
_LIST_PARAMETERS = {
    "page": "1",
    "size": "5",
    "scope": "local",
    "share_type": "UNCONDITIONAL",
    "keyword": "a",
    "updated_since": quote("2000-01-01T00:00:00+08:00", safe=""),
}


def _integral_number(text: str) -> bool:
    """The text reads as a whole number in some common parser (``1.0``, ``2.``, ``1e3``)."""
    try:
        return float(text).is_integer()
    except ValueError:
        return False


# A query value that is no integer by any reading: it holds a letter or a dot, and no number
# parser reads it as a whole number (some stacks take ``page=1.0`` as page 1).
_NON_INTEGER = st.text(string.ascii_letters + string.digits + ".", min_size=1, max_size=8).filter(
    lambda v: any(c.isalpha() or c == "." for c in v) and not _integral_number(v)
)


def invalid_list_queries(max_size: int) -> st.SearchStrategy[GeneratedCase]:
    """Catalog list queries: bad page, size or repeated parameter (400), unknown ones (200)."""
    not_integer = st.tuples(st.sampled_from(["page", "size"]), _NON_INTEGER).map(
        lambda t: GeneratedCase(
            f"a {t[0]} that is not an integer is invalid", f"{t[0]}={t[1]}", 400
        )
    )
    out_of_range = st.sampled_from(["page", "size"]).flatmap(
        lambda m: _out_of_range(m, max_size).map(
            lambda v: GeneratedCase(f"a {m} out of range is invalid", f"{m}={v}", 400)
        )
    )
    repeated = st.tuples(
        st.sampled_from(sorted(_LIST_PARAMETERS)), st.permutations(list(_LIST_PARAMETERS))
    ).map(
        lambda t: GeneratedCase(
            f"a repeated {t[0]} is a repeated single-valued parameter",
            "&".join(
                [f"{name}={_LIST_PARAMETERS[name]}" for name in t[1]]
                + [f"{t[0]}={_LIST_PARAMETERS[t[0]]}"]
            ),
            400,
        )
    )
    unknown = st.text(string.ascii_lowercase + "_", min_size=1, max_size=10).flatmap(
        lambda name: st.text(string.ascii_letters + string.digits, max_size=10).map(
            lambda value: GeneratedCase(
                "an unknown query parameter is ignored", f"ats_{name}={value}&size=1", 200
            )
        )
    )
    return st.one_of(not_integer, out_of_range, repeated, unknown)
