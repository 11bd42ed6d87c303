"""Schemathesis over the OpenAPI document: generated requests to every operation of a real server
(uvicorn on loopback, over the 50 real sample rows), checked for server errors and for responses that
break the document (undocumented status codes or content types, bodies that do not fit the schema).

Each case is sent with one of several credentials, so that most reach the handlers and some test the
guards: the right key for the operation (a client key on a plan with credits and requests per minute to
spare, or an admin key for /admin/v1), no key, a garbage key, another scheme, the wrong kind of key.
Generated admin cases may suspend or revoke any key and rewrite any plan, so the test's own keys and
plan are put back before each admin case.

Problems are collected rather than raised at the first one, so one run lists each distinct problem
(operation, check, request, response) and counts every generated case.

The CMS drop-in (``GET /api/``) declares no parameters in the document, so schemathesis can only send it
bare; the last test generates its parameters with Hypothesis directly.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
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

from npistack.api import cms
from npistack.storage.accounts import AccountsDb, Plan
from tests.api_support import ABSENT_NPI, ACTIVE_NPI, ORG_NPI, make_key, sample_store, set_plan, thread_server
from tests.storage_sql import sql_execute, sql_rows

PLAN = "fuzz-unlimited"
CREDITS = RPM = 1_000_000_000
STUB_NPI = "1306849450"  # deactivated (a stub row in the sample)
MIN_CASES = 5000  # issue 14: at least 5,000 cases over every operation, in the plain pytest run
# Examples per operation and generation mode; an operation without inputs has only a few distinct
# cases (one per credential) and negative mode has none for it.
EXAMPLES = {GenerationMode.POSITIVE: 130, GenerationMode.NEGATIVE: 40}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@dataclass
class Api:
    base: str
    url: str
    client_key: str
    admin_key: str
    key_ids: list[int]
    schema: Any


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    url = sample_store(tmp_path_factory.mktemp("schemathesis") / "store.db")
    set_plan(url, PLAN, CREDITS, rpm=RPM, enrichment=True)
    client_key = make_key(url, PLAN, name="fuzz client")
    admin_key = make_key(url, admin=True, name="fuzz admin")
    db = AccountsDb(url)
    try:
        key_ids = [k.id for k in db.list_keys()]
    finally:
        db.close()
    restore_webhooks(url)
    finished_job(url, key_ids[0])  # the client key's (created first)
    # The per-address limit on traffic without a valid key is off: a third of the cases carry none.
    with thread_server(url, jobs_workers=0, api_anonymous_per_minute=0) as base:
        yield Api(
            base, url, client_key, admin_key, key_ids, schemathesis.openapi.from_url(f"{base}/openapi.json")
        )


JOB_ID = "job_00000000000000aa"


def finished_job(url: str, key_id: int) -> None:
    """A succeeded enrichment job of the client key, with its files (for the /api/v1/jobs paths)."""
    from npistack.storage.jobs import JobsDb

    db = JobsDb(url)
    try:
        db.create(job_id=JOB_ID, key_id=key_id, options={}, columns={"npi": "NPI"}, rows_total=1, credits=1)
        db.claim("fixture", lease_s=60)
        db.finish(JOB_ID, "fixture", status="succeeded", rows_done=1, counts={"matched": 1})
    finally:
        db.close()
    folder = Path(url.removeprefix("sqlite:///")).with_suffix(".jobs") / JOB_ID  # NPISTACK_JOBS_DIR's default
    folder.mkdir(parents=True)
    for name in ("input.csv", "result.csv", "review.csv", "errors.csv"):
        (folder / name).write_text(f"NPI\n{ACTIVE_NPI}\n")


def restore_accounts(api: Api) -> None:
    """Undo what generated admin cases may have done to the test's own keys and plan."""
    db = AccountsDb(api.url)
    try:
        db.upsert_plan(Plan(PLAN, CREDITS, RPM, True, "test plan"))
        now = datetime.now(UTC).isoformat()
        for key_id in api.key_ids:
            db.set_key(key_id, now=now, status="active")
    finally:
        db.close()


def credentials(api: Api, path: str) -> st.SearchStrategy[tuple[str, dict[str, str]]]:
    """(name, headers): mostly the right key for the path; else none, garbage, or the wrong kind."""
    admin = path.startswith("/admin/")
    right, wrong = (api.admin_key, api.client_key) if admin else (api.client_key, api.admin_key)
    good = ("right key", {"Authorization": f"Bearer {right}"})
    return st.sampled_from(
        [
            *[good] * 5,
            ("no key", {}),
            ("garbage key", {"Authorization": "Bearer npk_not-a-key-at-all"}),
            ("Basic scheme", {"Authorization": f"Basic {right}"}),
            ("client key" if admin else "admin key", {"Authorization": f"Bearer {wrong}"}),
        ]
    )


# Real values mixed into generated cases (positive mode): the document declares plain strings, and
# random strings are never NPIs or names in the store, so few cases would get past validation.
REAL_NPIS = [ACTIVE_NPI, ORG_NPI, STUB_NPI, ABSENT_NPI]
REAL_QUERIES = {
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


# Path values the handlers act on (the document declares any string), the rest still generated.
def restore_webhooks(url: str) -> None:
    """Subscription 1 and its deliveries 1-3 exist (generated cases may delete them)."""
    from npistack.storage import open_store
    from tests.webhook_support import add_changes

    store = open_store(url)
    try:
        if not sql_rows(store, "SELECT 1 FROM webhook_subscriptions WHERE id = 1"):
            sql_execute(
                store,
                "INSERT INTO webhook_subscriptions (id, url, secret, filters, description, active, created_at,"
                " updated_at) VALUES (1, 'https://example.com/hook', 'whsec_0123456789abcdef0123456789abcdef',"
                " '{}', NULL, 1, '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00')",
            )
        fresh = not sql_rows(store, "SELECT 1 FROM webhook_deliveries")
    finally:
        store.close()
    if fresh:
        add_changes(url, 3)


REAL_PATHS = {
    "GET /admin/v1/webhooks/{webhook_id}": [{"webhook_id": 1}],
    "PATCH /admin/v1/webhooks/{webhook_id}": [{"webhook_id": 1}],
    "DELETE /admin/v1/webhooks/{webhook_id}": [{"webhook_id": 1}],
    "GET /admin/v1/webhooks/{webhook_id}/deliveries": [{"webhook_id": 1}],
    "POST /admin/v1/webhooks/{webhook_id}/replay": [{"webhook_id": 1}],
    "GET /admin/v1/webhooks/deliveries/{delivery_id}": [{"delivery_id": 1}],
    "POST /admin/v1/webhooks/deliveries/{delivery_id}/replay": [{"delivery_id": 1}],
    "POST /admin/v1/keys/{key_id}/{action}": [{"action": a} for a in ("suspend", "resume", "revoke")],
    **{
        f"GET /api/v1/jobs/{{job_id}}{s}": [{"job_id": JOB_ID}] for s in ("", "/result", "/review", "/errors")
    },
}
# Bodies of other media types than JSON (with no generated query, so some cases get through).
REAL_CSV = {"POST /api/v1/jobs/enrich": [f"NPI,First Name,Last Name\n{ACTIVE_NPI},Jon,Dubose\n,Bob,Bisbee\n"]}
REAL_BODIES = {
    "POST /admin/v1/webhooks": [{"url": "https://example.com/h", "filters": {"states": ["CA"]}}],
    "PATCH /admin/v1/webhooks/{webhook_id}": [{"active": True, "description": "x"}],
    "POST /admin/v1/webhooks/{webhook_id}/replay": [{"since": "2000-01-01", "until": "2100-01-01"}],
    "POST /api/v1/npi/bulk": [{"npis": [ACTIVE_NPI]}, {"npis": [*REAL_NPIS, "1234567890"]}],
    "POST /api/v1/verify": [
        {"npi": ACTIVE_NPI, "first_name": "Jon", "last_name": "Dubose", "phone": "2526417700"},
        {"npi": STUB_NPI, "email": "x@gmail.com"},
    ],
    "POST /api/v1/verify/bulk": [{"records": [{"npi": n, "last_name": "DUBOSE"} for n in REAL_NPIS]}],
    # The document declares no body for this operation (see the report); sent anyway.
    "PUT /admin/v1/plans/{name}": [
        {"monthlyCredits": 10, "requestsPerMinute": 5, "enrichment": False, "description": "generated"},
        {"monthlyCredits": 2**63, "requestsPerMinute": 5, "enrichment": True},  # beyond a 64-bit integer
    ],
}


def case_strategy(operation: Any, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """The operation's generated cases, plus (positive mode) cases where a real NPI, query or body
    takes the place of generated values; the rest of each such case is still generated."""
    generated = operation.as_strategy(generation_mode=mode)
    if mode is GenerationMode.NEGATIVE:
        return generated
    real = []
    if "{npi}" in operation.path:
        real += [operation.as_strategy(path_parameters={"npi": n}) for n in REAL_NPIS]
    real += [operation.as_strategy(path_parameters=p) for p in REAL_PATHS.get(operation.label, [])]
    real += [operation.as_strategy(query=q) for q in REAL_QUERIES.get(operation.label, [])]
    real += [
        operation.as_strategy(body=b, media_type="application/json")
        for b in REAL_BODIES.get(operation.label, [])
    ]
    real += [
        operation.as_strategy(body=b, media_type="text/csv", query={})
        for b in REAL_CSV.get(operation.label, [])
    ]
    return st.one_of(generated, *real) if real else generated


@dataclass
class Findings:
    cases: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, mode)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)
    problems: dict[tuple[str, str], str] = field(default_factory=dict)  # (operation, first line) -> report

    def record(self, label: str, case: Any, who: str, response: Any, exc: BaseException) -> None:
        for failure in exc.exceptions if isinstance(exc, FailureGroup) else (exc,):
            title = str(getattr(failure, "title", type(failure).__name__))
            message = str(getattr(failure, "message", failure)).strip()
            key = (label, f"{title}: {message.splitlines()[0] if message else ''}")
            if key in self.problems:
                continue
            request = (
                f"{case.method} {case.formatted_path} query={case.query!r} headers={case.headers!r} ({who})"
            )
            if case.body is not NOT_SET:
                request += f" body={case.body!r}"
            shown = f"{response.status_code} {response.text[:300]}" if response is not None else "-"
            self.problems[key] = (
                f"{label}: {title}\n  {message[:500]}\n  request: {request}\n  response: {shown}"
            )

    def count(self, label: str) -> int:
        return sum(n for (lab, _), n in self.cases.items() if lab == label)


def run_operation(api: Api, operation: Any, mode: GenerationMode, findings: Findings) -> None:
    label = operation.label
    admin = operation.path.startswith("/admin/")
    restore_accounts(api)  # the last admin case may have revoked the client key

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run
        suppress_health_check=list(HealthCheck),
    )
    @given(case=case_strategy(operation, mode), auth=credentials(api, operation.path))
    def one_case(case: Any, auth: tuple[str, dict[str, str]]) -> None:
        who, headers = auth
        if admin:
            restore_accounts(api)
            restore_webhooks(api.url)
        findings.cases[(label, mode.value)] += 1
        response = None
        try:
            response = case.call(headers=headers, timeout=30)
            findings.statuses[(label, response.status_code)] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Failure, FailureGroup) as exc:
            findings.record(label, case, who, response, exc)

    try:
        one_case()
    except Unsatisfiable:
        # Nothing about an operation without inputs (GET /healthz) can be invalid: no negative cases.
        assert mode is GenerationMode.NEGATIVE and not findings.cases[(label, mode.value)], label


def test_schemathesis_finds_no_server_error_and_no_schema_violation(api: Api) -> None:
    operations = [result.ok() for result in api.schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert len(labels) == 33 and "GET /api/" in labels and "PUT /admin/v1/plans/{name}" in labels
    findings = Findings()
    for operation in operations:
        for mode in EXAMPLES:
            run_operation(api, operation, mode, findings)
    restore_accounts(api)

    total = sum(findings.cases.values())
    print(f"\nschemathesis: {total} generated cases over {len(labels)} operations")
    for label in labels:
        statuses = sorted((s, n) for (lab, s), n in findings.statuses.items() if lab == label)
        print(f"  {findings.count(label):4d}  {label}  {statuses}")
    print("\n\n".join(findings.problems.values()))

    assert all(findings.count(label) for label in labels), "an operation got no generated case"
    assert total >= MIN_CASES, f"only {total} generated cases"
    # The handlers were reached, not only the guards in front of them.
    answered = {lab for (lab, s), _ in findings.statuses.items() if s in (200, 201, 202)}
    assert answered == set(labels), set(labels) - answered
    assert {s for (lab, s), _ in findings.statuses.items() if lab == "GET /api/v1/npi/{npi}"} >= {
        200,
        400,
        401,
        404,
    }
    assert not findings.problems, f"{len(findings.problems)} problems:\n\n" + "\n\n".join(
        findings.problems.values()
    )


# -- the CMS drop-in: its parameters, generated here -------------------------------------------

PUNCTUATION = " &':,/-().#\";@*"  # the registry's allowed special characters, the wildcard and @
TEXT = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + PUNCTUATION + "éß一²", max_size=12),
    st.text(alphabet=PUNCTUATION, min_size=1, max_size=4),  # allowed characters, no letter or digit
)
CMS_VALUES: dict[str, st.SearchStrategy[str]] = {
    "number": st.one_of(st.sampled_from(REAL_NPIS), st.text(max_size=11)),
    "enumeration_type": st.sampled_from(["NPI-1", "NPI-2", "npi-1", "NPI-3", ""]),
    "taxonomy_description": st.one_of(st.sampled_from(["Internal Medicine", "Cardio*", "Dentist"]), TEXT),
    "name_purpose": st.sampled_from(["AO", "PROVIDER", "ao", "X"]),
    "first_name": st.one_of(st.sampled_from(["Bob", "JON", "Ro*", "MICHAEL"]), TEXT),
    "use_first_name_alias": st.sampled_from(["True", "False", "false", "maybe"]),
    "last_name": st.one_of(st.sampled_from(["DUBOSE", "SMITH", "GOLD*", "NAGOWSKI"]), TEXT),
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
CMS_PARAMS = st.sets(st.sampled_from(list(CMS_VALUES)), max_size=6).flatmap(
    lambda names: st.fixed_dictionaries({name: CMS_VALUES[name] for name in sorted(names)})
)


def test_cms_parameters_never_give_a_server_error(api: Api) -> None:
    seen: Counter[str] = Counter()
    problems: dict[str, str] = {}

    def check(query: dict[str, str], response: httpx.Response) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        body = response.json()
        if "Errors" in body:
            seen["errors"] += 1
            fields = all(
                set(e) == {"description", "field", "number"}
                and cms.ERRORS.get(e["number"]) == e["description"]
                for e in body["Errors"]
            )
            return None if list(body) == ["Errors"] and body["Errors"] and fields else "malformed Errors body"
        seen["results"] += 1
        if list(body) != ["result_count", "results"] or body["result_count"] != len(body["results"]):
            return "malformed results body"
        if any(r["basic"].get("status") != "A" for r in body["results"]):
            return "an NPI that is not active was listed"
        return None

    # One connection per request, so that a failed request cannot disturb the next one.
    with httpx.Client(base_url=api.base, timeout=30, headers={"Connection": "close"}) as http:

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(params=CMS_PARAMS, version=st.sampled_from(["2.1", "2.1", "2.1", "2.0", None]))
        def one(params: dict[str, str], version: str | None) -> None:
            query = {**params, **({"version": version} if version else {})}
            response = http.get("/api/", params=query)
            seen["requests"] += 1
            problem = check(query, response)
            if problem:
                problems.setdefault(
                    problem, f"GET /api/ {query!r} -> {response.status_code} {response.text[:300]}"
                )

        one()
    print(f"\nCMS endpoint: {dict(seen)}")
    assert seen["errors"] >= 50 and seen["results"] >= 50, seen
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
