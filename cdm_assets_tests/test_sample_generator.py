"""The sample generator: deterministic, realistic sources, hard negatives and a ground truth."""

from __future__ import annotations

import csv
import hashlib
import json

import pandas as pd
import phonenumbers
import pytest

from cdm_assets.sample import generate
from cdm_assets.sample.vocabulary import PLACEHOLDER_EMAILS

FILES = {
    "crm/crm_customers.csv": ["crm_id", "first_name", "last_name", "email", "phone", "birth_date", "street", "zip", "city", "country", "created_at"],
    "webshop/webshop_accounts.csv": ["account_id", "full_name", "email_address", "mobile", "created_at", "loyalty_opt_in"],
    "loyalty/loyalty_members.csv": ["kaartnummer", "voornaam", "achternaam", "geboortedatum", "telefoon", "postcode", "straat", "woonplaats", "e_mail"],
    "support/support_contacts.csv": ["contact_id", "name", "email", "phone", "last_ticket_at"],
    "store_sales/store_sales.csv": ["sale_id", "customer_source", "customer_ref", "amount", "currency", "type", "ts"],
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    summary = generate(persons=3000, seed=7, out=out)
    return out, summary


def digest(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


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


def test_the_population_has_valid_phone_numbers(sample):
    out, _ = sample
    persons = pd.read_parquet(out / "truth/persons.parquet")
    codes = {"NL": 31, "BE": 32, "DE": 49, "GB": 44, "FR": 33, "US": 1}
    valid = [
        phonenumbers.is_valid_number(phonenumbers.parse(f"+{codes[c]}{n}")) for c, n in zip(persons["country"], persons["phone_nsn"])
    ]
    assert all(valid)


def test_raw_defects_are_in_the_files_and_the_truth(sample):
    out, _ = sample
    truth = pd.read_parquet(out / "truth/customer_records.parquet")
    defects = truth.dropna(subset=["defect"])
    assert set(defects["defect"]) == {"too few columns", "too many columns", "duplicate record id", "missing record id", "invalid UTF-8"}
    with (out / "landing/crm/crm_customers.csv").open(newline="") as handle:
        widths = {len(row) for row in csv.reader(handle)}
    assert {2, 11, 12} <= widths
    assert b"\xfc" in (out / "landing/support/support_contacts.csv").read_bytes()


def test_transactions_have_bad_rows_and_orphans_and_events_mix_known_and_anonymous(sample):
    out, _ = sample
    transactions = pd.read_parquet(out / "truth/transactions.parquet")
    assert {"negative amount", "unparseable timestamp", "unknown currency", "orphan"} <= set(transactions["defect"].dropna())
    events = pd.read_json(out / "landing/events/clickstream.jsonl", lines=True, dtype=False)
    assert events["user_id"].isna().mean() > 0.3
    assert (events["name"] == "login").any()
    assert events["user_id"].dropna().str.contains("@").any()  # some logins carry an email


def test_a_large_run_is_written_in_parts_with_unique_ids_and_resolving_references(tmp_path):
    import duckdb

    out = tmp_path / "parts"
    summary = generate(persons=2500, seed=7, out=out, part_size=1000)
    landing = out / "landing"
    assert sorted(p.name for p in (landing / "crm").iterdir()) == [
        "crm_customers-part01.csv", "crm_customers-part02.csv", "crm_customers.csv",
    ]
    con = duckdb.connect()
    crm = f"read_csv('{landing}/crm/*.csv', all_varchar=true, ignore_errors=true)"
    webshop = f"read_csv('{landing}/webshop/*.csv', all_varchar=true)"
    orders = f"read_parquet('{landing}/orders/*.parquet')"
    events = f"read_json('{landing}/events/*.jsonl', format='newline_delimited')"
    [(crm_rows, crm_ids)] = con.sql(f"SELECT count(*), count(DISTINCT crm_id) FROM {crm} WHERE crm_id IS NOT NULL").fetchall()
    assert crm_ids >= summary.rows["crm"] - 5  # unique across parts, apart from the injected duplicate id
    for relation, key in ((webshop, "account_id"), (orders, "order_id"), (events, "event_id")):
        [(rows, distinct)] = con.sql(f"SELECT count(*), count(DISTINCT {key}) FROM {relation}").fetchall()
        assert rows == distinct
    [(dangling,)] = con.sql(
        f"SELECT count(*) FROM {orders} WHERE account_id NOT IN (SELECT account_id FROM {webshop}) AND account_id <> 'W9999999'"
    ).fetchall()
    assert dangling == 0
    [(cookies_across_parts,)] = con.sql(
        f"SELECT count(*) FROM (SELECT anon_id FROM {events} GROUP BY anon_id HAVING count(DISTINCT left(event_id, 3)) > 1)"
    ).fetchall()
    assert cookies_across_parts == 0
    truth = con.sql(f"SELECT * FROM read_parquet('{out}/truth/customer_records.parquet')")
    [(records, persons_seen, max_person)] = truth.aggregate("count(*), count(DISTINCT person_id), max(person_id)").fetchall()
    assert records == sum(summary.rows[s] for s in ("crm", "webshop", "loyalty", "newsletter", "support")) + 5
    assert 2000 < max_person < 2500 and persons_seen > 1500
    [(people,)] = con.sql(f"SELECT count(DISTINCT person_id) FROM read_parquet('{out}/truth/persons.parquet')").fetchall()
    assert people == 2500
