"""What changed for one provider between two versions. Pure functions, no I/O.

A provider's *content* is its stored document without ``release`` (where and when the row was read,
which is provenance, not data) plus its child rows (secondary practice locations, other
organization names, endpoints). Two versions are equal when their documents are equal and their
child sets are equal as sets (row order in a file is not data).

``classify`` names what happened: ``created``, ``updated``, ``deactivated``, ``reactivated`` (or
``removed`` for an NPI a new monthly full file no longer has). ``diff`` lists the fields that differ,
with old and new values: nested objects (``name``, ``practiceLocation``, ...) are compared field by
field (``practiceLocation.line1``); lists (``taxonomies``, ``identifiers``, ``otherNames``, and the
child sets ``secondaryLocations``, ``otherOrganizationNames``, ``endpoints``) are compared as whole
values, because CMS replaces them as a whole. Derived values (the USPS-standardized ``std`` forms)
are left out of diffs; the published values they come from are in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

# Child-row kinds (provider_extras.kind) and the field name they have in a diff.
CHILD_FIELDS = {
    "location": "secondaryLocations",
    "other_name": "otherOrganizationNames",
    "endpoint": "endpoints",
}
_CHILD_NAMES = frozenset(CHILD_FIELDS.values())
SKIP_KEYS = frozenset({"release", "std"})
RELEASE_MARK = ',"release":'

Extras = Sequence[tuple[str, Any]]  # (kind, doc as dict or JSON text)


def strip_release(doc_json: str) -> str:
    """A stored document's JSON without its trailing ``release`` (transform writes it last)."""
    cut = doc_json.rfind(RELEASE_MARK)
    return doc_json[:cut] + "}" if cut > 0 else doc_json


def without_release(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "release"}


def _extra_text(doc: Any) -> str:
    return doc if isinstance(doc, str) else orjson.dumps(doc).decode()


def content_key(doc_json: str, extras: Extras) -> bytes:
    """A 16-byte fingerprint of a provider's content (equal content, equal key)."""
    h = hashlib.blake2b(strip_release(doc_json).encode(), digest_size=16)
    for kind, text in sorted((k, _extra_text(d)) for k, d in extras):
        h.update(b"\x00" + kind.encode() + b"\x01" + text.encode())
    return h.digest()


def content_json(doc: dict[str, Any], extras: Extras) -> str:
    """The stored form of a version: ``{"doc": ..., "extras": [[kind, doc], ...]}`` (file order)."""
    items = [[k, orjson.loads(d) if isinstance(d, str) else d] for k, d in extras]
    return orjson.dumps({"doc": without_release(doc), "extras": items}).decode()


def view(doc: dict[str, Any] | None, extras: Extras) -> dict[str, Any]:
    """The fields a diff compares: the document plus child sets grouped by kind."""
    if doc is None:
        return {}
    out = {k: v for k, v in doc.items() if k not in SKIP_KEYS}
    groups: dict[str, list[Any]] = {}
    for kind, d in extras:
        groups.setdefault(CHILD_FIELDS.get(kind, kind), []).append(
            orjson.loads(d) if isinstance(d, str) else d
        )
    out.update(groups)  # in file order; compared as sets (see diff)
    return out


def _as_set(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    return sorted(orjson.dumps(_clean(x), option=orjson.OPT_SORT_KEYS) for x in items)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in SKIP_KEYS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Field-level differences between two views: ``[{"field", "old", "new"}]`` in field order."""
    out: list[dict[str, Any]] = []
    for key in list(dict.fromkeys([*old, *new])):
        if key in SKIP_KEYS:
            continue
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff(a, b, path + ".")
        elif (_as_set(a) != _as_set(b)) if key in _CHILD_NAMES and not prefix else (_clean(a) != _clean(b)):
            out.append({"field": path, "old": _clean(a), "new": _clean(b)})
    return out


def status_of(doc: dict[str, Any] | None) -> str | None:
    return None if doc is None else str(doc.get("status") or "active")


def classify(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """What happened to a provider, given its documents before and after (either may be None)."""
    if new is None:
        return "removed"
    after = status_of(new)
    if old is None:
        return "deactivated" if after == "deactivated" else "created"
    before = status_of(old)
    if before != "deactivated" and after == "deactivated":
        return "deactivated"
    if before == "deactivated" and after != "deactivated":
        return "reactivated"
    return "updated"


def entity_type_of(doc: dict[str, Any] | None) -> int | None:
    et = (doc or {}).get("entityType")
    return 1 if et == "NPI-1" else 2 if et == "NPI-2" else None


def states_of(doc: dict[str, Any] | None, extras: Extras = ()) -> set[str]:
    """Practice states of a provider: its primary practice location and secondary locations."""
    out: set[str] = set()
    if not doc:
        return out
    loc = doc.get("practiceLocation") or {}
    state = (loc.get("std") or {}).get("state") or loc.get("state")
    if state:
        out.add(str(state).upper())
    for kind, d in extras:
        if kind == "location":
            d = orjson.loads(d) if isinstance(d, str) else d
            s = (d.get("std") or {}).get("state") or d.get("state")
            if s:
                out.add(str(s).upper())
    return out


def taxonomies_of(doc: dict[str, Any] | None) -> set[str]:
    return {str(t["code"]) for t in (doc or {}).get("taxonomies") or [] if t.get("code")}
