from hypothesis import given
from hypothesis import strategies as st

from npistack.nppes.npi import NpiFault, check_npi, is_valid_npi, make_npi, npi_problem


def test_known_values() -> None:
    for good in ("1003000126", "1770626038", "1679576722", "1234567893"):
        assert is_valid_npi(good), good
    assert not is_valid_npi("1234567890")
    assert npi_problem("1234567890") == "NPI 1234567890 fails the check digit (Luhn with prefix 80840)"
    assert npi_problem("123") == "NPI '123' is not 10 digits"
    assert npi_problem("3234567893") == "NPI 3234567893 does not start with 1 or 2"


def test_check_npi_names_the_first_rule_that_fails() -> None:
    assert check_npi("1003000126") is None
    kinds = [
        p.kind if (p := check_npi(v)) else None for v in ("", "123", "3234567899", "0000000000", "1234567890")
    ]
    assert kinds == [
        NpiFault.EMPTY,
        NpiFault.NOT_TEN_DIGITS,
        NpiFault.BAD_PREFIX,  # a valid check digit, but no NPI starts with 3
        NpiFault.BAD_PREFIX,  # the first digit before the check digit
        NpiFault.BAD_CHECK_DIGIT,
    ]
    assert all(npi_problem(v) == p.message for v in ("", "123", "1234567890") if (p := check_npi(v)))


@given(st.integers(min_value=100_000_000, max_value=299_999_999))
def test_make_npi_is_valid_and_one_changed_digit_is_not(body: int) -> None:
    npi = make_npi(str(body))
    assert is_valid_npi(npi)
    last = int(npi[-1])
    assert not is_valid_npi(npi[:-1] + str((last + 1) % 10))


@given(st.text(max_size=12))
def test_never_raises(value: str) -> None:
    assert isinstance(is_valid_npi(value), bool)
