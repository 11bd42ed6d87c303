"""The change feed: what a load changed, per NPI, as events.

Every load after the first (a weekly bundle, a deactivation report, a new monthly full file) decides
for each NPI what happened and records one change: ``created``, ``updated`` (with the fields and their
old and new values), ``deactivated``, ``reactivated``, or ``removed`` (an NPI a new monthly full file
no longer has). The feed (``GET /api/v1/changes``), the webhook bodies and ``npistack changes`` all
show a change as the same event object (``event_payloads``).

Filters (``ChangeFilter``, in ``storage.changes``) are the same for the feed and for webhook
subscriptions.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from npistack.storage.changes import (
    CHANGE_TYPES,
    ChangeFacts,
    ChangeFilter,
    ChangeRow,
    FilterError,
)

__all__ = ["CHANGE_TYPES", "ChangeFacts", "ChangeFilter", "ChangeRow", "FilterError"]
_CURSOR_PREFIX = "c1:"

# -- cursors ------------------------------------------------------------------------------------


def encode_cursor(change_id: int) -> str:
    """An opaque cursor: the position just after change ``change_id``."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{change_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The change id a cursor stands for; raises FilterError for anything else."""
    raw = cursor.strip()
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise FilterError(f"cursor {cursor!r} is not a cursor this API returned") from None
    if not text.startswith(_CURSOR_PREFIX) or not text[len(_CURSOR_PREFIX) :].isdigit():
        raise FilterError(f"cursor {cursor!r} is not a cursor this API returned")
    return int(text[len(_CURSOR_PREFIX) :])


# -- events -------------------------------------------------------------------------------------


def event_object(row: ChangeRow, record: dict[str, Any] | None) -> dict[str, Any]:
    """The event as the feed lists it and as a webhook body carries it."""
    return {
        "id": row.event_id,
        "type": f"provider.{row.change_type}",
        "changeType": row.change_type,
        "npi": f"{row.npi:010d}",
        "version": row.version,
        "changedFields": row.fields,
        "changes": row.diff,
        "release": {"date": row.release_date, "kind": row.release_kind, "loadId": row.load_id},
        "occurredAt": row.created_at,
        "record": record,
    }


def event_payloads(store: Any, change_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Event objects for the given change ids (missing ids are left out), with the new record."""
    from npistack.storage.changes import changes_by_id

    return events_for(store, changes_by_id(store, change_ids))


def events_for(store: Any, rows: Sequence[ChangeRow]) -> dict[int, dict[str, Any]]:
    """Event objects for change rows, each with the provider record as that change left it."""
    from npistack.services.history import records_at
    from npistack.services.providers import _nucc

    records = records_at(store, [(r.npi, r.version) for r in rows if r.version is not None], _nucc())
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        out[r.id] = event_object(r, records.get((r.npi, r.version)) if r.version is not None else None)
    return out


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


# -- pages --------------------------------------------------------------------------------------

PAGE_BATCH = 500  # change rows read (and turned into events) at a time


@dataclass
class ChangePage:
    """A page of the feed: each event serialized (JSON, no newline), the id of the last one (0 when
    empty), and whether more changes follow it."""

    events: list[bytes]
    last_id: int
    more: bool
    nbytes: int


def change_page(store: Any, *, after: int, flt: ChangeFilter, limit: int, max_bytes: int) -> ChangePage:
    """At most ``limit`` events after change ``after``, ending early once their bytes pass
    ``max_bytes`` (the event that passes it is the page's last, so a page always moves on).

    Rows are read ``PAGE_BATCH`` at a time, so memory follows the page's size, not the feed's."""
    from npistack.storage.changes import read_changes

    events: list[bytes] = []
    last, size, extra = after, 0, False
    while len(events) < limit:
        want = min(PAGE_BATCH, limit - len(events))
        rows = read_changes(store, after=last, flt=flt, limit=want + 1)
        extra = len(rows) > want  # a row after this batch exists
        rows = rows[:want]
        objs = events_for(store, rows)
        for i, r in enumerate(rows):
            line = orjson.dumps(objs[r.id])
            events.append(line)
            size += len(line) + 1
            last = r.id
            if size >= max_bytes:
                return ChangePage(events, last, i + 1 < len(rows) or extra, size)
        if not extra:
            break
    return ChangePage(events, last, extra, size)
