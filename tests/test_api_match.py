"""POST /api/v1/match over HTTP: results in order, one credit per record, errors in the envelope."""

from __future__ import annotations

from pathlib import Path

from tests.api_support import bearer, client, make_key, sample_store, set_plan


def test_match_over_http_meters_one_credit_per_record(tmp_path: Path) -> None:
    url = sample_store(tmp_path / "s.db")
    set_plan(url, "small", credits=3)
    key = make_key(url, "small")
    body = {
        "records": [
            {"first_name": "Wendy", "last_name": "Oberdick", "state": "TN"},
            {"npi": "1306849450"},
            {"first_name": "Zebulon", "last_name": "Quark", "state": "WY"},
        ]
    }
    with client(url) as api:
        r = api.post("/api/v1/match", headers=bearer(key), json=body)
        assert r.status_code == 200, r.text
        data = r.json()
        assert [d["match_status"] for d in data["data"]] == ["matched", "matched", "no_match"]
        assert data["data"][0]["npi"] == "1659374601"
        assert data["data"][1]["provider_status"] == "deactivated"
        assert data["meta"]["counts"] == {"records": 3, "matched": 2, "ambiguous": 0, "no_match": 1}
        assert r.headers["x-quota-remaining"] == "0"
        r = api.post("/api/v1/match", headers=bearer(key), json={"records": [{"npi": "1659374601"}]})
        assert r.status_code == 403 and r.json()["error"]["code"] == "quota_exceeded"
        r = api.post("/api/v1/match", json=body)
        assert r.status_code == 401
