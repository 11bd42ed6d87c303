"""Schemathesis over the OpenAPI document: generated requests to every operation of a real server
(uvicorn on loopback, over the 50 real sample rows), checked for server errors and for responses that
break the document (status codes, content types, bodies).

Every case is sent with one of several credentials, so that most reach the handlers and some test the
guards: the right key for the operation (a client key on a plan with credits and requests per minute to
spare, an admin key for /admin/v1), no key, a garbage key, and the wrong kind of key. Admin cases may
suspend or revoke any key and rewrite any plan, so the test keys and plan are put back before each case.

Failures are collected rather than raised at the first one, so one run lists every distinct problem
(operation, check, request, status and body), and the number of generated cases is counted.

The CMS drop-in (``GET /api/``) declares no parameters in the document, so schemathesis can only send
it bare; its parameters are generated here with Hypothesis directly (last test).
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.core.failures import Failure, FailureGroup

from npistack.services import cms
from npistack.storage.accounts import AccountsDb, Plan
from tests.api_support import ABSENT_NPI, ACTIVE_NPI, ORG_NPI, make_key, sample_store, set_plan, thread_server

PLAN = "fuzz-unlimited"
STUB_NPI = "1306849450"  # deactivated (a stub row in the sample)
CREDITS, RPM = 1_000_000_000, 1_000_000_000
MIN_CASES = 300
# Examples per operation and generation mode (operations without inputs give one case each).
EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 25}

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@dataclass
class Fixture:
    base: str
    url: str
    client_key: str
    admin_key: str
    key_ids: list[int]
    schema: Any


@dataclass
class Findings:
    cases: Counter[str] = field(default_factory=Counter)
    by_mode: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # (operation, first line) -> report

    def record(self, label: str, case: Any, response: Any, exc: BaseException) -> None:
        problems = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
        for problem in problems:
            title = str(getattr(problem, "title", type(problem).__name__))
            message = str(getattr(problem, "message", problem)).strip()
            key = (label, f"{title}: {message.splitlines()[0] if message else ''}")
            if key in self.failures:
                continue
            body = response.text[:400] if response is not None else ""
            status = response.status_code if response is not None else "-"
            request = (
                f"{case.method} {case.formatted_path} query={case.query!r} headers={_shown(case.headers)!r}"
            )
            if case.body is not NOT_SET:
                request += f" body={case.body!r}"
            self.failures[key] = (
                f"{label}: {title}\n  {message[:600]}\n  request: {request}\n  response: {status} {body}"
            )


def _shown(headers: dict[str, Any] | None) -> dict[str, Any]:
    return {k: ("<key>" if k.lower() == "authorization" else v) for k, v in (headers or {}).items()}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    url = sample_store(tmp_path_factory.mktemp("schemathesis") / "store.db")
    set_plan(url, PLAN, CREDITS, rpm=RPM, enrichment=True)
    client_key = make_key(url, PLAN, name="fuzz client")
    admin_key = make_key(url, admin=True, name="fuzz admin")
    db = AccountsDb(url)
    try:
        key_ids = [k.id for k in db.list_keys()]
    finally:
        db.close()
    with thread_server(url) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        yield Fixture(base, url, client_key, admin_key, key_ids, schema)


def restore_accounts(url: str, key_ids: list[int]) -> None:
    """Undo what generated admin cases may have done to the test's own keys and plan."""
    db = AccountsDb(url)
    try:
        db.upsert_plan(Plan(PLAN, CREDITS, RPM, True, "test plan"))
        now = datetime.now(UTC).isoformat()
        for key_id in key_ids:
            db.set_key(key_id, now=now, status="active")
    finally:
        db.close()


def credentials(fx: Fixture, path: str) -> st.SearchStrategy[dict[str, str]]:
    """Mostly the right key for the path; sometimes none, garbage, or the wrong kind of key."""
    right, wrong = (
        (fx.admin_key, fx.client_key) if path.startswith("/admin/") else (fx.client_key, fx.admin_key)
    )
    good = {"Authorization": f"Bearer {right}"}
    return st.sampled_from(
        [
            good,
            good,
            good,
            good,
            good,
            {},
            {"Authorization": "Bearer npk_not-a-key-at-all"},
            {"Authorization": f"Basic {right}"},
            {"Authorization": f"Bearer {wrong}"},
        ]
    )


# Real values to mix into generated cases: the document declares plain strings, and random strings
# are never real NPIs or names in the store, so without these few cases would get past validation.
REAL_PATH = {"npi": [ACTIVE_NPI, ORG_NPI, STUB_NPI, ABSENT_NPI]}
REAL_QUERY = {
    "GET /api/v1/providers/search": [
        {"last_name": "DUBOSE"},
        {"last_name": "GOLD*", "state": "NY"},
        {"organization_name": "CUMBERLAND*"},
        {"city": "Houston", "state": "TX", "status": "active"},
        {"taxonomy_description": "Internal Medicine", "limit": "5"},
        {"first_name": "Bob", "last_name": "BISBEE"},
        {"postal_code": "27886", "entity_type": "NPI-1"},
        {"near": "27886", "radius_miles": "50"},
    ],
}
REAL_BODY = {
    "POST /api/v1/npi/bulk": [
        {"npis": [ACTIVE_NPI]},
        {"npis": [ACTIVE_NPI, ORG_NPI, STUB_NPI, ABSENT_NPI, "1234567890"]},
    ],
    "PUT /admin/v1/plans/{name}": [
        {"monthlyCredits": 10, "requestsPerMinute": 5, "enrichment": False, "description": "generated"},
    ],
}


def case_strategy(operation: Any, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """The operation's generated cases, plus (positive mode) cases with real NPIs, names and bodies
    in place of some generated values; the rest of each case is still generated."""
    generated = operation.as_strategy(generation_mode=mode)
    if mode is GenerationMode.NEGATIVE:
        return generated
    label = operation.label
    real = []
    if "{npi}" in operation.path:
        real += [operation.as_strategy(path_parameters={"npi": n}) for n in REAL_PATH["npi"]]
    real += [operation.as_strategy(query=q) for q in REAL_QUERY.get(label, [])]
    real += [operation.as_strategy(body=b, media_type="application/json") for b in REAL_BODY.get(label, [])]
    return st.one_of(generated, *real) if real else generated


def run_operation(fx: Fixture, operation: Any, mode: GenerationMode, findings: Findings) -> None:
    label = operation.label

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=case_strategy(operation, mode), auth=credentials(fx, operation.path))
    def one_case(case: Any, auth: dict[str, str]) -> None:
        if operation.path.startswith("/admin/"):
            restore_accounts(fx.url, fx.key_ids)
        findings.cases[label] += 1
        findings.by_mode[(label, mode.value)] += 1
        response = None
        try:
            response = case.call(headers=auth, timeout=30)
            findings.statuses[(label, response.status_code)] += 1
            case.validate_response(response, checks=CHECKS, headers=auth)
        except (Failure, FailureGroup) as exc:
            findings.record(label, case, response, exc)

    try:
        one_case()
    except Unsatisfiable:
        # Nothing can be invalid about an operation without inputs (GET /healthz): no negative cases.
        assert mode is GenerationMode.NEGATIVE, label
        assert findings.by_mode[(label, mode.value)] == 0, label


def test_schemathesis_finds_no_server_error_and_no_schema_violation(api: Fixture) -> None:
    findings = Findings()
    operations = [result.ok() for result in api.schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert "GET /api/v1/providers/search" in labels and "POST /admin/v1/keys" in labels
    for operation in operations:
        for mode in EXAMPLES:
            run_operation(api, operation, mode, findings)
    restore_accounts(api.url, api.key_ids)

    total = sum(findings.cases.values())
    print(f"schemathesis: {total} generated cases over {len(labels)} operations")
    for label in sorted(labels):
        codes = sorted((s, n) for (lab, s), n in findings.statuses.items() if lab == label)
        print(f"  {findings.cases[label]:4d}  {label}  statuses {codes}")
    for report in findings.failures.values():
        print(report)
    assert set(findings.cases) == labels, "an operation got no generated case"
    assert total >= MIN_CASES, f"only {total} generated cases"
    # The handlers were reached, not only the guards.
    reached = {lab for (lab, s), _ in findings.statuses.items() if s == 200}
    assert {"GET /api/v1/npi/{npi}", "GET /api/v1/providers/search", "GET /admin/v1/keys"} <= reached
    assert not findings.failures, f"{len(findings.failures)} problems:\n\n" + "\n\n".join(
        findings.failures.values()
    )


# -- the CMS drop-in: its parameters, generated here -------------------------------------------

PUNCTUATION = " &':,/-().#\";@*"  # the registry's allowed special characters, the wildcard and @
TEXT = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + PUNCTUATION + "éß一²", max_size=12),
    st.text(alphabet=PUNCTUATION, min_size=1, max_size=4),  # allowed characters, but no letter or digit
)
CMS_VALUES: dict[str, st.SearchStrategy[str]] = {
    "number": st.one_of(st.sampled_from([ACTIVE_NPI, "1306849450", "1234567893"]), st.text(max_size=11)),
    "enumeration_type": st.sampled_from(["NPI-1", "NPI-2", "npi-1", "NPI-3", ""]),
    "taxonomy_description": st.one_of(st.sampled_from(["Internal Medicine", "Cardio*", "Dentist"]), TEXT),
    "name_purpose": st.sampled_from(["AO", "PROVIDER", "ao", "X"]),
    "first_name": st.one_of(st.sampled_from(["Bob", "JON", "Ro*"]), TEXT),
    "use_first_name_alias": st.sampled_from(["True", "False", "false", "maybe"]),
    "last_name": st.one_of(st.sampled_from(["DUBOSE", "SMITH", "GOLD*"]), TEXT),
    "organization_name": st.one_of(st.sampled_from(["CUMBERLAND*", "ADR LLC"]), TEXT),
    "address_purpose": st.sampled_from(["LOCATION", "MAILING", "PRIMARY", "SECONDARY", "other"]),
    "city": st.one_of(st.sampled_from(["Houston", "Tarboro", "New Y*"]), TEXT),
    "state": st.one_of(st.sampled_from(["NC", "TX", "ny"]), st.text(max_size=3)),
    "postal_code": st.one_of(
        st.sampled_from(["27886", "278862011", "27*", "60601-1234"]), st.text(max_size=10)
    ),
    "country_code": st.sampled_from(["US", "CA", "us", "USA", "1"]),
    "limit": st.one_of(st.integers(-5, 500).map(str), st.text(max_size=4)),
    "skip": st.one_of(st.integers(-5, 1200).map(str), st.text(max_size=4)),
    "pretty": st.sampled_from(["on", "", "false"]),
}


def test_cms_parameters_never_give_a_server_error(api: Fixture) -> None:
    seen: Counter[str] = Counter()
    problems: dict[str, str] = {}
    # One connection per request: a failed request cannot disturb the next one.
    with httpx.Client(base_url=api.base, timeout=30, headers={"Connection": "close"}) as http:

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            params=st.dictionaries(st.sampled_from(list(CMS_VALUES)), st.just(""), max_size=6).flatmap(
                lambda d: st.fixed_dictionaries({k: CMS_VALUES[k] for k in d})
            ),
            version=st.sampled_from(["2.1", "2.1", "2.1", "2.0", None]),
        )
        def one(params: dict[str, str], version: str | None) -> None:
            query = {**params, **({"version": version} if version else {})}
            response = http.get("/api/", params=query)
            if response.status_code != 200:
                problems.setdefault(f"HTTP {response.status_code}", f"{query!r} -> {response.text[:300]}")
                return
            body = response.json()
            if "Errors" in body:
                seen["errors"] += 1
                if not (
                    list(body) == ["Errors"]
                    and body["Errors"]
                    and all(
                        set(e) == {"description", "field", "number"} and e["number"] in cms.ERRORS
                        for e in body["Errors"]
                    )
                ):
                    problems.setdefault("bad Errors body", f"{query!r} -> {body!r}")
            else:
                seen["results"] += 1
                if list(body) != ["result_count", "results"] or body["result_count"] != len(body["results"]):
                    problems.setdefault("bad results body", f"{query!r} -> {body!r}")
                if any(r["basic"].get("status") != "A" for r in body["results"]):
                    problems.setdefault("deactivated NPI listed", f"{query!r}")

        one()
    print(f"CMS endpoint: {sum(seen.values())} generated requests, {dict(seen)}")
    assert seen["errors"] and seen["results"]
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
