"""The match model: estimated from the data, it keeps one person whole and two people apart."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from cdm_assets.config import load_config
from cdm_assets.domain.identity.match_model import ensure_match_model, model_settings
from cdm_assets.domain.identity.match_model.blocking import BlockingRule
from cdm_assets.domain.identity.match_model.comparisons import (
    birth_date,
    comparisons_for,
    first_name,
    identifier,
    last_name,
)
from cdm_assets.domain.identity.match_model.expectation_maximisation import expectation_maximisation, starting_m
from cdm_assets.domain.identity.match_model.parameters import load_model
from cdm_assets.domain.identity.match_model.scoring import first_name_given_surname
from cdm_assets.domain.identity.match_model.training import trained_comparisons
from cdm_assets.domain.identity.match_model.u_probabilities import estimate_u
from cdm_assets.domain.identity.resolution import assign_ids_from_graph, build_graph, run_identity_resolution
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets.sample import generate
from cdm_assets_tests.conftest import write_text
from cdm_assets_tests.plans import customer_tables, entity_of

CUSTOMER_TABLES = customer_tables()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.identity_quality import sample_config  # noqa: E402


def test_em_recovers_known_m_and_the_share_of_matches_from_generated_pairs():
    rng = np.random.default_rng(7)
    true_m = [np.array([0.85, 0.10, 0.05]), np.array([0.90, 0.04, 0.06]), np.array([0.70, 0.30])]
    u = [np.array([0.01, 0.04, 0.95]), np.array([0.001, 0.01, 0.989]), np.array([0.05, 0.95])]
    pairs, share = 200_000, 0.3
    is_match = rng.random(pairs) < share
    columns = []
    for m_levels, u_levels in zip(true_m, u):
        from_m = rng.choice(len(m_levels), size=pairs, p=m_levels)
        from_u = rng.choice(len(u_levels), size=pairs, p=u_levels)
        columns.append(np.where(is_match, from_m, from_u))
    columns[2][rng.random(pairs) < 0.2] = -1  # a fifth of the pairs cannot compare the third field
    patterns, counts = np.unique(np.column_stack(columns), axis=0, return_counts=True)

    m, estimated_share = expectation_maximisation(
        patterns, counts.astype(float), u, [True, True, True], [starting_m(len(level)) for level in true_m]
    )

    assert estimated_share == pytest.approx(share, abs=0.01)
    for estimated, expected in zip(m, true_m):
        assert np.abs(estimated - expected).max() < 0.02


CRM_HEADER = (
    '"crm_id","first_name","last_name","email","phone","birth_date","street","zip","city","country","created_at"\n'
)
SHOP_HEADER = '"account_id","full_name","email_address","mobile","created_at","loyalty_opt_in"\n'


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    """A 3,000-person sample plus a few people written to test the model's judgement."""
    out = tmp_path_factory.mktemp("model")
    generate(persons=3000, seed=11, out=out)
    write_text(
        out / "landing/crm/zz_people.csv",
        CRM_HEADER
        # one person, a mobile in the CRM and a landline in the webshop
        + '"T1","Griet","Vandermeulen","griet.vandermeulen@example.be","+32 470 11 22 33","1971-05-14","Kerkstraat 9","9000","Gent","BE","2023-01-01T00:00:00"\n'
        # two sisters sharing the family inbox and the address
        + '"T2","Anna","Verhoeven","familie.verhoeven@example.nl","+31 6 11112222","1988-02-03","Dorpsstraat 5","1234 AB","Ede","NL","2023-01-01T00:00:00"\n'
        + '"T3","Marloes","Verhoeven","familie.verhoeven@example.nl","+31 6 33334444","1991-09-30","Dorpsstraat 5","1234 AB","Ede","NL","2023-01-01T00:00:00"\n'
        # twins: one birth date, one address, one inbox, two first names
        + '"T4","Bram","Oosterhuis","oosterhuis.thuis@example.nl","","2004-06-06","Laan 12","4321 CD","Zwolle","NL","2023-01-01T00:00:00"\n'
        + '"T5","Stijn","Oosterhuis","oosterhuis.thuis@example.nl","","2004-06-06","Laan 12","4321 CD","Zwolle","NL","2023-01-01T00:00:00"\n'
        # a father and, without a first name, another Brinkhorst at his address with an inbox of their own
        + '"T6","Pieter","Brinkhorst","pieter.brinkhorst@example.nl","+31 6 55556666","1961-11-02","Kade 3","7411 KK","Deventer","NL","2023-01-01T00:00:00"\n'
        + '"T7","","Brinkhorst","sanne.b@example.nl","","","Kade 3","7411 KK","Deventer","NL","2023-01-01T00:00:00"\n'
        # one woman, her names typed into each other's field after a move within the city;
        # nothing else ties the two records
        + '"T8","Femke","Wijnveldt","","","1979-03-21","Singel 40","3511 AB","Utrecht","NL","2023-01-01T00:00:00"\n'
        + '"T9","Wijnveldt","Femke","","","1979-03-21","Oudegracht 7","3512 CD","Utrecht","NL","2023-01-01T00:00:00"\n',
    )
    write_text(
        out / "landing/webshop/zz_people.csv",
        SHOP_HEADER
        + '"S1","Griet Vandermeulen","griet.vandermeulen@example.be","+32 9 222 33 44","2023-02-01T00:00:00","no"\n'
        + '"S2","Anna Verhoeven","familie.verhoeven@example.nl","","2023-02-01T00:00:00","no"\n'
        + '"S3","Marloes Verhoeven","familie.verhoeven@example.nl","","2023-02-01T00:00:00","no"\n',
    )
    config = load_config(sample_config(out))
    con = duckdb.connect(str(out / "bench.duckdb"))
    customers = entity_of(config)
    for name, source in customers.sources.items():
        load_raw_source(con, name, source, landed_files(Path(source.path)))
    run_identity_resolution(con, customers)
    yield con, config
    con.close()


def customer_ids(con) -> dict[str, str]:
    return dict(
        con.execute("SELECT source || ':' || source_record_id, customer_id FROM identity.customer_id_map").fetchall()
    )


def test_a_person_whose_email_names_and_birth_date_agree_stays_one_customer_with_two_phones(resolved):
    con, _ = resolved
    ids = customer_ids(con)
    assert ids["crm:T1"] == ids["webshop:S1"]


def test_sisters_sharing_an_inbox_and_twins_sharing_everything_but_the_first_name_stay_apart(resolved):
    con, _ = resolved
    ids = customer_ids(con)
    assert ids["crm:T2"] == ids["webshop:S2"]  # Anna's own records do join
    assert ids["crm:T3"] == ids["webshop:S3"]
    assert ids["crm:T2"] != ids["crm:T3"]
    assert ids["crm:T4"] != ids["crm:T5"]


def test_names_typed_into_each_others_field_are_compared_and_found_to_be_one_person(resolved):
    con, _ = resolved
    ids = customer_ids(con)
    assert ids["crm:T8"] == ids["crm:T9"]


def test_a_nameless_record_sharing_only_family_name_and_address_joins_no_family_member(resolved):
    con, _ = resolved
    ids = customer_ids(con)
    assert ids["crm:T6"] != ids["crm:T7"]


def test_beside_a_shared_surname_the_household_fields_weigh_as_among_relatives(resolved):
    con, _ = resolved
    by_name = {p.comparison: p for p in load_model(con, CUSTOMER_TABLES.model).parameters}
    for field in ("address", "email", "phone"):
        given, plain = by_name[field].weights_given_surname(), by_name[field].weights()
        assert given[0] < plain[0] - 3, field  # relatives share them: far weaker evidence
    assert by_name["first_name"].u_given_surname is None and by_name["birth_date"].u_given_surname is None


def gamma(comparison, a: str | None, b: str | None) -> str:
    """The level two values reach, by the comparison's own SQL."""
    column = comparison.frequency_column
    index = duckdb.execute(
        f"SELECT {comparison.gamma_sql()} FROM (SELECT ?::VARCHAR AS {column}) a, (SELECT ?::VARCHAR AS {column}) b",
        [a, b],
    ).fetchone()[0]
    return "missing" if index == -1 else comparison.levels[index].name


def test_birth_dates_compare_by_their_digits_so_a_typo_that_is_no_date_is_still_a_typo():
    born = birth_date()
    assert gamma(born, "19490013", "19490113") == "one_typo"  # month 00 for 01
    assert gamma(born, "19900305", "19900503") == "one_typo"  # day and month swapped
    assert gamma(born, "19900305", "19910305") == "one_typo"  # year off by one
    assert gamma(born, "19900305", "19641005") == "different"
    assert gamma(born, "19900305", None) == "missing"


def test_source_ids_are_the_same_or_not_since_the_next_card_in_sequence_is_someone_else():
    card = identifier("loyalty_card")
    assert gamma(card, "L00000007", "L00000007") == "exact"
    assert gamma(card, "L00000007", "L00000008") == "different"


def taught_by(*keys: str) -> set[str]:
    """The comparisons whose m a blocking rule on `keys` teaches."""
    comparisons = comparisons_for(["loyalty_card"])
    return {c.name for c, taught in zip(comparisons, trained_comparisons(BlockingRule(keys), comparisons)) if taught}


def test_a_blocking_rule_on_every_personal_field_teaches_no_m_since_contacts_alone_cannot_tell_twins_apart():
    assert taught_by("first_name_root", "birth_date") == {
        "last_name",
        "email",
        "phone",
        "address",
        "identifier:loyalty_card",
    }
    # a shared inbox or surname teaches none of the household fields (surname, contacts)
    assert taught_by("email") == {"first_name", "birth_date", "identifier:loyalty_card"}
    assert taught_by("last_name_core", "birth_date") == {"first_name", "identifier:loyalty_card"}
    assert taught_by("name_initials", "birth_date") == set()


def test_the_model_is_estimated_from_the_data_and_stored_with_m_u_and_weights(resolved):
    con, _ = resolved
    model = load_model(con, CUSTOMER_TABLES.model)
    assert model is not None
    by_name = {p.comparison: p for p in model.parameters}
    email = by_name["email"]
    # matching records share an email far more often than random ones: a strong positive weight
    assert email.m[0] > 0.5 and email.u[0] < 1e-3 and email.weights()[0] > 10
    # every comparison's m and u are probability distributions over its levels
    for parameters in model.parameters:
        assert sum(parameters.m) == pytest.approx(1.0, abs=1e-6)
        assert sum(parameters.u) == pytest.approx(1.0, abs=1e-6)
    assert 0 < model.prior < 0.01
    links = con.execute(
        "SELECT count(*), min(match_probability) FROM identity.identity_graph WHERE rule = 'match_model'"
    ).fetchone()
    assert links[0] > 0 and links[1] >= 0.9  # the configured default threshold


def test_an_unchanged_rerun_reuses_the_model_and_retraining_on_unchanged_data_keeps_every_id(resolved):
    con, config = resolved
    before = customer_ids(con)
    settings = model_settings(entity_of(config))
    table = CUSTOMER_TABLES.model
    stored = load_model(con, table)
    _, trained = ensure_match_model(con, settings, CUSTOMER_TABLES.lookup, table)
    # not trained again: the stored model fits the settings
    assert not trained and load_model(con, table).trained_at == stored.trained_at
    # it knows how many records it (and its value frequencies) was trained on
    assert stored.trained_on_records == con.execute("SELECT count(*) FROM identity.source_lookup").fetchone()[0]
    build_graph(con, entity_of(config), retrain=True)
    assignment = assign_ids_from_graph(con, CUSTOMER_TABLES)
    assert (assignment.created, assignment.merged, assignment.split) == (0, 0, 0)
    assert customer_ids(con) == before


def test_u_of_exact_agreement_is_the_chance_two_random_records_share_a_value():
    names = ["jan", "piet", "anna", "els", "mo"]
    shares = [0.4, 0.3, 0.15, 0.1, 0.05]
    rng = np.random.default_rng(3)
    drawn = rng.choice(names, size=4000, p=shares)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA identity")
    con.execute(
        "CREATE TABLE identity.source_lookup AS SELECT range AS record_key, name AS first_name_key, "
        "name AS first_name_root, NULL::VARCHAR AS last_name_key FROM (SELECT unnest(?) AS name, "
        "generate_subscripts(?, 1) - 1 AS range)",
        [list(drawn), list(drawn)],
    )
    counts = np.unique(drawn, return_counts=True)[1]
    expected = float((counts * (counts - 1)).sum() / (len(drawn) * (len(drawn) - 1)))

    u = estimate_u(con, CUSTOMER_TABLES.lookup, [first_name()], sample_pairs=100_000)["first_name"]

    assert u[0] == pytest.approx(expected, rel=0.01)
    assert sum(u) == pytest.approx(1.0)
    assert u[-1] == pytest.approx(1 - expected, abs=0.01)  # these names are alike in no other way


def names_table(people: list[tuple[str, str]]) -> duckdb.DuckDBPyConnection:
    """A source lookup of people with these (first, last) names and birth dates of their own."""
    rng = np.random.default_rng(11)
    births = [f"{rng.integers(1930, 2005)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}" for _ in people]
    con = duckdb.connect()
    con.execute("CREATE SCHEMA identity")
    con.execute(
        "CREATE TABLE identity.source_lookup AS SELECT i AS record_key, f AS first_name_key, l AS last_name_key, "
        "b AS birth_date_key FROM (SELECT unnest(?) AS f, unnest(?) AS l, unnest(?) AS b, "
        "generate_subscripts(?, 1) AS i)",
        [[f for f, _ in people], [last for _, last in people], births, births],
    )
    return con


def test_first_names_that_go_with_surnames_weigh_less_beside_a_shared_surname():
    """Names from two languages: two people with one surname share a first name about twice as
    often as two at random, so both names agreeing is that much less evidence (one bit); names
    drawn independently of each other leave the weights as they are."""
    rng = np.random.default_rng(5)
    comparisons = [first_name(), last_name(), birth_date()]

    def people(languages: list[str]) -> list[tuple[str, str]]:
        drawn = []
        for language in languages:
            firsts, lasts = [f"{language}first{i}" for i in range(5)], [f"{language}last{i}" for i in range(5)]
            drawn += [(rng.choice(firsts), rng.choice(lasts)) for _ in range(2000 // len(languages))]
        return drawn

    by_language = first_name_given_surname(names_table(people(["a", "b"])), CUSTOMER_TABLES.lookup, comparisons, 1000)
    assert by_language == pytest.approx(2.0, rel=0.1)
    mixed = [(first, last) for (first, _), (_, last) in zip(people(["a", "b"]), rng.permutation(people(["a", "b"])))]
    independent = first_name_given_surname(names_table(mixed), CUSTOMER_TABLES.lookup, comparisons, 1000)
    assert independent == pytest.approx(1.0, rel=0.1)


def test_a_late_batch_of_new_people_keeps_every_existing_customer_id(resolved):
    con, config = resolved
    before = customer_ids(con)
    out = Path(config.sources["crm"].path).parent
    folder = config.resolve(str(out))
    write_text(
        folder / "zz_late.csv",
        CRM_HEADER
        + '"L1","Wubbo","Hiemstra","wubbo.hiemstra@example.nl","+31 6 55550001","1950-01-02","Markt 1","8911 AA","Leeuwarden","NL","2024-01-01T00:00:00"\n'
        + '"L2","Ottoline","Zwanenburg","o.zwanenburg@example.nl","","1999-12-31","Plein 2","1011 AB","Amsterdam","NL","2024-01-01T00:00:00"\n',
    )
    customers = entity_of(config)
    source = customers.sources["crm"]
    load_raw_source(con, "crm", source, landed_files(Path(source.path)))

    run = run_identity_resolution(con, customers)

    after = customer_ids(con)
    assert (run.assignment.merged, run.assignment.split, run.assignment.created) == (0, 0, 2)
    assert {record: after[record] for record in before} == before
