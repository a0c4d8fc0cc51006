"""Code validators and masks of ATS §0, §4, §5 and §7."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from conformance import codes
from conformance.codes import (
    DIVISION_NAMES,
    MASK_RULES,
    PROVINCE_CODES,
    USCC_ALPHABET,
    division_level,
    division_problem,
    id_check_character,
    id_number_problem,
    mask,
    masked_shape_problem,
    node_id_problem,
    org_check_character,
    org_code_problem,
    resource_code_problem,
    uscc_check_character,
    uscc_problem,
)

DIGITS = "0123456789"
ORG_ALPHABET = DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
TODAY = date(2024, 6, 30)

# Published examples: GB 11643-1999, GB 11714-1997 and GB 32100-2015.
ID_EXAMPLE = "11010519491231002X"
ORG_EXAMPLE = "D2143569X"
USCC_EXAMPLE = "91350100M000100Y43"


# --- strategies of valid codes -------------------------------------------------------------


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    """A valid GB 11643 id number born between 1900-01-01 and TODAY."""
    province = draw(st.sampled_from(PROVINCE_CODES))
    area = draw(st.text(DIGITS, min_size=4, max_size=4))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
    serial = draw(st.text(DIGITS, min_size=3, max_size=3))
    first17 = f"{province}{area}{born:%Y%m%d}{serial}"
    return first17 + id_check_character(first17)


@st.composite
def org_codes(draw: st.DrawFn, alphabet: str = ORG_ALPHABET) -> str:
    """A valid GB 11714 organization code whose body is drawn from ``alphabet``."""
    body = draw(st.text(alphabet, min_size=8, max_size=8))
    return body + org_check_character(body)


@st.composite
def usccs(draw: st.DrawFn) -> str:
    """A valid GB 32100 unified social credit code."""
    authority = draw(st.sampled_from(sorted(codes._REGISTRATION)))
    kind = draw(st.sampled_from(sorted(codes._REGISTRATION[authority])))
    division = draw(st.sampled_from([*sorted(DIVISION_NAMES), "100000"]))
    org = draw(org_codes(alphabet=USCC_ALPHABET))
    first17 = f"{authority}{kind}{division}{org}"
    return first17 + uscc_check_character(first17)


@st.composite
def divisions(draw: st.DrawFn) -> str:
    """A division code with the structure of ATS §0: ``PPCCDD``, ``CC`` 00 implies ``DD`` 00."""
    province = draw(st.sampled_from(PROVINCE_CODES))
    city = draw(st.text(DIGITS, min_size=2, max_size=2))
    county = "00" if city == "00" else draw(st.text(DIGITS, min_size=2, max_size=2))
    return province + city + county


CLASSIFICATION_TYPE = {"1": "BASE", "2": "TOPIC", "3": "DEPARTMENT"}


@st.composite
def resource_codes(draw: st.DrawFn) -> str:
    """A resource code of ATS §4: 类 1-3, 项, 目, optional 细目, ``/``, 6-digit sequence."""
    kind = draw(st.sampled_from(sorted(CLASSIFICATION_TYPE)))
    rest = draw(st.sampled_from((5, 8)))
    front = kind + draw(st.text(DIGITS, min_size=rest, max_size=rest))
    return front + "/" + draw(st.text(DIGITS, min_size=6, max_size=6))


NON_DIGITS = st.characters().filter(lambda char: char not in DIGITS)


def _substitute(value: str, position: int, char: str) -> str:
    return value[:position] + char + value[position + 1 :]


# --- province and division codes ------------------------------------------------------------


def test_province_codes_are_the_34_of_ats_section_0() -> None:
    expected = (
        [str(pp) for pp in range(11, 16)]
        + [str(pp) for pp in range(21, 24)]
        + [str(pp) for pp in range(31, 38)]
        + [str(pp) for pp in range(41, 47)]
        + [str(pp) for pp in range(50, 55)]
        + [str(pp) for pp in range(61, 66)]
        + ["71", "81", "82"]
    )
    assert list(PROVINCE_CODES) == expected
    assert len(PROVINCE_CODES) == 34


def test_every_known_division_is_well_formed_and_named() -> None:
    for code, name in DIVISION_NAMES.items():
        assert division_problem(code) is None, code
        assert name


def test_the_known_divisions_hold_all_cities_of_zhejiang() -> None:
    cities = {
        code for code in DIVISION_NAMES if code.startswith("33") and division_level(code) == "city"
    }
    assert cities == {f"33{cc:02d}00" for cc in range(1, 12)}
    assert DIVISION_NAMES["330100"] == "杭州市"
    assert DIVISION_NAMES["110101"] == "东城区"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("330000", None, id="a province is well formed"),
        pytest.param("330100", None, id="a city is well formed"),
        pytest.param("330106", None, id="a county is well formed"),
        pytest.param("820000", None, id="Macao is a province-level division"),
        pytest.param("33010", "expected 6 digits", id="five digits are too few"),
        pytest.param("3301060", "expected 6 digits", id="seven digits are too many"),
        pytest.param("33O100", "expected 6 digits", id="a letter is not a digit"),
        pytest.param("３３０１００", "expected 6 digits", id="full-width digits are not digits"),
        pytest.param("100000", "province part is '10'", id="the national code is no division"),
        pytest.param("160000", "province part is '16'", id="16 is no province"),
        pytest.param("330001", "city part 00 but county part '01'", id="a county needs a city"),
        pytest.param(330100, "is a int, expected a string", id="a number is not a code"),
    ],
)
def test_division_problem(value: object, expected: str | None) -> None:
    problem = division_problem(value)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected in problem


@given(divisions())
def test_generated_division_codes_are_well_formed(value: str) -> None:
    assert division_problem(value) is None


@given(value=divisions(), position=st.integers(0, 5), char=NON_DIGITS)
def test_a_division_code_with_a_non_digit_is_rejected(value: str, position: int, char: str) -> None:
    assert division_problem(_substitute(value, position, char)) is not None


@given(value=divisions(), province=st.text(DIGITS, min_size=2, max_size=2))
def test_a_division_code_outside_the_34_provinces_is_rejected(value: str, province: str) -> None:
    assume(province not in PROVINCE_CODES)
    assert division_problem(province + value[2:]) is not None


@given(value=divisions(), county=st.text(DIGITS, min_size=2, max_size=2))
def test_a_county_part_without_a_city_part_is_rejected(value: str, county: str) -> None:
    assume(county != "00")
    assert division_problem(value[:2] + "00" + county) is not None


@given(value=divisions(), digit=st.sampled_from(DIGITS), at_end=st.booleans())
def test_a_division_code_one_digit_longer_or_shorter_is_rejected(
    value: str, digit: str, at_end: bool
) -> None:
    assert division_problem(value + digit if at_end else value[:-1]) is not None


@pytest.mark.parametrize(
    ("value", "level"),
    [("330000", "province"), ("330100", "city"), ("110101", "county"), ("330182", "county")],
)
def test_division_level(value: str, level: str) -> None:
    assert division_level(value) == level


def test_division_level_of_a_malformed_code_is_refused() -> None:
    with pytest.raises(ValueError, match="county part"):
        division_level("330001")


# --- GB 11643 id numbers -------------------------------------------------------------------


def test_the_gb_11643_example_is_valid() -> None:
    assert id_check_character(ID_EXAMPLE[:17]) == "X"
    assert id_number_problem(ID_EXAMPLE) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("11010519491231002", "has 17 characters, expected 18", id="too short"),
        pytest.param("11010519491231002XX", "has 19 characters", id="too long"),
        pytest.param("1101051949123100-X", "character 17 is '-'", id="a non-digit body"),
        pytest.param("11010519491231002x", "expected a digit or upper-case 'X'", id="lower x"),
        pytest.param("16010519491231002X", "province code is '16'", id="no such province"),
        pytest.param("110105194902300021", "'19490230' is not a real date", id="30 February"),
        pytest.param("110105189912310021", "1899-12-31 is out of range", id="before 1900"),
        pytest.param("110105202407010021", "2024-07-01 is out of range", id="born tomorrow"),
        pytest.param("110105194912310020", "check character is '0', expected 'X'", id="check"),
        pytest.param(None, "is a NoneType, expected a string", id="no value"),
    ],
)
def test_id_number_problem(value: object, expected: str) -> None:
    problem = id_number_problem(value, today=TODAY)
    assert problem is not None
    assert expected in problem


def test_an_id_number_born_today_is_valid() -> None:
    first17 = f"330106{TODAY:%Y%m%d}123"
    assert id_number_problem(first17 + id_check_character(first17), today=TODAY) is None


def test_an_id_number_born_tomorrow_in_china_is_refused_by_default() -> None:
    tomorrow = date.today() + timedelta(days=2)
    first17 = f"330106{tomorrow:%Y%m%d}123"
    assert id_number_problem(first17 + id_check_character(first17)) is not None


@given(id_numbers())
def test_generated_id_numbers_are_valid(value: str) -> None:
    assert id_number_problem(value, today=TODAY) is None


@given(value=id_numbers(), position=st.integers(0, 17), data=st.data())
def test_every_single_substitution_of_an_id_number_is_rejected(
    value: str, position: int, data: st.DataObject
) -> None:
    """MOD 11-2 detects every substitution of one character by another of the alphabet."""
    alphabet = DIGITS + "X" if position == 17 else DIGITS
    char = data.draw(st.sampled_from(alphabet.replace(value[position], "")))
    assert id_number_problem(_substitute(value, position, char), today=TODAY) is not None


# --- GB 11714 organization codes -----------------------------------------------------------


def test_the_gb_11714_example_is_valid() -> None:
    assert org_check_character(ORG_EXAMPLE[:8]) == "X"
    assert org_code_problem(ORG_EXAMPLE) is None


@pytest.mark.parametrize(
    ("body", "check"),
    [
        pytest.param("00000000", "0", id="a remainder of 11 is written 0"),
        pytest.param("D2143569", "X", id="a remainder of 10 is written X"),
    ],
)
def test_org_check_character_extremes(body: str, check: str) -> None:
    assert org_check_character(body) == check


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("D2143569-X", "has 10 characters, expected 9", id="the hyphenated form"),
        pytest.param("d2143569X", "character 1 is 'd'", id="a lower-case letter"),
        pytest.param("D21435690", "check character is '0', expected 'X'", id="a wrong check"),
    ],
)
def test_org_code_problem(value: str, expected: str) -> None:
    problem = org_code_problem(value)
    assert problem is not None
    assert expected in problem


@given(org_codes())
def test_generated_org_codes_are_valid(value: str) -> None:
    assert org_code_problem(value) is None


@given(value=org_codes(), position=st.integers(0, 8), data=st.data())
def test_single_substitutions_of_an_org_code_are_rejected_unless_11_apart(
    value: str, position: int, data: st.DataObject
) -> None:
    """MOD 11 over values 0..35 detects a substitution whose values differ by no multiple of 11."""
    if position == 8:
        char = data.draw(st.sampled_from((DIGITS + "X").replace(value[8], "")))
    else:
        char = data.draw(st.sampled_from(ORG_ALPHABET.replace(value[position], "")))
        assume((ORG_ALPHABET.index(char) - ORG_ALPHABET.index(value[position])) % 11 != 0)
    assert org_code_problem(_substitute(value, position, char)) is not None


# --- GB 32100 unified social credit codes --------------------------------------------------


def test_the_gb_32100_example_is_valid() -> None:
    assert uscc_check_character(USCC_EXAMPLE[:17]) == "3"
    assert uscc_problem(USCC_EXAMPLE) is None


def test_a_central_body_code_with_the_national_division_is_valid() -> None:
    # 1 机构编制, 1 机关, division 100000, organization code body 00012345 and its check.
    first17 = "11" + "100000" + "00012345" + org_check_character("00012345")
    assert uscc_problem(first17 + uscc_check_character(first17)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("91350100M000100Y4", "has 17 characters, expected 18", id="too short"),
        pytest.param("91350100M000100Y4I", "character 18 is 'I'", id="I is not in the alphabet"),
        pytest.param("91350100m000100Y43", "character 9 is 'm'", id="a lower-case letter"),
        pytest.param("B1350100M000100Y43", "registration department is 'B'", id="department"),
        pytest.param("94350100M000100Y43", "organization type is '4'", id="organization type"),
        pytest.param("91990100M000100Y43", "province part is '99'", id="division province"),
        pytest.param("91350001M000100Y43", "county part '01'", id="division structure"),
        pytest.param("91350100M000100Y53", "embedded organization code check", id="org check"),
        pytest.param("91350100M000100Y44", "check character is '4', expected '3'", id="check"),
    ],
)
def test_uscc_problem(value: str, expected: str) -> None:
    problem = uscc_problem(value)
    assert problem is not None
    assert expected in problem


@given(usccs())
def test_generated_usccs_are_valid(value: str) -> None:
    assert uscc_problem(value) is None


@given(value=usccs(), position=st.integers(0, 17), data=st.data())
def test_every_single_substitution_of_a_uscc_is_rejected(
    value: str, position: int, data: st.DataObject
) -> None:
    """MOD 31 detects every substitution of one character by another of the alphabet."""
    char = data.draw(st.sampled_from(USCC_ALPHABET.replace(value[position], "")))
    assert uscc_problem(_substitute(value, position, char)) is not None


def test_check_character_functions_refuse_malformed_input() -> None:
    with pytest.raises(ValueError, match="17 digits"):
        id_check_character("1101051949123100")
    with pytest.raises(ValueError, match="8 digits or upper-case letters"):
        org_check_character("d2143569")
    with pytest.raises(ValueError, match="17 characters"):
        uscc_check_character("91350100M000100YI")


# --- node ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node_id", "level", "parent_id", "expected"),
    [
        pytest.param("100000", "national", None, None, id="the national node"),
        pytest.param("110000", "national", None, "expected '100000'", id="national is 100000"),
        pytest.param(USCC_EXAMPLE, "department", "100000", None, id="a department"),
        pytest.param("91350100M000100Y44", "department", None, "check character", id="dept check"),
        pytest.param("330000", "department", None, "has 6 characters", id="dept is a uscc"),
        pytest.param(USCC_EXAMPLE, "department", "330000", "parent id is '330000'", id="dept par"),
        pytest.param("330000", "provincial", "100000", None, id="a province"),
        pytest.param("330000", "provincial", None, None, id="a province without parent"),
        pytest.param("330100", "provincial", None, "expected the form PP0000", id="prov form"),
        pytest.param("990000", "provincial", None, "province part is '99'", id="prov code"),
        pytest.param("330000", "provincial", "320000", "parent id", id="province parent"),
        pytest.param("330100", "municipal", "330000", None, id="a city"),
        pytest.param("331100", "municipal", None, None, id="a city without parent"),
        pytest.param("330100", "municipal", "320000", "expected that of its parent", id="city PP"),
        pytest.param("330000", "municipal", None, "CC not 00", id="a city is no province"),
        pytest.param(
            "330106", "municipal", None, "expected the form PPCC00", id="city is no county"
        ),
        pytest.param("330100", "county", None, "node level is 'county'", id="an unknown level"),
    ],
)
def test_node_id_problem(
    node_id: str, level: str, parent_id: str | None, expected: str | None
) -> None:
    problem = node_id_problem(node_id, level, parent_id)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected in problem


# --- resource codes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "classification_type", "expected"),
    [
        pytest.param("101001/000123", None, None, id="a 6-digit classification"),
        pytest.param("101001002/000123", None, None, id="a 9-digit classification"),
        pytest.param("101001/000123", "BASE", None, id="1 is BASE"),
        pytest.param("201001/000123", "TOPIC", None, id="2 is TOPIC"),
        pytest.param("301001/000123", "DEPARTMENT", None, id="3 is DEPARTMENT"),
        pytest.param("401001/000123", None, "expected 6 or 9", id="类 4 does not exist"),
        pytest.param("001001/000123", None, "expected 6 or 9", id="类 0 does not exist"),
        pytest.param("1010010/000123", None, "expected 6 or 9", id="seven digits"),
        pytest.param("101001/00012", None, "expected 6 or 9", id="a short sequence"),
        pytest.param("101001000123", None, "expected 6 or 9", id="no slash"),
        pytest.param("101001%2F000123", None, "expected 6 or 9", id="an encoded slash"),
        pytest.param("１01001/000123", None, "expected 6 or 9", id="a full-width digit"),
        pytest.param("101001/000123\n", None, "expected 6 or 9", id="a trailing newline"),
        pytest.param("101001/000123", "TOPIC", "expected '2'", id="BASE code typed TOPIC"),
        pytest.param("301001/000123", "BASE", "expected '1'", id="DEPARTMENT code typed BASE"),
        pytest.param("101001/000123", "base", "classification type is 'base'", id="type case"),
    ],
)
def test_resource_code_problem(
    code: str, classification_type: str | None, expected: str | None
) -> None:
    problem = resource_code_problem(code, classification_type)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected in problem


@given(resource_codes())
def test_generated_resource_codes_are_well_formed_and_agree_with_their_type(code: str) -> None:
    assert resource_code_problem(code) is None
    assert resource_code_problem(code, CLASSIFICATION_TYPE[code[0]]) is None


@given(code=resource_codes(), data=st.data())
def test_a_resource_code_with_a_non_digit_in_place_of_a_digit_is_rejected(
    code: str, data: st.DataObject
) -> None:
    position = data.draw(st.sampled_from([i for i, char in enumerate(code) if char != "/"]))
    changed = _substitute(code, position, data.draw(NON_DIGITS))
    assert resource_code_problem(changed) is not None


@given(code=resource_codes(), char=st.characters())
def test_a_resource_code_without_its_slash_is_rejected(code: str, char: str) -> None:
    assume(char != "/")
    assert resource_code_problem(_substitute(code, code.index("/"), char)) is not None


@given(code=resource_codes(), first=st.sampled_from(DIGITS))
def test_a_changed_first_digit_is_rejected_for_the_classification_type(
    code: str, first: str
) -> None:
    # 类 0 and 4-9 do not exist; another of 1-3 disagrees with the type (ATS §4).
    assume(first != code[0])
    assert resource_code_problem(first + code[1:], CLASSIFICATION_TYPE[code[0]]) is not None


@given(code=resource_codes(), digit=st.sampled_from(DIGITS), part=st.sampled_from((0, 1)))
def test_a_resource_code_part_one_digit_longer_is_rejected(
    code: str, digit: str, part: int
) -> None:
    # A 7- or 10-digit front part, or a 7-digit sequence.
    front, sequence = code.split("/")
    longer = f"{front}{digit}/{sequence}" if part == 0 else f"{front}/{sequence}{digit}"
    assert resource_code_problem(longer) is not None


# --- masks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rule", "expected"),
    [
        pytest.param("110101199001011234", "ID_NUMBER", "110101********1234", id="an id number"),
        pytest.param("13812345678", "PHONE", "138****5678", id="a phone number"),
        pytest.param("张三丰", "NAME", "张**", id="a name"),
        pytest.param("浙江省杭州市西湖区文三路", "ADDRESS", "浙江省杭州市******", id="an address"),
        pytest.param("张", "NAME", "*", id="a one-character name is all stars"),
        pytest.param("1381234", "PHONE", "*******", id="a phone of 7 is all stars"),
        pytest.param("13812345", "PHONE", "138*2345", id="a phone of 8 keeps 7"),
        pytest.param("", "NAME", "", id="an empty value stays empty"),
        pytest.param("𠀀𠀁𠀂", "NAME", "𠀀**", id="characters are code points"),
        pytest.param(None, "PHONE", None, id="null stays null"),
    ],
)
def test_mask(value: str | None, rule: str, expected: str | None) -> None:
    assert mask(value, rule) == expected


def test_an_unknown_mask_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of ID_NUMBER, PHONE, NAME, ADDRESS"):
        mask("x", "EMAIL")
    with pytest.raises(ValueError, match="not one of"):
        masked_shape_problem("x", "EMAIL")


@given(value=st.text(max_size=40), rule=st.sampled_from(sorted(MASK_RULES)))
def test_a_mask_keeps_length_and_kept_characters(value: str, rule: str) -> None:
    masked = mask(value, rule)
    assert masked is not None
    assert len(masked) == len(value)
    head, tail = MASK_RULES[rule]
    if len(value) > head + tail:
        assert masked[:head] == value[:head]
        assert masked[len(masked) - tail :] == value[len(value) - tail :]
        assert set(masked[head : len(masked) - tail]) == {"*"}
    else:
        assert set(masked) <= {"*"}
    assert masked_shape_problem(masked, rule, original_length=len(value)) is None


@pytest.mark.parametrize(
    ("value", "rule", "original_length", "expected"),
    [
        pytest.param("110101********1234", "ID_NUMBER", 18, None, id="a masked id number"),
        pytest.param("138****5678", "PHONE", None, None, id="a masked phone"),
        pytest.param("*", "NAME", 1, None, id="a masked one-character name"),
        pytest.param(None, "NAME", None, None, id="null"),
        pytest.param("110101199001011234", "ID_NUMBER", None, "position 7", id="unmasked id"),
        pytest.param("138*1**5678", "PHONE", None, "position 5", id="a partly masked phone"),
        pytest.param("张", "NAME", None, "position 1", id="an unmasked one-character name"),
        pytest.param("张**", "NAME", 2, "has 3 characters, expected 2", id="a longer value"),
        pytest.param(11, "PHONE", None, "is a int", id="a number"),
    ],
)
def test_masked_shape_problem(
    value: object, rule: str, original_length: int | None, expected: str | None
) -> None:
    problem = masked_shape_problem(value, rule, original_length)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected in problem


def test_a_shape_problem_does_not_quote_the_unmasked_value() -> None:
    problem = masked_shape_problem("13812345678", "PHONE")
    assert problem is not None
    assert "1234" not in problem
