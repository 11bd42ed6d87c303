"""What makes an NPI: 10 ASCII digits, the first 1 or 2, the last the check digit (Luhn mod 10 over
``"80840" + NPI``, the ISO issuer prefix for US health IDs).

``check_npi`` is the one rule: the first reason a value is not an NPI (``NpiProblem``: its ``kind``
and a message), or ``None``. ``npi_problem`` is its message; the API maps the kind to its
contract's wording (``api.params.npi_message``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# The 80840 prefix contributes a constant 24 to the Luhn sum of the first nine NPI digits.
_PREFIX_SUM = 24
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # digit sum of 2*d
_DOUBLED_OF = {str(d): _DOUBLED[d] for d in range(10)}
_DIGIT_OF = {str(d): d for d in range(10)}


def check_digit(first9: str) -> int:
    """The check digit that completes a 9-digit NPI body.

    Luhn doubles every other digit from the right: of nine, those at positions 0, 2, 4, 6 and 8.
    Written out digit by digit (a loop took twice as long, and a load checks every NPI of the
    registry)."""
    d, p = _DOUBLED_OF, _DIGIT_OF
    s = first9
    total = (
        _PREFIX_SUM + d[s[0]] + p[s[1]] + d[s[2]] + p[s[3]] + d[s[4]] + p[s[5]] + d[s[6]] + p[s[7]] + d[s[8]]
    )
    return (10 - total % 10) % 10


def is_valid_npi(npi: str) -> bool:
    """True for an NPI: 10 digits, the first 1 or 2, the last the check digit."""
    return check_npi(npi) is None


def make_npi(first9: str) -> str:
    """Append the check digit to a 9-digit body."""
    return first9 + str(check_digit(first9))


class NpiFault(StrEnum):
    """Why a value is not an NPI, in the order they are checked."""

    EMPTY = "empty"
    NOT_TEN_DIGITS = "not_ten_digits"  # not exactly 10 ASCII digits
    BAD_PREFIX = "bad_prefix"  # 10 digits, not starting with 1 or 2
    BAD_CHECK_DIGIT = "bad_check_digit"  # the last digit is not the check digit


@dataclass(frozen=True, slots=True)
class NpiProblem:
    kind: NpiFault
    message: str


def check_npi(value: str) -> NpiProblem | None:
    """The first reason ``value`` is not an NPI, or ``None`` if it is one."""
    if not value:
        return NpiProblem(NpiFault.EMPTY, "NPI is empty")
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return NpiProblem(NpiFault.NOT_TEN_DIGITS, f"NPI {value!r} is not 10 digits")
    if value[0] not in "12":
        return NpiProblem(NpiFault.BAD_PREFIX, f"NPI {value} does not start with 1 or 2")
    if check_digit(value[:9]) != ord(value[9]) - 48:
        return NpiProblem(
            NpiFault.BAD_CHECK_DIGIT, f"NPI {value} fails the check digit (Luhn with prefix 80840)"
        )
    return None


def npi_problem(value: str) -> str | None:
    """Why ``value`` is not a valid NPI (``check_npi``'s message), or ``None`` if it is."""
    problem = check_npi(value)
    return problem.message if problem else None
