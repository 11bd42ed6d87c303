"""``/api/v1/npi/{npi}/history``, ``/api/v1/changes`` (JSON and NDJSON, filters, cursors) and
``/api/v1/changes/stats`` over a store with a monthly file and two weekly bundles applied."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from npistack.ingest.load import ingest
from npistack.storage import open_store
from tests.api_support import bearer, client, make_key
from tests.nppes_files import write_bundle
from tests.update_support import (
    INDIVIDUAL,
    NEW_NPI,
    ORGANIZATION,
    STUB,
    TO_DEACTIVATE,
    base_bundle,
    week_one,
    week_one_rows,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    tmp = tmp_path_factory.mktemp("changes")
    url = f"sqlite:///{tmp / 'store.db'}"
    s = open_store(url)
    try:
        ingest(base_bundle(tmp / "base"), s)
        ingest(week_one(tmp / "w1"), s)
        rows, _ = week_one_rows()
        again = list(rows[0])
        again[again.index("500 NEW HOSPITAL DR")] = "600 THIRD HOSPITAL DR"
        ingest(write_bundle(tmp / "w2", [again], start="20261116", end="20261122"), s)
    finally:
        s.close()
    return url, make_key(url)


def test_history(store: tuple[str, str]) -> None:
    url, key = store
    with client(url) as c:
        r = c.get(f"/api/v1/npi/{INDIVIDUAL}/history", headers=bearer(key))
        assert r.status_code == 200, r.text
        body = r.json()
        assert "X-Quota-Remaining" in r.headers
        data = body["data"]
        assert data["npi"] == INDIVIDUAL and data["current"] == 3
        assert [v["changeType"] for v in data["versions"]] == ["initial", "updated", "updated"]
        assert [v["validTo"] for v in data["versions"]] == ["2026-11-15", "2026-11-22", None]
        assert data["versions"][2]["changes"][0] == {
            "field": "practiceLocation.line1",
            "old": "500 NEW HOSPITAL DR",
            "new": "600 THIRD HOSPITAL DR",
        }
        assert data["versions"][2]["record"]["npi"] == INDIVIDUAL
        assert (
            c.get("/api/v1/npi/1234567890/history", headers=bearer(key)).json()["error"]["code"]
            == "invalid_npi"
        )
        assert c.get("/api/v1/npi/1000000004/history", headers=bearer(key)).status_code == 404
        assert c.get(f"/api/v1/npi/{INDIVIDUAL}/history").status_code == 401


def test_feed_lists_every_change_once_in_pages(store: tuple[str, str]) -> None:
    url, key = store
    with client(url) as c:
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": "2", **({"since": cursor} if cursor else {})}
            r = c.get("/api/v1/changes", params=params, headers=bearer(key))
            assert r.status_code == 200, r.text
            body = r.json()
            seen += [(e["npi"], e["changeType"], e["version"]) for e in body["data"]]
            cursor = body["meta"]["nextCursor"]
            assert r.headers["X-Next-Cursor"] == cursor
            pages += 1
            if not body["meta"]["hasMore"]:
                break
        assert pages == 3
        assert seen == sorted(seen, key=lambda e: seen.index(e))  # feed order
        assert len(seen) == len(set(seen)) == 6
        assert sorted(seen) == sorted(
            [
                (INDIVIDUAL, "updated", 2),
                (ORGANIZATION, "updated", 2),
                (TO_DEACTIVATE, "deactivated", 2),
                (STUB, "reactivated", 2),
                (NEW_NPI, "created", 1),
                (INDIVIDUAL, "updated", 3),
            ]
        )
        # polling at the end returns nothing and keeps the cursor
        r = c.get("/api/v1/changes", params={"since": cursor}, headers=bearer(key))
        assert r.json()["data"] == [] and r.json()["meta"]["nextCursor"] == cursor


def test_feed_event_shape(store: tuple[str, str]) -> None:
    url, key = store
    with client(url) as c:
        r = c.get("/api/v1/changes", params={"npi": TO_DEACTIVATE}, headers=bearer(key))
        (event,) = r.json()["data"]
        assert event["id"].startswith("evt_")
        assert event["type"] == "provider.deactivated"
        assert event["release"]["date"] == "2026-11-15" and event["release"]["kind"] == "weekly"
        assert "status" in event["changedFields"]
        assert event["record"]["status"] == "deactivated"
        assert event["record"]["deactivationDate"] == "2026-11-12"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": "created"}, {NEW_NPI}),
        ({"type": "deactivated,reactivated"}, {TO_DEACTIVATE, STUB}),
        ({"npi": [INDIVIDUAL, NEW_NPI]}, {INDIVIDUAL, NEW_NPI}),
        ({"state": "NE"}, {TO_DEACTIVATE}),  # WIEBE practised in Nebraska before the deactivation
        ({"entity_type": "2"}, {ORGANIZATION}),
        ({"taxonomy": "251G00000X"}, {ORGANIZATION}),
        ({"state": "NC", "type": "updated"}, {INDIVIDUAL, ORGANIZATION}),
    ],
)
def test_feed_filters(store: tuple[str, str], params: dict[str, object], expected: set[str]) -> None:
    url, key = store
    with client(url) as c:
        r = c.get("/api/v1/changes", params=params, headers=bearer(key))  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        assert {e["npi"] for e in r.json()["data"]} == expected


@pytest.mark.parametrize(
    "params",
    [
        {"type": "moved"},
        {"npi": "12345"},
        {"state": "California"},
        {"taxonomy": "x"},
        {"entity_type": "3"},
        {"since": "not-a-cursor"},
        {"limit": "0"},
        {"limit": "1001"},
        {"format": "xml"},
    ],
)
def test_feed_bad_requests(store: tuple[str, str], params: dict[str, str]) -> None:
    url, key = store
    with client(url) as c:
        r = c.get("/api/v1/changes", params=params, headers=bearer(key))
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "invalid_changes_request"
        assert r.json()["error"]["message"]
        assert "X-Quota-Remaining" not in r.headers  # refused before charging


def test_ndjson(store: tuple[str, str]) -> None:
    url, key = store
    with client(url) as c:
        r = c.get("/api/v1/changes", params={"format": "ndjson", "limit": "4"}, headers=bearer(key))
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [orjson.loads(x) for x in r.content.splitlines()]
        assert len(lines) == 4 and r.headers["X-Has-More"] == "true"
        rest = c.get(
            "/api/v1/changes",
            params={"since": r.headers["X-Next-Cursor"]},
            headers={**bearer(key), "Accept": "application/x-ndjson"},
        )
        more = [orjson.loads(x) for x in rest.content.splitlines()]
        assert len(more) == 2 and rest.headers["X-Has-More"] == "false"
        assert len({e["id"] for e in lines + more}) == 6


def test_stats(store: tuple[str, str]) -> None:
    url, key = store
    with client(url) as c:
        r = c.get("/api/v1/changes/stats", headers=bearer(key))
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["total"] == 6
        assert data["totals"] == {"created": 1, "updated": 3, "deactivated": 1, "reactivated": 1}
        assert [(x["release"]["date"], x["total"]) for x in data["releases"]] == [
            ("2026-11-15", 5),
            ("2026-11-22", 1),
        ]
        assert data["dataRelease"] == "2026-11-22"
        tail = c.get("/api/v1/changes", params={"since": data["latestCursor"]}, headers=bearer(key))
        assert tail.json()["data"] == []


def test_feed_is_metered(tmp_path: Path, store: tuple[str, str]) -> None:
    url, key = store
    with client(url) as c:
        a = c.get("/api/v1/changes", headers=bearer(key))
        b = c.get("/api/v1/changes", headers=bearer(key))
        assert int(a.headers["X-Quota-Remaining"]) - int(b.headers["X-Quota-Remaining"]) == 1
