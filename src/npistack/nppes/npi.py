"""The NPI check digit: Luhn mod 10 over ``"80840" + NPI`` (ISO issuer prefix for US health IDs)."""

from __future__ import annotations

# The 80840 prefix contributes a constant 24 to the Luhn sum of the first nine NPI digits.
_PREFIX_SUM = 24
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # digit sum of 2*d


def check_digit(first9: str) -> int:
    """The check digit that completes a 9-digit NPI body."""
    total = _PREFIX_SUM
    for i, ch in enumerate(reversed(first9)):
        d = ord(ch) - 48
        total += _DOUBLED[d] if i % 2 == 0 else d
    return (10 - total % 10) % 10


def is_valid_npi(npi: str) -> bool:
    """True for a 10-digit string whose last digit is the NPI check digit."""
    if len(npi) != 10 or not npi.isascii() or not npi.isdigit() or npi[0] not in "12":
        return False
    return check_digit(npi[:9]) == ord(npi[9]) - 48


def make_npi(first9: str) -> str:
    """Append the check digit to a 9-digit body."""
    return first9 + str(check_digit(first9))


def npi_problem(value: str) -> str | None:
    """Why ``value`` is not a valid NPI, or ``None`` if it is."""
    if not value:
        return "NPI is empty"
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return f"NPI {value!r} is not 10 digits"
    if value[0] not in "12":
        return f"NPI {value} does not start with 1 or 2"
    if check_digit(value[:9]) != ord(value[9]) - 48:
        return f"NPI {value} fails the check digit (Luhn with prefix 80840)"
    return None
