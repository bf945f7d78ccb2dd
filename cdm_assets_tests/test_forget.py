"""Erasure with suppression: `cdm forget` removes every row of a person, keeps their
identifiers only as salted hashes, and later loads leave them out."""

from __future__ import annotations

import os
import time

import dagster as dg
import duckdb
import pytest

from cdm_assets.config import duckdb_path
from cdm_assets.config.plan import resolve_plan
from cdm_assets.definitions import build_definitions
from cdm_assets.domain.privacy.erasure import ErasureRequest, UnknownPerson, forget, rewrite_warehouse
from cdm_assets.domain.privacy.suppression import (
    EMAIL,
    PHONE,
    RECORD,
    Suppressed,
    add_suppressions,
    ensure_salt,
    phone_values,
    record_value,
    text_suppressed_sql,
)
from cdm_assets.domain.sql import sql_string
from cdm_assets.forget import main as forget_main
from cdm_assets_tests.conftest import materialization_metadata, materialize_all, write_text
from cdm_assets_tests.test_pipeline import SOURCES as PIPELINE_SOURCES

SOURCES = {
    "crm": {
        "entity": "customer",
        "path": "landing/crm/*.csv",
        "record_id": "crm_id",
        "precedence": 1,
        "phone_region": "NL",
        "fields": {"first_name": "first", "last_name": "last", "email": "email", "phone": "phone"},
    },
    "shop": {
        "entity": "customer",
        "path": "landing/shop/*.csv",
        "record_id": "account",
        "precedence": 2,
        "fields": {"full_name": "name", "email": "mail"},
    },
    # the same transaction and event feeds as the whole-graph test
    "orders": PIPELINE_SOURCES["orders"],
    "clicks": PIPELINE_SOURCES["clicks"],
}
# Jan Jansen is the person to forget; Anna de Vries and Piet Bakker stay.
JAN = ("jan.jansen@mail.nl", "+31612345678", "Jansen")


@pytest.fixture
def landed(tmp_path, write_config):
    """A small landing folder materialised once; returns the config."""
    write_text(
        tmp_path / "landing/crm/crm.csv",
        "crm_id,first,last,email,phone\n"
        "C1,Jan,Jansen,jan.jansen@mail.nl,06-12345678\n"
        "C2,Anna,de Vries,anna@mail.nl,0687654321\n"
        "C3,Piet,Bakker,piet@mail.nl,\n"
        'C9,"Jan,Jansen,jan.jansen@mail.nl,06-12345678\n',  # an unterminated quote: quarantined
    )
    write_text(
        tmp_path / "landing/shop/shop.csv",
        "account,name,mail\nW1,Jan Jansen,JAN.JANSEN@mail.nl\nW2,Anna de Vries,anna@mail.nl\n",
    )
    write_text(
        tmp_path / "landing/orders/o.csv",
        "order_id,account,amount,currency,kind,ts\n"
        "O1,W1,10.00,EUR,order,2026-01-01T10:00:00Z\n"
        "O2,W2,20.00,EUR,order,2026-01-02T10:00:00Z\n",
    )
    write_text(
        tmp_path / "landing/clicks/c.jsonl",
        '{"id": "E1", "cookie": "k1", "user": null, "name": "page_view", "ts": "2026-01-01T09:00:00Z"}\n'
        '{"id": "E2", "cookie": "k1", "user": "W1", "name": "login", "ts": "2026-01-01T09:01:00Z"}\n'
        '{"id": "E3", "cookie": "k2", "user": "anna@mail.nl", "name": "login", "ts": "2026-01-01T09:02:00Z"}\n',
    )
    config = write_config(SOURCES)
    assert materialize_all(build_definitions(config)).success
    return config


def occurrences(config, *values: str) -> dict[str, int]:
    """Per value, the rows of every table (every column as text) that hold it, any case."""
    found = dict.fromkeys(values, 0)
    with duckdb.connect(str(duckdb_path(config)), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()
        for schema, table in tables:
            for value in values:
                found[value] += con.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" t WHERE contains(lower(CAST(t AS VARCHAR)), ?)',
                    [value.lower()],
                ).fetchone()[0]
    return found


def erase(config, kind: str, value: str, region: str | None = None):
    path = str(duckdb_path(config))
    with duckdb.connect(path) as con:
        report = forget(con, resolve_plan(config), ErasureRequest(kind, value, region))
    rewrite_warehouse(path)
    return report


def customer_of(config, source: str, record_id: str) -> str:
    with duckdb.connect(str(duckdb_path(config)), read_only=True) as con:
        return con.execute(
            "SELECT customer_id FROM identity.customer_id_map WHERE source = ? AND source_record_id = ?",
            [source, record_id],
        ).fetchone()[0]


def test_forget_reaches_the_changes_a_later_build_recorded_and_the_next_graph_build_is_full(landed):
    crm = landed.config_path.parent / "landing/crm/crm.csv"
    crm.write_text(
        crm.read_text().replace("C1,Jan,Jansen,jan.jansen@mail.nl,06-12345678", "C1,Jan,Jansen,jan.jansen@mail.nl,")
    )
    assert materialize_all(build_definitions(landed)).success  # the changes now hold Jan's record twice
    assert occurrences(landed, "jan.jansen@mail.nl")["jan.jansen@mail.nl"] > 0
    erase(landed, "email", "jan.jansen@mail.nl")
    assert occurrences(landed, *JAN) == dict.fromkeys(JAN, 0)
    with duckdb.connect(str(duckdb_path(landed)), read_only=True) as con:  # nor a hash of his records' input
        assert con.execute("SELECT count(*) FROM identity_state.source_lookup_records").fetchone() == (3,)
    result = materialize_all(build_definitions(landed))
    assert result.success
    assert materialization_metadata(result)["identity/identity_graph"]["followed_changes"].value is False


def test_forget_reaches_what_a_followed_run_kept_of_the_person(landed):
    """A later file lands a record of Jan: the followed run keeps its id among the ids the crm
    load touched, in the Customer ID map's changes and its blocks in the graph's state. None
    of it survives the erasure."""
    crm = landed.config_path.parent / "landing/crm"
    landed_earlier = time.time() - 3600  # the first file, landed long ago, read once more as settled
    os.utime(crm / "crm.csv", (landed_earlier, landed_earlier))
    assert materialize_all(build_definitions(landed), "raw/crm*").success
    write_text(crm / "late.csv", "crm_id,first,last,email,phone\nC7,Jan,Jansen,jan.jansen@mail.nl,\n")
    result = materialize_all(build_definitions(landed), "raw/crm*")
    assert result.success
    assert materialization_metadata(result)["raw/crm"]["files_read"].value == 1  # the load followed

    def kept(key: int, customer: str) -> dict[str, int]:
        checks = {
            "cdm_state.raw_crm_changes": "record_id = 'C7'",
            "identity_state.customer_id_map_changes": "source_record_id = 'C7'",
            "identity_state.identity_graph_record_blocks": f"record_key = {key}",
            "cdm_state.marts_customers_changed_customers": f"customer_id = '{customer}'",
        }
        with duckdb.connect(str(duckdb_path(landed)), read_only=True) as con:
            return {t: con.execute(f"SELECT count(*) FROM {t} WHERE {w}").fetchone()[0] for t, w in checks.items()}

    with duckdb.connect(str(duckdb_path(landed)), read_only=True) as con:
        (key,) = con.execute("SELECT record_key FROM identity.source_lookup WHERE source_record_id = 'C7'").fetchone()
    jan = customer_of(landed, "crm", "C7")
    assert all(kept(key, jan).values())  # each holds something of Jan's new record or customer
    erase(landed, "email", "jan.jansen@mail.nl")
    assert kept(key, jan) == dict.fromkeys(kept(key, jan), 0)


def test_forget_reaches_a_placeholder_the_persons_email_became(landed, write_config):
    """With a cap of 2 records per key, Jan's email on a third record becomes a placeholder the
    graph keeps in its state: the erasure reaches it there too."""
    write_text(
        landed.config_path.parent / "landing/crm/late.csv",
        "crm_id,first,last,email,phone\nC7,Jan,Jansen,jan.jansen@mail.nl,\n",
    )
    rules = [
        {"name": "same_name", "exact": ["last_name"], "similar": {"first_name": 0.9}, "must_not_differ": ["email"]}
    ]
    config = write_config(SOURCES, identity={"rules": rules, "max_records_per_key": 2})
    assert materialize_all(build_definitions(config)).success
    with duckdb.connect(str(duckdb_path(config)), read_only=True) as con:
        placeholders = con.execute("SELECT value FROM identity_state.identity_graph_placeholders").fetchall()
    assert placeholders == [(JAN[0],)]
    erase(config, "email", JAN[0])
    assert occurrences(config, JAN[0]) == {JAN[0]: 0}


def test_forget_by_email_removes_every_row_of_the_person_and_nothing_of_the_others(landed):
    assert all(occurrences(landed, *JAN).values())  # the search finds Jan before
    others = occurrences(landed, "anna@mail.nl", "Bakker")
    report = erase(landed, "email", " Jan.Jansen@Mail.nl ")
    assert occurrences(landed, *JAN, "k1") == dict.fromkeys([*JAN, "k1"], 0)  # k1: Jan's stitched cookie
    assert occurrences(landed, "anna@mail.nl", "Bakker") == others
    assert (report.customers, report.records) == (1, 2)
    assert report.rows_deleted["raw.quarantine"] == 1  # the malformed row holding his email
    with duckdb.connect(str(duckdb_path(landed)), read_only=True) as con:
        audit = con.execute("SELECT key_kind, customers, records FROM privacy.erasures").fetchall()
        assert audit == [("email", 1, 2)]
        assert con.execute("SELECT count(*) FROM marts.customers").fetchone() == (2,)


@pytest.mark.parametrize(
    ("kind", "value", "region"),
    [
        ("phone", "+31 6 12345678", None),
        ("phone", "06 12345678", "NL"),
        ("record", "shop:W1", None),
        ("customer", None, None),
    ],
)
def test_a_person_can_be_named_by_phone_record_or_customer_id(landed, kind, value, region):
    value = value or customer_of(landed, "crm", "C1")
    erase(landed, kind, value, region)
    assert occurrences(landed, *JAN) == dict.fromkeys(JAN, 0)
    assert occurrences(landed, "anna@mail.nl")["anna@mail.nl"] > 0


def test_an_unknown_customer_id_is_an_error_and_changes_nothing(landed):
    before = occurrences(landed, *JAN)
    with pytest.raises(UnknownPerson, match="cus_0000000000000000"):
        erase(landed, "customer", "cus_0000000000000000")
    assert occurrences(landed, *JAN) == before


def test_relanding_the_same_files_brings_nothing_back_and_counts_what_it_left_out(landed):
    erase(landed, "email", JAN[0])
    result = materialize_all(build_definitions(landed))
    assert result.success
    assert occurrences(landed, *JAN, "k1") == dict.fromkeys([*JAN, "k1"], 0)
    suppressed = {
        key: md["suppressed"].value for key, md in materialization_metadata(result).items() if "suppressed" in md
    }
    # crm: C1 and the malformed C9; shop: W1; orders: O1 (of W1); clicks: E1 (his cookie) and E2 (W1)
    assert suppressed == {"raw/crm": 2, "raw/shop": 1, "raw/orders": 1, "raw/clicks": 2}
    failed = [e.asset_check_key for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == []


def test_the_identifiers_are_kept_only_as_salted_hashes(landed):
    erase(landed, "email", JAN[0])
    with duckdb.connect(str(duckdb_path(landed)), read_only=True) as con:
        kinds = dict(con.execute("SELECT kind, count(*) FROM privacy.suppressions GROUP BY ALL").fetchall())
        hashes = [h for (h,) in con.execute("SELECT hash FROM privacy.suppressions").fetchall()]
    assert kinds["record"] == 2 and kinds["email"] == 1 and kinds["anonymous_id"] == 1 and kinds["phone"] >= 4
    assert all(len(h) == 64 and set(h) <= set("0123456789abcdef") for h in hashes)


def test_the_warehouse_file_holds_no_byte_of_the_erased_values(landed):
    path = duckdb_path(landed)
    assert JAN[0].encode() in path.read_bytes()  # stored plain, so a byte search can see it
    erase(landed, "email", JAN[0])
    data = path.read_bytes()
    assert JAN[0].encode() not in data and JAN[1].encode() not in data


def test_the_cli_names_no_value_and_fails_clearly_on_an_unknown_record(landed, monkeypatch, capsys):
    monkeypatch.setenv("CDM_CONFIG", str(landed.config_path))
    assert forget_main(["--email", JAN[0]]) == 0
    out = capsys.readouterr().out
    assert "1 customer(s) and 2 record(s) erased" in out and "jan" not in out.lower()
    assert forget_main(["--record", "crm:NOPE"]) == 1
    assert "no record 'crm:NOPE'" in capsys.readouterr().err


def test_the_forget_job_erases_a_customer_named_in_its_run_config(landed):
    defs = build_definitions(landed)
    job = defs.resolve_job_def("forget")
    customer = customer_of(landed, "shop", "W1")
    result = job.execute_in_process(
        run_config={"ops": {"erase_person": {"config": {"customer_id": customer}}}},
        resources=defs.resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    assert occurrences(landed, *JAN) == dict.fromkeys(JAN, 0)


def sample_person(con) -> tuple[str, list[str]]:
    """An email of one sample customer with a phone and a full name no one else has, and
    every spelling of the person's phone and name that the warehouse holds."""
    email, customer = con.execute(
        """
        WITH names AS (
            SELECT lower(first_name || ' ' || last_name) AS name FROM marts.customers GROUP BY ALL HAVING count(*) = 1
        )
        SELECT c.email, c.customer_id FROM marts.customers c JOIN names ON names.name = lower(c.first_name || ' ' || c.last_name)
        WHERE c.phone IS NOT NULL AND c.record_count >= 3
          AND c.email IN (SELECT email FROM identity.source_lookup GROUP BY ALL HAVING count(DISTINCT source) >= 2)
        ORDER BY c.customer_id LIMIT 1
        """
    ).fetchone()
    values = con.execute(
        """
        SELECT list(DISTINCT v) FROM (
            SELECT unnest([l.phone, l.first_name || ' ' || l.last_name]) AS v
            FROM identity.source_lookup l JOIN identity.customer_id_map m USING (source, source_record_id)
            WHERE m.customer_id = ?
        ) WHERE v IS NOT NULL
        """,
        [customer],
    ).fetchone()[0]
    return email, values


def test_forget_on_the_sample_leaves_no_byte_of_the_person_in_the_warehouse_or_dagster_home(
    tmp_path, monkeypatch, capsys
):
    """The promise in full: on the 10k sample, after `cdm forget --email` and the next run of the
    same landing files, neither the warehouse file nor Dagster's storage holds the email, the
    phone or the full name."""
    import yaml

    from cdm_assets.config import BUNDLED_CONFIG, load_config
    from cdm_assets.sample import generate

    generate(persons=10_000, seed=11, out=tmp_path)
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    for source in document["sources"].values():
        source["path"] = source["path"].removeprefix("../../data/")
    document["warehouse"]["duckdb_path"] = "cdm.duckdb"
    (tmp_path / "cdm.yaml").write_text(yaml.safe_dump(document))
    config = load_config(tmp_path / "cdm.yaml")
    home = tmp_path / "dagster_home"
    home.mkdir()
    defs = build_definitions(config)
    with dg.instance_for_test(temp_dir=str(home)) as instance:

        def run() -> dg.ExecuteInProcessResult:
            result = dg.materialize(
                [*defs.assets, *defs.asset_checks], resources=defs.resources, instance=instance, raise_on_error=False
            )
            assert result.success
            return result

        run()
        with duckdb.connect(str(duckdb_path(config)), read_only=True) as con:
            email, spellings = sample_person(con)
        values = [email, *spellings]
        warehouse = duckdb_path(config).read_bytes()
        assert email.encode() in warehouse and any(v.startswith("+") and v.encode() in warehouse for v in values)

        monkeypatch.setenv("CDM_CONFIG", str(tmp_path / "cdm.yaml"))
        assert forget_main(["--email", email]) == 0
        assert email not in capsys.readouterr().out
        rerun = run()

    suppressed = sum(md["suppressed"].value for md in materialization_metadata(rerun).values() if "suppressed" in md)
    assert suppressed >= 3  # the person's rows in the landing files were left out
    assert occurrences(config, *values) == dict.fromkeys(values, 0)
    warehouse = duckdb_path(config).read_bytes()
    assert [v for v in values if v.encode() in warehouse] == []
    stored = [path for path in home.rglob("*") if path.is_file()]
    assert any(b"raw/crm" in path.read_bytes() or b"crm" in path.read_bytes() for path in stored)  # the run history
    assert [(str(p), v) for p in stored for v in values if v.encode() in p.read_bytes()] == []


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ('C9,"Jan,Jansen,jan.jansen@mail.nl,06-12345678', True),  # a malformed CSV line
        ('{"crm_id": "C9", "note": "call back"}', True),  # a record id of the source, as a JSON value
        ("Jan Jansen <JAN.JANSEN@mail.nl>", True),  # an address in angle brackets, any case
        ("x;+31 (0)6 1234 5678;y", True),  # the phone in another spelling
        ("C90,jansen@mail.nl,0612345679", False),  # near misses are someone else
    ],
)
def test_a_quarantined_row_is_recognised_by_the_words_of_its_raw_text(warehouse, text, held):
    salt = ensure_salt(warehouse)
    identifiers = [(EMAIL, JAN[0]), (RECORD, record_value("crm", "C9"))]
    identifiers += [(PHONE, form) for form in phone_values(JAN[1])]
    add_suppressions(warehouse, salt, identifiers, "test")
    condition = text_suppressed_sql("t", sql_string("crm"), Suppressed(salt))
    assert warehouse.execute(f"SELECT {condition} FROM (SELECT ? AS t)", [text]).fetchone() == (held,)
