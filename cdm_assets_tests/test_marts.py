"""Master models: golden records, transactions with returns and quarantine, events with stitching."""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import pytest

from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.marts.customer_metrics import build_customer_metrics
from cdm_assets.domain.marts.customers import build_customers
from cdm_assets.domain.marts.events import build_events
from cdm_assets.domain.marts.transactions import build_transactions
from cdm_assets_tests.marts_fixtures import create_identity, create_raw
from cdm_assets_tests.plans import customer_tables, entity_of

CRM = {
    "entity": "customer",
    "path": "crm/*.csv",
    "record_id": "id",
    "precedence": 1,
    "fields": {"first_name": "first_name", "email": "email"},
    "updated_at": "changed",
}
SHOP = {
    "entity": "customer",
    "path": "shop/*.csv",
    "record_id": "id",
    "precedence": 2,
    "fields": {"full_name": "name", "email": "email"},
    "updated_at": "changed",
    "attributes": {"signup_at": "created"},
}
ORDERS = {
    "entity": "transaction",
    "path": "orders/*.csv",
    "record_id": "order_id",
    "customer": {"source": "shop", "column": "account"},
    "fields": {"amount": "amount", "currency": "currency", "type": "kind", "occurred_at": "ts"},
}
CLICKS = {
    "entity": "event",
    "path": "events/*.jsonl",
    "record_id": "event_id",
    "customer": {"source": "shop", "column": "user"},
    "fields": {"anonymous_id": "cookie", "email": "user", "event_type": "name", "occurred_at": "ts"},
}


@pytest.fixture
def shop_warehouse(warehouse):
    """Customer A has a CRM and a webshop record; customer B only a webshop record."""
    create_raw(warehouse, "crm", ["id", "first_name", "email", "changed"], [("C1", "Jan", None, "2024-01-01")])
    create_raw(
        warehouse,
        "shop",
        ["id", "name", "email", "changed", "created"],
        [
            ("W1", "Johannes Jansen", "jan@example.com", "2024-06-01", "2023-05-05"),
            ("W2", "Piet Peters", "piet@example.com", "2024-02-01", "2022-01-01"),
        ],
    )
    create_identity(
        warehouse,
        [
            {
                "source": "crm",
                "source_record_id": "C1",
                "precedence": 1,
                "first_name": "Jan",
                "street": "Dorpsstraat 1",
                "postcode": "1234 AB",
            },
            {
                "source": "shop",
                "source_record_id": "W1",
                "precedence": 2,
                "first_name": "Johannes",
                "last_name": "Jansen",
                "email": "jan@example.com",
                "street": "Kerkweg 9",
                "postcode": "9999 ZZ",
                "city": "Zwolle",
            },
            {
                "source": "shop",
                "source_record_id": "W2",
                "precedence": 2,
                "first_name": "Piet",
                "last_name": "Peters",
                "email": "piet@example.com",
                "birth_date": date(1980, 1, 2),
            },
        ],
        {"crm:C1": "cus_a", "shop:W1": "cus_a", "shop:W2": "cus_b"},
    )
    return warehouse


def golden(con, customer_id):
    cursor = con.execute("SELECT * FROM marts.customers WHERE customer_id = ?", [customer_id])
    return dict(zip([d[0] for d in cursor.description], cursor.fetchone()))


def test_golden_record_takes_each_field_from_the_best_precedence_source(shop_warehouse, write_config):
    config = write_config({"crm": CRM, "shop": SHOP})
    assert build_customers(shop_warehouse, entity_of(config)).customers == 2
    a = golden(shop_warehouse, "cus_a")
    assert a["first_name"] == "Jan"  # crm (precedence 1) beats shop
    assert a["last_name"] == "Jansen"  # crm has none: the next source fills it
    assert a["email"] == "jan@example.com"


def test_address_parts_survive_together_from_one_record(shop_warehouse, write_config):
    build_customers(shop_warehouse, entity_of(write_config({"crm": CRM, "shop": SHOP})))
    a = golden(shop_warehouse, "cus_a")
    assert (a["street"], a["postcode"], a["city"]) == ("Dorpsstraat 1", "1234 AB", None)


def test_survivorship_can_prefer_the_most_recent_value(shop_warehouse, write_config):
    config = write_config({"crm": CRM, "shop": SHOP}, customers={"survivorship": {"first_name": "most_recent"}})
    build_customers(shop_warehouse, entity_of(config))
    assert golden(shop_warehouse, "cus_a")["first_name"] == "Johannes"  # shop record changed later


def test_declared_attributes_become_golden_record_columns(shop_warehouse, write_config):
    build_customers(shop_warehouse, entity_of(write_config({"crm": CRM, "shop": SHOP})))
    a = golden(shop_warehouse, "cus_a")
    assert a["signup_at"] == "2023-05-05"
    assert a["sources"] == ["crm", "shop"]
    assert a["record_count"] == 2
    assert (a["first_seen"], a["last_seen"]) == (datetime(2024, 1, 1), datetime(2024, 6, 1))


def test_a_customer_of_one_record_is_that_record(shop_warehouse, write_config):
    build_customers(shop_warehouse, entity_of(write_config({"crm": CRM, "shop": SHOP})))
    b = golden(shop_warehouse, "cus_b")
    assert (b["first_name"], b["last_name"], b["email"]) == ("Piet", "Peters", "piet@example.com")
    assert b["birth_date"] == date(1980, 1, 2)
    assert b["signup_at"] == "2022-01-01"
    assert (b["sources"], b["record_count"]) == (["shop"], 1)
    assert (b["first_seen"], b["last_seen"]) == (datetime(2024, 2, 1), datetime(2024, 2, 1))


def test_golden_records_carry_sha256_contact_keys_as_ad_platforms_take_them(shop_warehouse, write_config):
    build_customers(shop_warehouse, entity_of(write_config({"crm": CRM, "shop": SHOP})))
    a, b = golden(shop_warehouse, "cus_a"), golden(shop_warehouse, "cus_b")
    # SHA-256 of the trimmed, lower-cased email (hex), computed here independently of the warehouse
    assert a["email_sha256"] == hashlib.sha256(b"jan@example.com").hexdigest()
    assert b["email_sha256"] == hashlib.sha256(b"piet@example.com").hexdigest()
    assert a["phone_sha256"] is None  # no phone, no key


def test_the_phone_key_hashes_the_e164_number(warehouse, write_config):
    create_raw(warehouse, "crm", ["id", "first_name", "email", "changed"], [("C1", "Jan", " Jan@Example.com ", None)])
    create_identity(
        warehouse,
        [{"source": "crm", "source_record_id": "C1", "precedence": 1, "first_name": "Jan",
          "email": " Jan@Example.com ", "phone": "+31612345678"}],
        {"crm:C1": "cus_a"},
    )  # fmt: skip
    build_customers(warehouse, entity_of(write_config({"crm": CRM})))
    a = golden(warehouse, "cus_a")
    assert a["phone_sha256"] == hashlib.sha256(b"+31612345678").hexdigest()
    assert a["email_sha256"] == hashlib.sha256(b"jan@example.com").hexdigest()


def test_a_city_without_street_or_postcode_is_no_address_for_one_record_or_several(warehouse, write_config):
    create_raw(warehouse, "crm", ["id", "first_name", "email", "changed"], [("C1", "Ann", None, "2024-01-01")])
    create_raw(
        warehouse,
        "shop",
        ["id", "name", "email", "changed", "created"],
        [("W1", "Ann Smit", None, "2024-01-01", None), ("W2", "Bo Smit", None, "2024-01-01", None)],
    )
    create_identity(
        warehouse,
        [
            {"source": "crm", "source_record_id": "C1", "precedence": 1, "city": "Delft"},
            {"source": "shop", "source_record_id": "W1", "precedence": 2, "city": "Delft"},
            {"source": "shop", "source_record_id": "W2", "precedence": 2, "city": "Gouda", "country": "NL"},
        ],
        {"crm:C1": "cus_a", "shop:W1": "cus_a", "shop:W2": "cus_b"},
    )
    build_customers(warehouse, entity_of(write_config({"crm": CRM, "shop": SHOP})))
    for customer in ("cus_a", "cus_b"):
        assert (golden(warehouse, customer)["city"], golden(warehouse, customer)["country"]) == (None, None)


def test_golden_records_built_in_several_passes_equal_those_built_in_one(shop_warehouse, write_config, monkeypatch):
    """Large runs aggregate a share of the customers at a time; the result must not change."""
    from cdm_assets.domain.marts import customers

    config = write_config({"crm": CRM, "shop": SHOP})
    build_customers(shop_warehouse, entity_of(config))
    one_pass = shop_warehouse.execute("SELECT * FROM marts.customers ORDER BY customer_id").fetchall()
    monkeypatch.setattr(customers, "RECORDS_PER_PASS", 1)
    assert build_customers(shop_warehouse, entity_of(config)).customers == 2
    assert shop_warehouse.execute("SELECT * FROM marts.customers ORDER BY customer_id").fetchall() == one_pass


def transactions_warehouse(con, rows):
    create_raw(con, "orders", ["order_id", "account", "amount", "currency", "kind", "ts"], rows)


def test_orders_and_returns_are_kept_with_non_negative_amounts(shop_warehouse, write_config):
    transactions_warehouse(
        shop_warehouse,
        [
            ("O1", "W1", "100.00", "eur", "order", "2024-03-01T10:00:00Z"),
            ("O2", "W1", "25.50", "EUR", "Return", "2024-03-05T10:00:00+02:00"),
        ],
    )
    report = build_transactions(
        shop_warehouse, resolve_plan(write_config({"crm": CRM, "shop": SHOP, "orders": ORDERS}))
    )
    assert (report.rows_in, report.rows, report.quarantined) == (2, 2, 0)
    rows = shop_warehouse.execute(
        "SELECT transaction_id, customer_id, amount, currency, type, signed_amount, occurred_at "
        "FROM marts.transactions ORDER BY transaction_id"
    ).fetchall()
    assert [(r[0], r[1], float(r[2]), r[3], r[4], float(r[5])) for r in rows] == [
        ("O1", "cus_a", 100.0, "EUR", "order", 100.0),
        ("O2", "cus_a", 25.5, "EUR", "return", -25.5),
    ]
    assert rows[1][6] == datetime(2024, 3, 5, 8, 0)  # stored in UTC


@pytest.mark.parametrize(
    "row, reason",
    [
        (("O9", "W1", "-5.00", "EUR", "order", "2024-03-01"), "negative amount -5.00"),
        (("O9", "W1", "5.00", "EUR", "order", "yesterday"), "unparseable timestamp yesterday"),
        (("O9", "W1", "5.00", "XYZ", "order", "2024-03-01"), "unknown currency XYZ"),
        (
            ("O9", "W1", "five", "EUR", "order", "2024-03-01"),
            "unparseable amount five (number format: decimal '.', no thousands separator)",
        ),
        (("O9", "W1", "5.00", "EUR", "gift", "2024-03-01"), "unknown transaction type gift"),
    ],
)
def test_each_bad_transaction_is_quarantined_with_its_reason(shop_warehouse, write_config, row, reason):
    transactions_warehouse(shop_warehouse, [("O1", "W1", "1.00", "EUR", "order", "2024-03-01"), row])
    report = build_transactions(
        shop_warehouse, resolve_plan(write_config({"crm": CRM, "shop": SHOP, "orders": ORDERS}))
    )
    assert (report.rows_in, report.rows, report.quarantined) == (2, 1, 1)
    quarantined = shop_warehouse.execute(
        "SELECT source, stage, _row_number, reason FROM raw.quarantine WHERE stage = 'transactions'"
    ).fetchall()
    assert quarantined == [("orders", "transactions", 2, reason)]


@pytest.mark.parametrize(
    "number_format, amounts, accepted, quarantined",
    [
        (None, ["1234.56", "12", "+3.5"], [1234.56, 12.0, 3.5], []),
        (None, ["1.234,56", "1,234", "12,50", "1.234"], [], ["1.234,56", "1,234", "12,50", "1.234"]),
        ({"decimal": ",", "thousands": "."}, ["1.234,56", "12,5", "1234"], [1234.56, 12.5, 1234.0], []),
        ({"decimal": ",", "thousands": "."}, ["1,234.56", "12.50", "1.23"], [], ["1,234.56", "12.50", "1.23"]),
        ({"decimal": ".", "thousands": ","}, ["1,234.56", "1,234", "12.5"], [1234.56, 1234.0, 12.5], []),
        ({"decimal": ".", "thousands": ","}, ["1,23", "1.234,56"], [], ["1,23", "1.234,56"]),
    ],
)
def test_amounts_that_do_not_fit_the_declared_number_format_are_quarantined_not_reinterpreted(
    shop_warehouse, write_config, number_format, amounts, accepted, quarantined
):
    transactions_warehouse(
        shop_warehouse, [(f"O{i}", "W1", a, "EUR", "order", "2024-03-01") for i, a in enumerate(amounts)]
    )
    orders = {**ORDERS, "number_format": number_format} if number_format else ORDERS
    build_transactions(shop_warehouse, resolve_plan(write_config({"crm": CRM, "shop": SHOP, "orders": orders})))
    rows = shop_warehouse.execute("SELECT amount FROM marts.transactions ORDER BY _row_number").fetchall()
    assert [float(r[0]) for r in rows] == accepted
    reasons = [r[0] for r in shop_warehouse.execute(
        "SELECT reason FROM raw.quarantine WHERE stage = 'transactions' ORDER BY _row_number"
    ).fetchall()]  # fmt: skip
    assert [r.split(" (")[0] for r in reasons] == [f"unparseable amount {a}" for a in quarantined]
    assert all("number format" in r for r in reasons)


def test_transaction_with_an_unknown_customer_is_kept_unattributed(shop_warehouse, write_config):
    transactions_warehouse(shop_warehouse, [("O1", "W404", "1.00", "EUR", "order", "2024-03-01")])
    report = build_transactions(
        shop_warehouse, resolve_plan(write_config({"crm": CRM, "shop": SHOP, "orders": ORDERS}))
    )
    assert (report.rows, report.unattributed) == (1, 1)
    assert shop_warehouse.execute("SELECT customer_id FROM marts.transactions").fetchall() == [(None,)]


def test_a_feed_can_name_the_customer_source_per_row(shop_warehouse, write_config):
    feed = {**ORDERS, "customer": {"source_column": "system", "column": "account"}}
    create_raw(
        shop_warehouse,
        "orders",
        ["order_id", "system", "account", "amount", "currency", "kind", "ts"],
        [
            ("O1", "CRM", "C1", "1.00", "EUR", "order", "2024-03-01"),
            ("O2", "shop", "W2", "2.00", "EUR", "order", "2024-03-01"),
        ],
    )
    build_transactions(shop_warehouse, resolve_plan(write_config({"crm": CRM, "shop": SHOP, "orders": feed})))
    assert shop_warehouse.execute(
        "SELECT transaction_id, customer_id FROM marts.transactions ORDER BY 1"
    ).fetchall() == [("O1", "cus_a"), ("O2", "cus_b")]


def events_warehouse(con):
    create_raw(
        con,
        "clicks",
        ["event_id", "cookie", "user", "name", "ts"],
        [
            ("E1", "k1", None, "page_view", "2024-01-01T10:00:00"),  # anonymous, before login
            ("E2", "k1", "W1", "login", "2024-01-01T10:05:00"),  # login on cookie k1
            ("E3", "k1", None, "add_to_cart", "2024-01-01T10:06:00"),  # after login, no user id
            ("E4", "k2", "piet@example.com", "page_view", "2024-01-02T09:00:00"),  # known by email
            ("E5", "k3", None, "page_view", "2024-01-03T09:00:00"),  # never identified
        ],
    )


def test_anonymous_events_before_and_after_login_are_stitched_to_the_customer(shop_warehouse, write_config):
    events_warehouse(shop_warehouse)
    report = build_events(shop_warehouse, resolve_plan(write_config({"crm": CRM, "shop": SHOP, "clicks": CLICKS})))
    rows = dict(
        (r[0], (r[1], r[2]))
        for r in shop_warehouse.execute("SELECT event_id, customer_id, attribution FROM marts.events").fetchall()
    )
    assert rows["E1"] == ("cus_a", "stitched")
    assert rows["E2"] == ("cus_a", "customer_reference")
    assert rows["E3"] == ("cus_a", "stitched")
    assert rows["E4"] == ("cus_b", "email")
    assert rows["E5"] == (None, None)
    assert report.rows == 5 and report.unattributed == 1


def test_an_email_shared_by_two_customers_attributes_nothing(warehouse, write_config):
    create_identity(
        warehouse,
        [
            {"source": "shop", "source_record_id": "W1", "email": "family@example.com"},
            {"source": "shop", "source_record_id": "W2", "email": "family@example.com"},
        ],
        {"shop:W1": "cus_a", "shop:W2": "cus_b"},
    )
    create_raw(
        warehouse,
        "clicks",
        ["event_id", "cookie", "user", "name", "ts"],
        [("E1", "k1", "family@example.com", "page_view", "2024-01-01")],
    )
    build_events(warehouse, resolve_plan(write_config({"shop": SHOP, "clicks": CLICKS})))
    assert warehouse.execute("SELECT customer_id FROM marts.events").fetchall() == [(None,)]


def test_customer_metrics_count_orders_returns_revenue_and_events(shop_warehouse, write_config):
    config = write_config({"crm": CRM, "shop": SHOP, "orders": ORDERS, "clicks": CLICKS})
    transactions_warehouse(
        shop_warehouse,
        [
            ("O1", "W1", "100.00", "EUR", "order", "2024-03-01T00:00:00"),
            ("O2", "W1", "30.00", "EUR", "return", "2024-03-02T00:00:00"),
            ("O3", "W1", "10.00", "GBP", "order", "2024-03-03T00:00:00"),
        ],
    )
    events_warehouse(shop_warehouse)
    build_customers(shop_warehouse, entity_of(config))
    build_transactions(shop_warehouse, resolve_plan(config))
    build_events(shop_warehouse, resolve_plan(config))
    assert build_customer_metrics(shop_warehouse, customer_tables(), as_of=datetime(2024, 3, 13)).customers == 2
    cursor = shop_warehouse.execute("SELECT * FROM marts.customer_metrics WHERE customer_id = 'cus_a'")
    a = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    assert (a["orders"], a["returns"], a["events"]) == (2, 1, 3)
    assert {k: float(v) for k, v in a["net_revenue"].items()} == {"EUR": 70.0, "GBP": 10.0}
    assert a["last_order_at"] == datetime(2024, 3, 3)
    assert a["days_since_last_order"] == 10
