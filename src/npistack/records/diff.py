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
are left out of diffs; the published values they come from are in. A provider's diff lists its
document's fields, then its child sets (``child_sets``).
"""

from __future__ import annotations

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


def content_json(doc: dict[str, Any], extras: Extras) -> str:
    """The stored form of a version: ``{"doc": ..., "extras": [[kind, doc], ...]}`` (file order)."""
    items = [[k, orjson.loads(d) if isinstance(d, str) else d] for k, d in extras]
    return orjson.dumps({"doc": without_release(doc), "extras": items}).decode()


def stored_content_json(doc: dict[str, Any], doc_json: str, extras: Sequence[tuple[str, str]]) -> str:
    """``content_json`` of a stored document, pieced together from the JSON text it was parsed from
    (``doc``) and its child rows' JSON text."""
    if "release" in doc and next(reversed(doc)) != "release":  # not as transform writes it
        return content_json(doc, extras)
    body = strip_release(doc_json) if "release" in doc else doc_json
    items = ",".join(f"[{orjson.dumps(k).decode()},{d}]" for k, d in extras)
    return f'{{"doc":{body},"extras":[{items}]}}'


def child_sets(extras: Extras) -> dict[str, list[Any]]:
    """Child rows grouped by kind under their field names, in file order (``diff`` compares them
    as sets)."""
    groups: dict[str, list[Any]] = {}
    for kind, d in extras:
        groups.setdefault(CHILD_FIELDS.get(kind, kind), []).append(
            orjson.loads(d) if isinstance(d, str) else d
        )
    return groups


def _as_set(items: Any) -> Any:
    if type(items) is not list:
        return items
    return sorted(orjson.dumps(_clean(x), option=orjson.OPT_SORT_KEYS) for x in items)


def _clean(value: Any) -> Any:
    """``value`` without derived and provenance keys at any depth (the value itself when it has none)."""
    t = type(value)
    if t is dict:
        if SKIP_KEYS.isdisjoint(value) and not any(type(v) in (dict, list) for v in value.values()):
            return value
        return {k: _clean(v) for k, v in value.items() if k not in SKIP_KEYS}
    if t is list:
        return [_clean(v) for v in value]
    return value


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Field-level differences between two views: ``[{"field", "old", "new"}]`` in field order."""
    out: list[dict[str, Any]] = []
    keys = old if old.keys() == new.keys() else dict.fromkeys([*old, *new])
    for key in [k for k in keys if old.get(k) != new.get(k) and k not in SKIP_KEYS]:
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if type(a) is dict and type(b) is dict:
            out += diff(a, b, path + ".")
            continue
        if key in _CHILD_NAMES and not prefix:
            if _as_set(a) != _as_set(b):
                out.append({"field": path, "old": _clean(a), "new": _clean(b)})
            continue
        ca, cb = _clean(a), _clean(b)
        if ca != cb:
            out.append({"field": path, "old": ca, "new": cb})
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
    return out | extra_states(extras)


def extra_states(extras: Extras) -> set[str]:
    """The states of the secondary practice locations among child rows."""
    out: set[str] = set()
    for kind, d in extras:
        if kind == "location":
            d = orjson.loads(d) if isinstance(d, str) else d
            s = (d.get("std") or {}).get("state") or d.get("state")
            if s:
                out.add(str(s).upper())
    return out


def taxonomies_of(doc: dict[str, Any] | None) -> set[str]:
    return {str(t["code"]) for t in (doc or {}).get("taxonomies") or [] if t.get("code")}
