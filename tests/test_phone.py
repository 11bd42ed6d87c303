"""``normalize_phone`` must give exactly what plain ``phonenumbers`` gives, fast path or not."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from npistack.normalize import phone
from npistack.normalize.phone import normalize_phone, phone_digits


def reference(raw: str, region: str = "US") -> str | None:
    """What phonenumbers alone says."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5408224224", "+15408224224"),  # the NPPES form
        ("(540) 822-4224", "+15408224224"),
        ("540.822.4224", "+15408224224"),
        ("1-540-822-4224", "+15408224224"),
        ("+1 540 822 4224", "+15408224224"),
        ("5408224224 x12", "+15408224224"),  # extension: slow path, dropped by E.164
        ("1-800-FLOWERS", "+18003569377"),  # letters: slow path
        ("5551234567", None),  # area code 555 is not assigned
        ("5401001234", None),  # exchange 1xx does not exist
        ("4162223333", "+14162223333"),  # Toronto: another NANP region
        ("7872223333", "+17872223333"),  # Puerto Rico
        ("1234567890", None),  # area code cannot start with 1
        ("8224224", None),  # 7 digits
        ("", None),
        ("not a phone", None),
        ("+442079460000", "+442079460000"),  # London
        ("+5408224224", None),  # '+' then 54: Argentina
    ],
)
def test_examples(raw: str, expected: str | None) -> None:
    assert normalize_phone(raw) == expected
    assert reference(raw) == expected


def test_other_default_region() -> None:
    assert normalize_phone("020 7946 0000", region="GB") == "+442079460000"
    assert normalize_phone("5408224224", region="GB") == reference("5408224224", "GB")


@settings(max_examples=2500, deadline=None)
@given(st.text(alphabet="0123456789", min_size=10, max_size=11))
@example("15408224224")
@example("11234567890")
@example("2465212000")  # Barbados: the seventh digit matters
@example("8766061000")  # Jamaica: likewise
def test_digit_strings_agree(raw: str) -> None:
    assert normalize_phone(raw) == reference(raw)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet="0123456789 ()-.+x#/eEtT", max_size=24))
@example("((540))822--4224")
@example(")5408224224.")
@example("1 (540) 822-4224")
def test_punctuated_strings_agree(raw: str) -> None:
    assert normalize_phone(raw) == reference(raw)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=30))
@example("٥٤٠٨٢٢٤٢٢٤")  # Arabic-Indic digits: phonenumbers reads them
@example(" " * 260 + "5408224224")  # too long for phonenumbers
def test_any_string_agrees(raw: str) -> None:
    assert normalize_phone(raw) == reference(raw)


def test_every_area_code_agrees() -> None:
    """All NPAs 200-999, several exchanges each, two line numbers per exchange, both input forms."""
    rng = random.Random(20240601)
    for npa in range(200, 1000):
        for nxx in ("200", "555", "911", *(f"{rng.randint(0, 999):03d}" for _ in range(4))):
            for line in ("0100", f"{rng.randint(0, 9999):04d}"):
                national = f"{npa}{nxx}{line}"
                for raw in (national, "1" + national):
                    assert normalize_phone(raw) == reference(raw), raw


def test_suffix_dependent_prefixes_are_found() -> None:
    """Every prefix the metadata analysis flags does depend on later digits, and is handled right."""
    special = phone.suffix_dependent_prefixes()
    assert special is not None, "the NANP metadata could not be analysed: the fast path is off"
    for prefix in special:
        raws = [f"{prefix}{d}{e}00" for d in range(10) for e in range(10)]
        verdicts = {reference(raw) is not None for raw in raws}
        assert verdicts == {True, False}, prefix
        for raw in raws:
            assert normalize_phone(raw) == reference(raw), raw


def test_cache_does_not_leak_between_suffixes() -> None:
    """A prefix's verdict is reused for other line numbers; it must hold for them too."""
    phone._valid_prefixes.clear()
    assert normalize_phone("5408224224") == "+15408224224"
    assert normalize_phone("5408220000") == reference("5408220000")
    assert normalize_phone("5401001234") is None
    assert normalize_phone("5401009999") is None


def test_phone_digits() -> None:
    assert phone_digits("(540) 822-4224") == "5408224224"
    assert phone_digits("5408224224") == "5408224224"
    assert phone_digits("") == ""
    assert phone_digits("ext. 12 ٥") == "12"
