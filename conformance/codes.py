"""Codes and masks of ATS-1.0: id numbers, credit codes, division codes, node ids, resource codes.

Every ``*_problem`` function returns ``None`` for a valid value and otherwise one line naming
what is wrong and what was expected, ready to be a finding's reason. The reference data (the
GB/T 2260 divisions, the GB 32100 registration table) is read from ``fixtures/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Literal

from conformance.data import data_dir

__all__ = [
    "DIVISION_NAMES",
    "MASK_RULES",
    "NODE_LEVELS",
    "PROVINCE_CODES",
    "USCC_ALPHABET",
    "division_level",
    "division_problem",
    "id_check_character",
    "id_number_problem",
    "mask",
    "masked_shape_problem",
    "node_id_problem",
    "org_check_character",
    "org_code_problem",
    "resource_code_problem",
    "uscc_check_character",
    "uscc_problem",
]


def _load_fixture(name: str) -> Any:
    with (data_dir("fixtures") / name).open(encoding="utf-8") as handle:
        return json.load(handle)


_DIVISIONS = _load_fixture("divisions.json")["divisions"]

DIVISION_NAMES: Mapping[str, str] = MappingProxyType(
    {entry["code"]: entry["name"] for entry in _DIVISIONS}
)
"""GB/T 2260 divisions known to the project, code to Chinese name: all provinces and a sample."""

PROVINCE_CODES: tuple[str, ...] = tuple(
    sorted(code[:2] for code in DIVISION_NAMES if code.endswith("0000"))
)
"""The 34 two-digit province-level codes ``PP`` of GB/T 2260 (ATS §0)."""

_REGISTRATION: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        entry["code"]: frozenset(entry["types"])
        for entry in _load_fixture("uscc_registration.json")["authorities"]
    }
)

# GB 32100: the 31 characters of a credit code, valued 0..30 in this order (no I O Z S V).
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {char: index for index, char in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

# GB 11714: digits and upper-case letters, valued 0..35; check weights and character.
_ORG_BODY_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# GB 11643 (ISO 7064 MOD 11-2): weight of position i is 2^(17-i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - position, 11) for position in range(17))
_ID_CHECK = "10X98765432"
_ID_EARLIEST_BIRTH = date(1900, 1, 1)

# The national platform's own code, which the division part of a central body's credit code
# carries (ATS §0 national node id).
_NATIONAL_CODE = "100000"

# ATS §0 node levels.
NODE_LEVELS = ("national", "department", "provincial", "municipal")

# ATS §4: classification code 类 (1-3) 项 (2 digits) 目 (3 digits) [细目 (3 digits)] / sequence.
_RESOURCE_CODE = re.compile(r"([1-3])[0-9]{5}(?:[0-9]{3})?/[0-9]{6}", re.ASCII)
_CLASSIFICATION_DIGIT = MappingProxyType({"BASE": "1", "TOPIC": "2", "DEPARTMENT": "3"})

MASK_RULES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"ID_NUMBER": (6, 4), "PHONE": (3, 4), "NAME": (1, 0), "ADDRESS": (6, 0)}
)
"""ATS §7: characters kept at the start and at the end of a masked value, per rule."""

# ATS §4 and §7 count dates in +08:00.
_CHINA = timezone(timedelta(hours=8))


def _is_digits(value: str) -> bool:
    # str.isdigit alone accepts non-ASCII digits such as "١" or "²".
    return value.isascii() and value.isdigit()


def _first_outside(value: str, alphabet: str) -> tuple[int, str] | None:
    for position, char in enumerate(value, start=1):
        if char not in alphabet:
            return position, char
    return None


def _not_a_string(value: object, what: str) -> str:
    return f"{what} is a {type(value).__name__}, expected a string"


def id_check_character(first17: str) -> str:
    """The GB 11643 check character (ISO 7064 MOD 11-2) of the first 17 digits: 0-9 or X."""
    if len(first17) != 17 or not _is_digits(first17):
        raise ValueError(f"expected 17 digits, got {first17!r}")
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def id_number_problem(value: object, *, today: date | None = None) -> str | None:
    """Why a citizen id number fails GB 11643, or ``None`` when it passes (ATS-SHR-06).

    18 characters: 17 digits then a check character (a digit or upper-case ``X``); a valid
    province prefix; a real birth date from 1900-01-01 to ``today`` (default: today in +08:00);
    the MOD 11-2 check character.
    """
    if not isinstance(value, str):
        return _not_a_string(value, "id number")
    if len(value) != 18:
        return f"id number has {len(value)} characters, expected 18"
    body, check = value[:17], value[17]
    outside = _first_outside(body, "0123456789")
    if outside:
        return f"id number character {outside[0]} is {outside[1]!r}, expected a digit"
    if check not in "0123456789X":
        return f"id number check character is {check!r}, expected a digit or upper-case 'X'"
    if body[:2] not in PROVINCE_CODES:
        return f"id number province code is {body[:2]!r}, expected a GB/T 2260 province code"
    try:
        born = datetime.strptime(body[6:14], "%Y%m%d").date()
    except ValueError:
        return f"id number birth date {body[6:14]!r} is not a real date (YYYYMMDD)"
    latest = today if today is not None else datetime.now(_CHINA).date()
    if not _ID_EARLIEST_BIRTH <= born <= latest:
        return (
            f"id number birth date {born.isoformat()} is out of range, "
            f"expected {_ID_EARLIEST_BIRTH.isoformat()} to {latest.isoformat()}"
        )
    expected = id_check_character(body)
    if check != expected:
        return f"id number check character is {check!r}, expected {expected!r}"
    return None


def org_check_character(first8: str) -> str:
    """The GB 11714 check character of an 8-character organization code body: 0-9 or X."""
    if len(first8) != 8 or _first_outside(first8, _ORG_BODY_ALPHABET):
        raise ValueError(f"expected 8 digits or upper-case letters, got {first8!r}")
    total = sum(
        _ORG_BODY_ALPHABET.index(char) * weight
        for char, weight in zip(first8, _ORG_WEIGHTS, strict=True)
    )
    remainder = 11 - total % 11
    return {10: "X", 11: "0"}.get(remainder, str(remainder))


def org_code_problem(value: object) -> str | None:
    """Why an organization code fails GB 11714, or ``None`` when it passes.

    9 characters without a hyphen: 8 digits or upper-case letters, then the check character.
    """
    if not isinstance(value, str):
        return _not_a_string(value, "organization code")
    if len(value) != 9:
        return f"organization code has {len(value)} characters, expected 9"
    outside = _first_outside(value[:8], _ORG_BODY_ALPHABET)
    if outside:
        return (
            f"organization code character {outside[0]} is {outside[1]!r}, "
            "expected a digit or upper-case letter"
        )
    expected = org_check_character(value[:8])
    if value[8] != expected:
        return f"organization code check character is {value[8]!r}, expected {expected!r}"
    return None


def uscc_check_character(first17: str) -> str:
    """The GB 32100 check character (weighted MOD 31) of the first 17 credit code characters."""
    if len(first17) != 17 or _first_outside(first17, USCC_ALPHABET):
        raise ValueError(f"expected 17 characters from {USCC_ALPHABET}, got {first17!r}")
    total = sum(
        _USCC_VALUE[char] * weight for char, weight in zip(first17, _USCC_WEIGHTS, strict=True)
    )
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_problem(value: object) -> str | None:
    """Why a unified social credit code fails GB 32100, or ``None`` when it passes.

    18 characters from ``USCC_ALPHABET``: registration department and organization type, a
    division code (or ``100000`` for a central body), an embedded GB 11714 organization code
    with its own check character, and the MOD 31 check character.
    """
    if not isinstance(value, str):
        return _not_a_string(value, "credit code")
    if len(value) != 18:
        return f"credit code has {len(value)} characters, expected 18"
    outside = _first_outside(value, USCC_ALPHABET)
    if outside:
        return (
            f"credit code character {outside[0]} is {outside[1]!r}, "
            "expected a digit or an upper-case letter other than I, O, S, V, Z"
        )
    authority, kind = value[0], value[1]
    if authority not in _REGISTRATION:
        return (
            f"credit code registration department is {authority!r}, "
            f"expected one of {''.join(sorted(_REGISTRATION))}"
        )
    if kind not in _REGISTRATION[authority]:
        return (
            f"credit code organization type is {kind!r}, expected one of "
            f"{''.join(sorted(_REGISTRATION[authority]))} for department {authority!r}"
        )
    division = value[2:8]
    if division != _NATIONAL_CODE and (reason := division_problem(division)):
        return f"credit code {reason}"
    if reason := org_code_problem(value[8:17]):
        return f"credit code embedded {reason}"
    expected = uscc_check_character(value[:17])
    if value[17] != expected:
        return f"credit code check character is {value[17]!r}, expected {expected!r}"
    return None


def division_problem(value: object) -> str | None:
    """Why a division code breaks the structure of ATS §0, or ``None`` when it has it.

    6 digits ``PPCCDD`` with a GB/T 2260 province code ``PP``; ``CC`` ``00`` implies ``DD`` ``00``.
    """
    if not isinstance(value, str):
        return _not_a_string(value, "division code")
    if len(value) != 6 or not _is_digits(value):
        return f"division code is {value!r}, expected 6 digits"
    if value[:2] not in PROVINCE_CODES:
        return f"division code province part is {value[:2]!r}, expected a GB/T 2260 province code"
    if value[2:4] == "00" and value[4:] != "00":
        return (
            f"division code {value!r} has city part 00 but county part {value[4:]!r}, expected 00"
        )
    return None


def division_level(value: str) -> Literal["province", "city", "county"]:
    """The level of a well-formed division code: ``PP0000`` province, ``PPCC00`` city, or county."""
    if reason := division_problem(value):
        raise ValueError(reason)
    if value[2:] == "0000":
        return "province"
    if value[4:] == "00":
        return "city"
    return "county"


def node_id_problem(node_id: object, level: str, parent_id: str | None = None) -> str | None:
    """Why a node id is not well formed for its level (ATS §0, ATS-NODE-03), or ``None``.

    national ``100000``; department a valid credit code; provincial ``PP0000``; municipal
    ``PPCC00`` with ``CC`` not ``00``. With ``parent_id``, a department or provincial node's
    parent is ``100000`` and a municipal node shares ``PP`` with its parent.
    """
    if not isinstance(node_id, str):
        return _not_a_string(node_id, "node id")
    if level not in NODE_LEVELS:
        return f"node level is {level!r}, expected one of {', '.join(NODE_LEVELS)}"
    if level == "national":
        if node_id != _NATIONAL_CODE:
            return f"national node id is {node_id!r}, expected {_NATIONAL_CODE!r}"
        return None
    if level in ("department", "provincial") and parent_id not in (None, _NATIONAL_CODE):
        return f"{level} node parent id is {parent_id!r}, expected {_NATIONAL_CODE!r}"
    if level == "department":
        if reason := uscc_problem(node_id):
            return f"department node id: {reason}"
        return None
    if reason := division_problem(node_id):
        return f"{level} node id: {reason}"
    if level == "provincial":
        if node_id[2:] != "0000":
            return f"provincial node id is {node_id!r}, expected the form PP0000"
        return None
    if node_id[2:4] == "00" or node_id[4:] != "00":
        return f"municipal node id is {node_id!r}, expected the form PPCC00 with CC not 00"
    if parent_id is not None and parent_id[:2] != node_id[:2]:
        return (
            f"municipal node id {node_id!r} has province part {node_id[:2]!r}, "
            f"expected that of its parent {parent_id!r}"
        )
    return None


def resource_code_problem(code: object, classification_type: str | None = None) -> str | None:
    """Why a resource code breaks ATS §4, or ``None`` when it is well formed.

    ``前段码/后段码``: 类 ``1``-``3``, 项 2 digits, 目 3 digits, optionally 细目 3 digits, ``/``,
    a 6-digit sequence. With ``classification_type`` the first digit agrees with it
    (1 BASE, 2 TOPIC, 3 DEPARTMENT).
    """
    if not isinstance(code, str):
        return _not_a_string(code, "resource code")
    match = _RESOURCE_CODE.fullmatch(code)
    if match is None:
        return (
            f"resource code is {code!r}, expected 6 or 9 classification digits starting "
            "with 1-3, '/', and 6 sequence digits (e.g. '101001/000123')"
        )
    if classification_type is None:
        return None
    if classification_type not in _CLASSIFICATION_DIGIT:
        return (
            f"classification type is {classification_type!r}, "
            f"expected one of {', '.join(_CLASSIFICATION_DIGIT)}"
        )
    expected = _CLASSIFICATION_DIGIT[classification_type]
    if match.group(1) != expected:
        return (
            f"resource code {code!r} starts with {match.group(1)!r}, "
            f"expected {expected!r} for classification type {classification_type}"
        )
    return None


def _kept(rule: str) -> tuple[int, int]:
    if rule not in MASK_RULES:
        raise ValueError(f"mask rule {rule!r} is not one of {', '.join(MASK_RULES)}")
    return MASK_RULES[rule]


def mask(value: str | None, rule: str) -> str | None:
    """The value masked by an ATS §7 rule, counted in Unicode code points.

    The rule's first and last characters are kept and every other becomes ``*``; a value not
    longer than the kept characters becomes all ``*``; ``None`` stays ``None``.
    """
    head, tail = _kept(rule)
    if value is None:
        return None
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def masked_shape_problem(
    value: object, rule: str, original_length: int | None = None
) -> str | None:
    """Why a value does not have the shape an ATS §7 rule produces, or ``None`` when it does.

    The masked positions are all ``*`` (every position when the value is not longer than the
    kept characters); the kept characters are only required to be there. With
    ``original_length`` the length is that of the original value.
    """
    head, tail = _kept(rule)
    if value is None:
        return None
    if not isinstance(value, str):
        return _not_a_string(value, "masked value")
    length = len(value)
    if original_length is not None and length != original_length:
        return f"masked value has {length} characters, expected {original_length} ({rule} mask)"
    if length <= head + tail:
        start, end = 0, length
    else:
        start, end = head, length - tail
    for position in range(start, end):
        if value[position] != "*":
            # The character itself is not quoted: it may be an unmasked personal value.
            return (
                f"masked value has an unmasked character at position {position + 1}, "
                f"expected '*' ({rule} keeps the first {head} and last {tail} of a longer value)"
            )
    return None
