"""Hide passwords in URLs before they are printed or logged.

Pure functions, no I/O, usable from every layer::

    >>> redact_url("postgresql://postgres:SuperSecretPw@db:5432/npi")
    'postgresql://postgres:***@db:5432/npi'
    >>> redact_text("store postgresql://u:pw@h/db, cache redis://:pw@r:6379/0")
    'store postgresql://u:***@h/db, cache redis://:***@r:6379/0'

Only the password is replaced; the user name, host, port, path and query stay, so an
operator can still tell which server is meant. A URL without a password is returned
unchanged.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact_text", "redact_url"]

MASK = "***"

# scheme://user:password@host — the user part has no "/", "@" or ":"; the password has
# no "/", "?", "#" or whitespace and runs to the LAST "@" before the host (a password
# may hold an unencoded "@"; a host never does).
_CREDENTIALS = re.compile(
    r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://(?P<user>[^/?#@:\s]*)):"
    r"(?P<password>[^/?#\s]*?)"
    r"@(?=[^@/?#\s]*(?:[/?#\s]|$))"
)


def _mask(match: re.Match[str]) -> str:
    return f"{match.group('prefix')}:{MASK}@"


def redact_url(url: str) -> str:
    """``url`` with the password of its ``scheme://user:password@host`` part replaced by ``***``."""
    return _CREDENTIALS.sub(_mask, url, count=1)


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL in it replaced."""
    return _CREDENTIALS.sub(_mask, text)
