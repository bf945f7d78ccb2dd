"""The sample generator: deterministic, realistic sources, hard negatives and a ground truth."""

from __future__ import annotations

import csv
import hashlib
import json

import duckdb
import pandas as pd
import phonenumbers
import pytest

from cdm_assets.sample import generate
from cdm_assets.sample.vocabulary import PLACEHOLDER_EMAILS

FILES = {
    "crm/crm_customers.csv": [
        "crm_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "birth_date",
        "street",
        "zip",
        "city",
        "country",
        "created_at",
    ],
    "webshop/webshop_accounts.csv": [
        "account_id",
        "full_name",
        "email_address",
        "mobile",
        "created_at",
        "loyalty_opt_in",
    ],
    "loyalty/loyalty_members.csv": [
        "kaartnummer",
        "voornaam",
        "achternaam",
        "geboortedatum",
        "telefoon",
        "postcode",
        "straat",
        "woonplaats",
        "e_mail",
    ],
    "support/support_contacts.csv": ["contact_id", "name", "email", "phone", "last_ticket_at"],
    "store_sales/store_sales.csv": ["sale_id", "customer_source", "customer_ref", "amount", "currency", "type", "ts"],
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    summary = generate(persons=3000, seed=7, out=out)
    return out, summary


def digest(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_same_seed_gives_byte_identical_files(sample, tmp_path):
    out, _ = sample
    again = tmp_path / "again"
    generate(persons=3000, seed=7, out=again)
    assert digest(again / "landing") == digest(out / "landing")
    other = tmp_path / "other"
    generate(persons=3000, seed=8, out=other)
    assert digest(other / "landing") != digest(out / "landing")


def test_every_source_file_has_its_own_columns(sample):
    out, _ = sample
    for relative, columns in FILES.items():
        delimiter = ";" if "loyalty" in relative else ","
        with (out / "landing" / relative).open(newline="", encoding="utf-8", errors="replace") as handle:
            assert next(csv.reader(handle, delimiter=delimiter)) == columns
    first = json.loads((out / "landing/newsletter/newsletter_subscribers.jsonl").read_text().splitlines()[0])
    assert list(first) == ["subscriber_id", "email", "first_name", "subscribed_at"]
    orders = pd.read_parquet(out / "landing/orders/webshop_orders.parquet")
    assert list(orders.columns) == ["order_id", "account_id", "amount", "currency", "kind", "ts"]


def test_loyalty_dates_are_day_month_year_and_support_names_last_comma_first(sample):
    out, _ = sample
    loyalty = pd.read_csv(out / "landing/loyalty/loyalty_members.csv", sep=";", dtype=str)
    dates = loyalty["geboortedatum"].dropna()
    assert dates.str.fullmatch(r"\d{2}/\d{2}/\d{4}").all()
    assert (dates.str[:2].astype(int) > 12).any()  # the day comes first
    support = pd.read_csv(out / "landing/support/support_contacts.csv", dtype=str, encoding_errors="replace")
    assert support["name"].dropna().str.contains(", ").mean() > 0.99


def test_ground_truth_covers_every_record(sample):
    out, summary = sample
    truth = pd.read_parquet(out / "truth/customer_records.parquet")
    persons = pd.read_parquet(out / "truth/persons.parquet")
    clean = truth[truth["defect"].isna()]
    for source in ("crm", "webshop", "loyalty", "newsletter", "support"):
        assert (clean["source"] == source).sum() == summary.rows[source]
    assert clean["person_id"].isin(persons["person_id"]).all()
    assert len(persons) == 3000


def test_hard_negatives_are_present(sample):
    out, _ = sample
    persons = pd.read_parquet(out / "truth/persons.parquet")
    shared = persons.dropna(subset=["household_email"]).groupby("household_email")["person_id"].nunique()
    assert (shared >= 2).any()  # households sharing an inbox
    twins = persons[persons["twin_of"] >= 0]
    assert len(twins) > 0
    head = persons.set_index("person_id").loc[twins["twin_of"]]
    assert (head["birth_date"].to_numpy() == twins["birth_date"].to_numpy()).all()
    assert (head["first_name"].to_numpy() != twins["first_name"].to_numpy()).all()
    namesakes = persons.groupby(["first_name", "last_name"])["household_id"].nunique()
    assert (namesakes >= 2).any()
    crm = pd.read_csv(out / "landing/crm/crm_customers.csv", dtype=str, on_bad_lines="skip")
    shop = pd.read_csv(out / "landing/webshop/webshop_accounts.csv", dtype=str)
    emails = pd.concat([crm["email"], shop["email_address"]]).str.strip().str.lower()
    placeholders = emails[emails.isin(PLACEHOLDER_EMAILS)]
    assert placeholders.value_counts().max() >= 2  # one placeholder shared by unrelated records


def test_a_mailbox_has_one_owner_unless_it_is_a_households_shared_inbox(sample):
    out, _ = sample
    persons = pd.read_parquet(out / "truth/persons.parquet")
    own = pd.concat([persons[["person_id", "email"]], persons[["person_id", "old_email"]].set_axis(
        ["person_id", "email"], axis=1)]).dropna()  # fmt: skip
    assert own.groupby("email")["person_id"].nunique().max() == 1
    shared = persons.dropna(subset=["household_email"]).groupby("household_email")["household_id"].nunique()
    assert shared.max() == 1  # a shared inbox is one household's
    assert not set(persons["household_email"].dropna()) & set(own["email"])


def test_the_population_has_valid_phone_numbers(sample):
    out, _ = sample
    persons = pd.read_parquet(out / "truth/persons.parquet")
    codes = {"NL": 31, "BE": 32, "DE": 49, "GB": 44, "FR": 33, "US": 1}
    valid = [
        phonenumbers.is_valid_number(phonenumbers.parse(f"+{codes[c]}{n}"))
        for c, n in zip(persons["country"], persons["phone_nsn"])
    ]
    assert all(valid)


def test_raw_defects_are_in_the_files_and_the_truth(sample):
    out, _ = sample
    truth = pd.read_parquet(out / "truth/customer_records.parquet")
    defects = truth.dropna(subset=["defect"])
    assert set(defects["defect"]) == {
        "too few columns",
        "too many columns",
        "duplicate record id",
        "missing record id",
        "invalid UTF-8",
    }
    with (out / "landing/crm/crm_customers.csv").open(newline="") as handle:
        widths = {len(row) for row in csv.reader(handle)}
    assert {2, 11, 12} <= widths
    assert b"\xfc" in (out / "landing/support/support_contacts.csv").read_bytes()


def test_transactions_have_bad_rows_and_orphans_and_events_mix_known_and_anonymous(sample):
    out, _ = sample
    transactions = pd.read_parquet(out / "truth/transactions.parquet")
    assert {"negative amount", "unparseable timestamp", "unknown currency", "orphan"} <= set(
        transactions["defect"].dropna()
    )
    events = pd.read_json(out / "landing/events/clickstream.jsonl", lines=True, dtype=False)
    assert events["user_id"].isna().mean() > 0.3
    assert (events["name"] == "login").any()
    assert events["user_id"].dropna().str.contains("@").any()  # some logins carry an email


PART_RECORD_IDS = {  # landing files (as the demo config's globs read them) and their record id column
    "crm": ("crm/*.csv", "crm_id"),
    "webshop": ("webshop/*.csv", "account_id"),
    "loyalty": ("loyalty/*.csv", "kaartnummer"),
    "newsletter": ("newsletter/*.jsonl", "subscriber_id"),
    "support": ("support/*.csv", "contact_id"),
    "webshop_orders": ("orders/*.parquet", "order_id"),
    "store_sales": ("store_sales/*.csv", "sale_id"),
    "clickstream": ("events/*.jsonl", "event_id"),
}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """2,500 persons in parts of 1,000: a first part, written to the files of a small run, and two more."""
    out = tmp_path_factory.mktemp("parts")
    summary = generate(persons=2500, seed=7, out=out, part_size=1000)
    con = duckdb.connect()
    for name, (pattern, _) in PART_RECORD_IDS.items():
        path = out / "landing" / pattern
        if pattern.endswith(".csv"):
            delimiter = ";" if name == "loyalty" else ","
            relation = f"read_csv('{path}', all_varchar=true, delim='{delimiter}', ignore_errors=true, filename=true)"
        elif pattern.endswith(".jsonl"):
            relation = f"read_json('{path}', format='newline_delimited', filename=true)"
        else:
            relation = f"read_parquet('{path}', filename=true)"
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {relation}")
    for name in ("customer_records", "persons", "transactions", "events"):
        con.execute(f"CREATE VIEW truth_{name} AS SELECT * FROM read_parquet('{out}/truth/{name}.parquet')")
    return out, summary, con


def test_a_large_run_is_written_in_parts_each_with_its_own_files(parts):
    out, _, con = parts
    assert sorted(p.name for p in (out / "landing/crm").iterdir()) == [
        "crm_customers-part01.csv",
        "crm_customers-part02.csv",
        "crm_customers.csv",
    ]
    for name in PART_RECORD_IDS:
        [(files,)] = con.sql(f"SELECT count(DISTINCT filename) FROM {name}").fetchall()
        assert files == 3, name
    first_part = out.parent / "first_part"
    generate(persons=1000, seed=7, out=first_part)
    assert {k: v for k, v in digest(out / "landing").items() if "-part" not in k} == digest(first_part / "landing")


def test_record_transaction_and_event_ids_are_unique_across_parts(parts):
    _, _, con = parts
    for name, (_, key) in PART_RECORD_IDS.items():
        [(rows, distinct)] = con.sql(f"SELECT count({key}), count(DISTINCT {key}) FROM {name}").fetchall()
        assert rows == distinct + (1 if name == "crm" else 0), name  # crm: the injected duplicate id
    [(cookies_in_two_parts,)] = con.sql(
        "SELECT count(*) FROM (SELECT anon_id FROM clickstream GROUP BY anon_id HAVING count(DISTINCT filename) > 1)"
    ).fetchall()
    assert cookies_in_two_parts == 0


def part_of(alias: str) -> str:
    """SQL for the part a row's file belongs to: '' for the first part, '01', '02', ... for the others."""
    return f"regexp_extract({alias}.filename, '-part(\\d+)\\.', 1)"


def test_references_between_files_resolve_within_and_across_parts(parts):
    _, _, con = parts
    orphans = "(SELECT transaction_id FROM truth_transactions WHERE defect = 'orphan')"
    [(dangling_orders,)] = con.sql(
        f"SELECT count(*) FROM webshop_orders o ANTI JOIN webshop w ON o.account_id = w.account_id "
        f"WHERE o.order_id NOT IN {orphans}"
    ).fetchall()
    [(dangling_sales, sales_in_other_parts)] = con.sql(f"""
        SELECT count(*) FILTER (WHERE c.filename IS NULL), count(*) FILTER (WHERE {part_of("c")} <> {part_of("s")})
        FROM store_sales s
        LEFT JOIN (SELECT 'crm' AS source, crm_id AS ref, filename FROM crm
                   UNION ALL SELECT 'loyalty', kaartnummer, filename FROM loyalty) c
          ON s.customer_source = c.source AND s.customer_ref = c.ref
        WHERE s.sale_id NOT IN {orphans}
    """).fetchall()
    [(dangling_logins,)] = con.sql(
        "SELECT count(*) FROM clickstream e ANTI JOIN webshop w ON e.user_id = w.account_id "
        "WHERE e.user_id IS NOT NULL AND e.user_id NOT LIKE '%@%'"
    ).fetchall()
    assert (dangling_orders, dangling_sales, sales_in_other_parts, dangling_logins) == (0, 0, 0, 0)


def test_the_truth_covers_every_part_with_unique_persons_and_households(parts):
    _, summary, con = parts
    [(persons, distinct, households, split_households)] = con.sql("""
        SELECT count(*), count(DISTINCT person_id), count(DISTINCT household_id),
               (SELECT count(*) FROM (SELECT household_id FROM truth_persons GROUP BY household_id
                                      HAVING count(DISTINCT person_id // 1000) > 1))
        FROM truth_persons
    """).fetchall()
    assert (persons, distinct, split_households) == (2500, 2500, 0)
    assert 1500 < households < 2500
    [(max_person,)] = con.sql("SELECT max(person_id) FROM truth_persons").fetchall()
    assert max_person == 2499
    truth_of = {
        "webshop_orders": ("truth_transactions", "transaction_id"),
        "store_sales": ("truth_transactions", "transaction_id"),
        "clickstream": ("truth_events", "event_id"),
    }
    for name, (_, key) in PART_RECORD_IDS.items():
        truth, id_column = truth_of.get(name, ("truth_customer_records", "record_id"))
        same_source = "" if truth == "truth_events" else f"t.source = '{name}' AND "
        [(missing,)] = con.sql(
            f"SELECT count(*) FROM {name} f ANTI JOIN {truth} t ON {same_source}t.{id_column} = f.{key} WHERE f.{key} IS NOT NULL"
        ).fetchall()
        assert missing == 0, name
    [(clean, defects, unknown_persons)] = con.sql("""
        SELECT count(*) FILTER (WHERE defect IS NULL), count(*) FILTER (WHERE defect IS NOT NULL),
               count(*) FILTER (WHERE defect IS NULL AND person_id NOT IN (SELECT person_id FROM truth_persons))
        FROM truth_customer_records
    """).fetchall()
    assert clean == sum(summary.rows[s] for s in ("crm", "webshop", "loyalty", "newsletter", "support"))
    assert (defects, unknown_persons) == (5, 0)  # the raw defects are injected once, not per part
