"""How published text becomes stored values. Pure functions."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Any

from npistack.errors import NpistackError

UNAVAIL = "<UNAVAIL>"

YES_NO = {"Y": True, "N": False}


class BadRow(NpistackError, ValueError):
    """A row that cannot be used; its message is the quarantine reason."""


@lru_cache(maxsize=32768)
def _iso_date(value: str) -> str:
    if len(value) != 10 or value[2] != "/" or value[5] != "/":
        raise ValueError(value)
    return date(int(value[6:]), int(value[:2]), int(value[3:5])).isoformat()


def iso_date(value: str, column: str) -> str | None:
    """MM/DD/YYYY -> YYYY-MM-DD; '' -> None; anything else is a bad row."""
    if not value:
        return None
    try:
        return _iso_date(value)
    except ValueError:
        raise BadRow(f"impossible date {value!r} in {column!r}") from None


def text(value: str) -> str | None:
    """A published text value: None for empty or <UNAVAIL>."""
    if not value or value == UNAVAIL:
        return None
    return value


def compact(**kw: Any) -> dict[str, Any]:
    """A stored object: keys whose value is None, '' or [] are left out (expand() restores them)."""
    # (falsy values other than None, '' and [], such as False, 0 and {}, are kept)
    return {
        k: v
        for k, v in kw.items()
        if v or (v is not None and v.__class__ is not str and v.__class__ is not list)
    }
