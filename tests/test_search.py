"""The search engine (``services.search``) on every backend: names (exact, wildcard, other names,
nicknames, typos, authorized officials), addresses (same row, purposes, ZIP+4, countries),
taxonomies, status, radius, ranking, and pagination (skip, has_more, cursors)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from random import Random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npistack.errors import StoreNotReady
from npistack.ingest.load import ingest
from npistack.normalize.geo import haversine_miles, zip_info, zip_table
from npistack.records.keys import geo_cell
from npistack.services.search import SearchPage, SearchQuery, decode_cursor, search, taxonomy_codes
from npistack.storage import open_store
from npistack.storage.search import _cell_bound
from tests.nppes_files import SAMPLE, individual, npi, organization, stub, write_bundle
from tests.storage_sql import sql_execute, sql_rows

AUSTIN = (30.2672, -97.7431)  # downtown
MAIL = "Provider Business Mailing Address"
PRACTICE = "Provider Business Practice Location Address"


def mailing(line1: str, city: str, state: str, postal: str, country: str = "") -> dict[str, str]:
    return {
        "Provider First Line Business Mailing Address": line1,
        f"{MAIL} City Name": city,
        f"{MAIL} State Name": state,
        f"{MAIL} Postal Code": postal,
        f"{MAIL} Country Code (If outside U.S.)": country,
    }


def ao(last: str, first: str) -> dict[str, str]:
    return {"Authorized Official Last Name": last, "Authorized Official First Name": first}


N = {n: npi(n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 60)}
ACME, HEART = npi(50, 1), npi(51, 1)


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Any:
    austin = dict(city="AUSTIN", state="TX")
    rows = [
        individual(1, last="SMITH", first="ROBERT", zip="787011234", taxonomy="207RC0000X", **austin),
        individual(2, last="Smith", first="Bob", zip="78705", **austin),
        individual(3, last="SMITHERS", first="ANN", other_last="JONES", other_first="ANN", other_type="1"),
        individual(4, last="BROWN", first="MARY", other_last="SMITH", other_type="1", zip="78758", **austin),
        individual(
            5, last="JOHNSON", first="PAT", taxonomy="2080P0202X", city="DALLAS", state="TX", zip="75201"
        ),
        individual(
            6,
            last="SMITH",
            first="JOHN",
            deactivated="01/01/2020",
            city="LOS ANGELES",
            state="CA",
            zip="90012",
        ),
        individual(7, last="SMYTH", first="ROBERT", city="ROUND ROCK", state="TX", zip="78664"),
        individual(8, last="GARCIA", first="LUIS", **mailing("PO BOX 5", "AUSTIN", "TX", "787460005")),
        individual(
            9,
            last="MÜLLER",
            first="HANS",
            line1="UNTER DEN LINDEN 1",
            line2="",
            city="BERLIN",
            state="",
            zip="10117",
            **{f"{PRACTICE} Country Code (If outside U.S.)": "DE"},
            **mailing("FRIEDRICHSTR 2", "BERLIN", "", "10115", "DE"),
        ),
        organization(50, name="ACME CLINIC LLC", other_org="SMITH FAMILY CLINIC", other_org_type="3"),
        organization(
            51, name="AUSTIN HEART CENTER", zip="78701", city="AUSTIN", state="TX", **ao("SMITH", "ROBERT")
        ),
        stub(60),
    ]
    pl = [[N[8], "233 S WACKER DR", "", "CHICAGO", "IL", "606061234", "US", "3125550100", "", ""]]
    othername = [[ACME, "ACME FORMER NAME INC", "4"]]
    bundle = write_bundle(tmp_path / "b", rows, pl=pl, othername=othername)
    s = open_store(store_url)
    ingest(bundle, s)
    yield s
    s.close()


def find(store: Any, limit: int = 50, **kw: Any) -> list[str]:
    return [h.npi for h in search(store, SearchQuery(**kw), limit=limit).hits]


def hits(store: Any, **kw: Any) -> list[tuple[str, str | None]]:
    return [(h.npi, h.matched_name) for h in search(store, SearchQuery(**kw), limit=50).hits]


def walk(store: Any, query: SearchQuery, limit: int) -> list[str]:
    """Every page by cursor; checks has_more/next_cursor agree on each page."""
    out: list[str] = []
    cursor = None
    for _ in range(1000):
        page = search(store, query, limit=limit, cursor=cursor)
        out += [h.npi for h in page.hits]
        assert (page.next_cursor is not None) == page.has_more
        if not page.has_more:
            return out
        assert len(page.hits) == limit
        cursor = page.next_cursor
    raise AssertionError("the cursor walk does not end")


def test_names_rank_legal_above_other_and_exact_above_prefix(store: Any) -> None:
    assert hits(store, last_name="smith") == [
        (N[1], "legal"),
        (N[2], "legal"),
        (N[6], "legal"),
        (N[4], "other"),  # a former name ranks below every legal-name match
    ]
    assert find(store, last_name="SMITH*") == [N[1], N[2], N[6], N[4], N[3]]  # SMITHERS: a prefix match
    assert find(store, last_name="smithers") == [N[3]]  # without * the whole name must match
    assert hits(store, last_name="JONES") == [(N[3], "other")]
    assert find(store, last_name="müller") == find(store, last_name="MULLER") == [N[9]]
    assert find(store, last_name="SMI*", entity_type="NPI-2") == []  # last names are individuals'


def test_last_and_organization_name_match_either(store: Any) -> None:
    assert hits(store, organization_name="SMITH*") == [(ACME, "other")]  # a DBA
    assert hits(store, organization_name="acme former*") == [(ACME, "other")]  # othername file
    assert hits(store, organization_name="ACME CLINIC LLC") == [(ACME, "legal")]
    assert find(store, organization_name="ACME CLINIC") == []
    assert find(store, last_name="SMITH", organization_name="SMITH*") == [N[1], N[2], N[6], N[4], ACME]
    assert find(store, last_name="SMITH", organization_name="SMITH*", entity_type="NPI-2") == [ACME]
    assert find(store, organization_name="AUSTIN*", entity_type="NPI-1") == []


def test_first_names_and_nicknames(store: Any) -> None:
    assert find(store, last_name="SMITH", first_name="Bob") == [N[2], N[1]]  # Bob first, then Robert
    assert find(store, last_name="SMITH", first_name="ROBERT") == [N[1], N[2]]
    assert find(store, last_name="SMITH", first_name="BOB", nicknames=False) == [N[2]]
    assert find(store, last_name="SMITH", first_name="BO*") == [N[2]]  # no nicknames for a wildcard
    assert find(store, first_name="robert") == [N[1], N[7], N[2]]  # exact first names, then aliases
    assert find(store, last_name="BROWN", first_name="MARY") == [N[4]]
    # last and first name must match the same name row: SMITH is BROWN's former name, with MARY
    assert find(store, last_name="SMITH", first_name="MARY") == [N[4]]


def test_fuzzy_names(store: Any) -> None:
    assert find(store, last_name="SMIHT") == []
    assert hits(store, last_name="SMIHT", fuzzy=True) == [
        (N[1], "legal"),
        (N[2], "legal"),
        (N[6], "legal"),
        (N[4], "other"),
    ]
    # exact matches rank above typo matches (SMYTH is one typo away from SMITH)
    assert find(store, last_name="SMITH", fuzzy=True) == [N[1], N[2], N[6], N[4], N[7]]
    assert find(store, last_name="SMYTH", fuzzy=True) == [N[7], N[1], N[2], N[6], N[4]]
    assert find(store, organization_name="ACME CLNIC LLC", fuzzy=True) == [ACME]
    assert find(store, last_name="JONSHON", fuzzy=True) == [N[5]]  # two typos in a long name
    # SMIT* is one typo from SMYT*: its legal names (SMITH and SMITHERS alike) then its other names
    assert find(store, last_name="SMYT*", fuzzy=True) == [N[7], N[1], N[2], N[3], N[6], N[4]]
    assert find(store, last_name="AMITH", fuzzy=True) == []  # a typo in the first letter is not found


def test_authorized_officials(store: Any) -> None:
    assert hits(store, last_name="JONES", name_purpose="ao") == [(ACME, "ao")]
    assert hits(store, last_name="SMITH", first_name="BOB", name_purpose="ao") == [(HEART, "ao")]
    assert find(store, last_name="SMITH", organization_name="AUSTIN*", name_purpose="ao") == [HEART]
    assert find(store, last_name="SMITH", organization_name="ACME*", name_purpose="ao") == []
    assert find(store, last_name="SMITH", name_purpose="ao", entity_type="NPI-1") == []


def test_address_criteria_hold_for_one_address(store: Any) -> None:
    assert find(store, city="austin") == [N[1], N[2], N[4], N[8], HEART]  # N[8] by its mailing address
    assert find(store, city="AUSTIN", address_purpose="mailing") == [N[8]]
    assert find(store, city="AUSTIN", address_purpose="location") == [N[1], N[2], N[4], HEART]
    assert find(store, city="AUSTIN", address_purpose="primary") == [N[1], N[2], N[4], HEART]
    assert find(store, city="CHICAGO", address_purpose="secondary") == [N[8]]
    assert find(store, city="CHICAGO", address_purpose="primary") == []
    assert find(store, state="IL", city="AUSTIN") == []  # N[8] practises in IL, its mail goes to Austin
    assert find(store, state="TX") == [N[1], N[2], N[4], N[5], N[7], N[8], HEART]
    assert find(store, state="TX", entity_type="NPI-2") == [HEART]
    assert find(store, state="IL", address_purpose="secondary") == [N[8]]


def test_postal_codes(store: Any) -> None:
    assert find(store, postal_code="78701") == [N[1], HEART]  # 5 digits match the ZIP+4s
    assert find(store, postal_code="787011234") == [N[1]]
    assert find(store, postal_code="787019999") == []
    assert find(store, postal_code="78701-1234") == [N[1]]
    assert find(store, postal_code="7870") == [N[1], N[2], HEART]  # fewer digits: a prefix
    assert find(store, postal_code="787*") == [N[1], N[2], N[4], N[8], HEART]
    assert find(store, postal_code="606*", address_purpose="secondary") == [N[8]]


def test_foreign_addresses(store: Any) -> None:
    assert find(store, country_code="DE") == [N[9]]
    assert find(store, country_code="de", city="BERLIN", postal_code="10117") == [N[9]]
    assert find(store, postal_code="10115", address_purpose="mailing") == [N[9]]
    assert find(store, postal_code="10115", address_purpose="primary") == []
    assert find(store, country_code="US", city="BERLIN") == []
    assert N[9] not in find(store, country_code="US", address_purpose="primary")


def test_taxonomies(store: Any) -> None:
    assert find(store, taxonomy_code="207rc0000x") == [N[1]]
    assert find(store, taxonomy_description="Cardiovascular Disease") == [N[1]]  # a specialization
    assert find(store, taxonomy_description="internal medicine, cardiovascular disease") == [N[1]]
    assert find(store, taxonomy_description="Cardiology") == [N[5]]  # a word of "Pediatric Cardiology"
    assert find(store, taxonomy_description="Pediatric Card*") == [N[5]]
    assert find(store, taxonomy_description="Cardiovascular*") == [N[1]]
    everyone_internal = [N[n] for n in (1, 2, 3, 4, 6, 7, 8, 9)]
    assert find(store, taxonomy_description="Internal Medicine") == everyone_internal  # the classification
    assert find(store, taxonomy_code="207R00000X", taxonomy_description="Cardiovascular Disease") == []
    assert find(store, taxonomy_description="Quantum Healing") == []
    assert "207RC0000X" in taxonomy_codes("Cardiovascular Disease Physician")  # the display name
    assert "2084V0102X" in taxonomy_codes("neurology")  # Vascular Neurology: a word of a specialization
    assert "2084P0800X" not in taxonomy_codes("Neurology")  # not the "Psychiatry & Neurology" psychiatrists
    assert "207X00000X" in taxonomy_codes("Orthopaedic")  # nothing equals it: classification words count


def test_status_entity_and_number(store: Any) -> None:
    assert find(store, last_name="SMITH", status="active") == [N[1], N[2], N[4]]
    assert find(store, last_name="SMITH", status="deactivated") == [N[6]]
    assert find(store, status="deactivated") == [N[6], N[60]]  # the stub too
    assert find(store, entity_type="NPI-2") == [ACME, HEART]
    assert find(store, number=N[5]) == [N[5]]
    assert find(store, number=N[5], state="CA") == []
    assert find(store, number=N[1], last_name="SMITH") == [N[1]]
    assert len(find(store)) == 12  # no criteria: everything, by NPI


def test_radius(store: Any) -> None:
    page = search(store, SearchQuery(near=AUSTIN, radius_miles=10), limit=10)
    got = [(h.npi, h.distance_miles) for h in page.hits]
    expect = []
    for n, z in ((N[1], "78701"), (HEART, "78701"), (N[2], "78705"), (N[4], "78758")):
        info = zip_info(z)
        assert info is not None
        expect.append((n, round(haversine_miles(*AUSTIN, info.lat, info.lon), 2)))
    assert got == expect  # nearest first, NPI breaks ties; N[8]'s mailing address does not count
    assert [d for _, d in got] == [0.28, 0.28, 1.56, 7.83]
    assert find(store, near=AUSTIN, radius_miles=20)[-1] == N[7]  # Round Rock, 17.7 miles
    assert find(store, near=AUSTIN, radius_miles=10, last_name="SMITH") == [N[1], N[2], N[4]]
    assert find(store, near=AUSTIN, radius_miles=20, last_name="SMITH", fuzzy=True) == [
        N[1],
        N[2],
        N[4],
        N[7],
    ]
    assert find(store, near=AUSTIN, radius_miles=10, entity_type="NPI-2") == [HEART]
    assert find(store, near=AUSTIN, radius_miles=10, postal_code="78705") == [N[2]]
    assert find(store, near=AUSTIN, radius_miles=0.1) == []


def test_pagination_skip_has_more_and_cursor(store: Any) -> None:
    q = SearchQuery(last_name="SMITH*")
    everything = [N[1], N[2], N[6], N[4], N[3]]
    first = search(store, q, limit=2)
    assert [h.npi for h in first.hits] == everything[:2] and first.has_more and first.next_cursor
    second = search(store, q, limit=2, cursor=first.next_cursor)
    assert [h.npi for h in second.hits] == everything[2:4] and second.has_more
    third = search(store, q, limit=2, cursor=second.next_cursor)
    assert [h.npi for h in third.hits] == everything[4:] and not third.has_more and third.next_cursor is None
    assert [h.npi for h in search(store, q, limit=2, skip=2).hits] == everything[2:4]
    assert search(store, q, limit=5) == SearchPage(
        search(store, q, limit=5).hits, False, None
    )  # exactly full
    assert search(store, q, limit=4).has_more
    assert search(store, q, limit=2, skip=5) == SearchPage([], False, None)
    for query in (q, SearchQuery(near=AUSTIN, radius_miles=20), SearchQuery(state="TX")):
        full = [h.npi for h in search(store, query, limit=50).hits]
        for limit in (1, 2, 3):
            assert walk(store, query, limit) == full


def test_impossible_queries_raise_value_error(store: Any) -> None:
    cases = {
        "radius_miles": SearchQuery(radius_miles=5),
        "near": SearchQuery(near=(30.0, -97.0)),
        "address_purpose": SearchQuery(near=AUSTIN, radius_miles=5, address_purpose="mailing"),
        "status": SearchQuery(status="retired"),
        "entity_type": SearchQuery(entity_type="NPI-3"),
        "last_name": SearchQuery(last_name="S*"),
        "number": SearchQuery(number="12345"),
        "name_purpose": SearchQuery(last_name="SMITH", name_purpose="owner"),
    }
    for field, query in cases.items():
        with pytest.raises(ValueError, match=f"^{field}: "):
            search(store, query, limit=10)
    q = SearchQuery(last_name="SMITH*")
    for bad in ("garbage!", "e30", ""):
        with pytest.raises(ValueError, match="^cursor: does not decode"):
            search(store, q, limit=2, cursor=bad)
    other = search(store, SearchQuery(state="TX"), limit=1).next_cursor
    assert other is not None
    with pytest.raises(ValueError, match="^cursor: belongs to a different search"):
        search(store, q, limit=2, cursor=other)
    assert decode_cursor(other, SearchQuery(state="TX"))[2] == int(N[1])


def test_a_store_without_the_search_index_says_to_reload(store: Any) -> None:
    sql_execute(store, "DROP TABLE provider_name_keys")  # as in a store loaded before search existed
    with pytest.raises(StoreNotReady, match="npistack ingest --force"):
        search(store, SearchQuery(last_name="SMIHT", fuzzy=True), limit=5)


# -- the real sample rows ----------------------------------------------------------------------


@pytest.fixture
def sample(store_url: str) -> Any:
    s = open_store(store_url)
    ingest(SAMPLE, s)
    yield s
    s.close()


def _sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_sample_rows(sample: Any) -> None:
    rows = _sample_rows()
    for code in ("207R00000X", "207Q00000X", "174400000X", "208000000X"):
        expect = sorted(
            r["NPI"]
            for r in rows
            if any(r[f"Healthcare Provider Taxonomy Code_{i}"] == code for i in range(1, 16))
        )
        assert find(sample, taxonomy_code=code) == expect, code  # any slot, not only the primary
    assert find(sample, last_name="DUBOSE") == ["1114920162"]
    assert hits(sample, last_name="MUDDER") == [("1669475612", "other")]
    assert find(sample, last_name="van houten*") == ["1508869553"]  # VAN HOUTEN-SAUTER
    assert find(sample, last_name="anderson*") == ["1922001973"]
    assert hits(sample, last_name="ANDERSON", name_purpose="ao") == [("1023011178", "ao")]
    assert find(sample, organization_name="AZAR/FILIPOV*") == ["1700889755"]
    assert find(sample, postal_code="554*") == ["1164425112", "1750384707"]
    assert find(sample, postal_code="55431", address_purpose="primary") == ["1750384707"]
    assert find(sample, city="o'fallon") == find(sample, city="O FALLON") == ["1205839354"]
    assert find(sample, status="deactivated") == sorted(r["NPI"] for r in rows if not r["Entity Type Code"])
    assert find(sample, first_name="jon", last_name="dubose", state="NC") == ["1114920162"]
    ny = sorted(r["NPI"] for r in rows if "NY" in (r[f"{MAIL} State Name"], r[f"{PRACTICE} State Name"]))
    assert find(sample, state="NY") == ny
    assert walk(sample, SearchQuery(state="NY"), 3) == ny


# -- cursor walks equal skip paging on random data -------------------------------------------

LASTS = ("SMITH", "SMYTHE", "SMITHSON", "SMALL", "JONES", "JONAS", "LEE")
FIRSTS = ("ROBERT", "BOB", "ANN", "MARY", "LEE")
PLACES = tuple(  # (city, state, ZIP) of every ZIP within 80 miles of Austin, and Boston
    (z.city, z.state, z.zip5)
    for z in sorted(zip_table().values(), key=lambda z: z.zip5)
    if z.zip_type == "STANDARD" and haversine_miles(*AUSTIN, z.lat, z.lon) <= 80
) + (("BOSTON", "MA", "02114"),)
CODES = ("207R00000X", "207RC0000X", "363LF0000X")


@pytest.fixture
def random_store(store_url: str, tmp_path: Path) -> Any:
    rng = Random(7)
    rows: list[list[str]] = []
    for n in range(1, 151):
        city, state, zip5 = rng.choice(PLACES)
        kw: dict[str, str] = dict(city=city, state=state, zip=zip5, taxonomy=rng.choice(CODES))
        if rng.random() < 0.3:
            kw.update(other_last=rng.choice(LASTS), other_first=rng.choice(FIRSTS), other_type="1")
        if rng.random() < 0.1:
            kw["deactivated"] = "02/02/2022"
        if rng.random() < 0.2:
            rows.append(organization(n, name=f"{rng.choice(LASTS)} CLINIC", city=city, state=state, zip=zip5))
        else:
            rows.append(individual(n, last=rng.choice(LASTS), first=rng.choice(FIRSTS), **kw))
    pl = []
    for r in rows:  # secondary practice locations: a provider's nearest location may be any of them
        for _ in range(rng.choice((0, 0, 1, 2))):
            city, state, zip5 = rng.choice(PLACES)
            pl.append([r[0], "1 ELM ST", "", city, state, zip5, "US", "", "", ""])
    s = open_store(store_url)
    ingest(write_bundle(tmp_path / "r", rows, pl=pl), s)
    yield s
    s.close()


QUERIES = st.builds(
    SearchQuery,
    last_name=st.sampled_from([None, "SMITH", "SM*", "JONES", "JON*", "LEE"]),
    first_name=st.sampled_from([None, None, "BOB", "ROB*"]),
    organization_name=st.sampled_from([None, None, "SMITH*", "JONES CLINIC"]),
    fuzzy=st.booleans(),
    state=st.sampled_from([None, "TX", "MA"]),
    taxonomy_code=st.sampled_from([None, None, "207R00000X"]),
    status=st.sampled_from([None, "active"]),
    near=st.sampled_from([None, AUSTIN]),
).map(lambda q: q if q.near is None else SearchQuery(**{**q.__dict__, "radius_miles": 20.0}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=QUERIES, limit=st.integers(1, 7))
def test_cursor_walk_equals_skip_paging(random_store: Any, query: SearchQuery, limit: int) -> None:
    full = [h.npi for h in search(random_store, query, limit=1000).hits]
    assert len(full) == len(set(full))
    by_skip: list[str] = []
    for skip in range(0, len(full) + limit, limit):
        page = search(random_store, query, limit=limit, skip=skip)
        by_skip += [h.npi for h in page.hits]
        assert page.has_more == (skip + limit < len(full))
    assert by_skip == full
    assert walk(random_store, query, limit) == full


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    centre=st.tuples(st.floats(29.5, 31.0), st.floats(-98.5, -97.0)) | st.just((42.36, -71.06)),
    miles=st.sampled_from([1.0, 5.0, 20.0, 60.0, 250.0]),
    limit=st.integers(1, 9),
)
def test_radius_equals_brute_force(
    random_store: Any, centre: tuple[float, float], miles: float, limit: int
) -> None:
    best: dict[int, float] = {}
    for n, lat, lon in sql_rows(
        random_store,
        "SELECT npi, lat, lon FROM provider_locations WHERE purpose <> 'mailing' AND lat IS NOT NULL",
    ):
        d = haversine_miles(*centre, lat, lon)
        if d <= miles and d < best.get(n, math.inf):
            best[n] = d
    expect = [(str(n), round(d, 2)) for n, d in sorted(best.items(), key=lambda kv: (kv[1], kv[0]))]
    query = SearchQuery(near=centre, radius_miles=miles)
    assert [(h.npi, h.distance_miles) for h in search(random_store, query, limit=1000).hits] == expect
    assert walk(random_store, query, limit) == [n for n, _ in expect]


@given(
    lat=st.floats(-89.9, 89.9),
    lon=st.floats(-180, 180),
    dlat=st.floats(-3, 3),
    dlon=st.floats(-4, 4),
)
def test_cell_bound_is_a_lower_bound(lat: float, lon: float, dlat: float, dlon: float) -> None:
    plat = max(-89.99, min(89.99, lat + dlat))
    plon = (lon + dlon + 180.0) % 360.0 - 180.0
    assert _cell_bound(lat, lon, geo_cell(plat, plon)) <= haversine_miles(lat, lon, plat, plon)
