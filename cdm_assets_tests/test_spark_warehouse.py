"""The Spark engine's connection answers the domain's statements as DuckDB does.

Each statement below is written once, in DuckDB's dialect, and run on a real DuckDB
file and on a real local Spark session whose tables are Parquet directories; the two
must give the same rows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cdm_assets.domain.spark.connection import SparkWarehouse, TableMissing
from cdm_assets.domain.sql import SCRATCH, StatementError, TableName, hash_bucket
from cdm_assets.domain.warehouse import number_in_order, swap_in

pytestmark = pytest.mark.spark

SETUP = [
    ('CREATE SCHEMA IF NOT EXISTS "raw"', None),
    (
        "CREATE TABLE IF NOT EXISTS raw.quarantine (source VARCHAR NOT NULL, reason VARCHAR, "
        "_row_number BIGINT, quarantined_at TIMESTAMP NOT NULL DEFAULT current_timestamp)",
        None,
    ),
    ("CREATE TABLE raw.crm AS SELECT * FROM (VALUES (1, 'Ann', 'a@x.org'), (2, 'Bob', NULL), (3, NULL, 'c@x.org')) AS v(id, name, email)", None),
]  # fmt: skip


@pytest.fixture
def engines(tmp_path: Path, spark):
    """The same statements run on DuckDB and on Spark; yields a runner returning both results."""
    duck = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    sparkling = SparkWarehouse(spark, str(tmp_path / "spark-warehouse"))

    def both(sql: str, params: object = None) -> tuple[list, list]:
        expected = duck.execute(sql, params).fetchall() if params is not None else duck.execute(sql).fetchall()
        return expected, sparkling.execute(sql, params).fetchall()

    for sql, params in SETUP:
        both(sql, params)
    yield both, duck, sparkling
    sparkling.close()
    duck.close()


def test_queries_with_parameters_give_duckdbs_rows(engines):
    both, _, _ = engines
    for sql, params in [
        ("SELECT id, upper(name) FROM raw.crm WHERE id >= ? ORDER BY id", [2]),
        ("SELECT count(*) FILTER (WHERE email IS NULL), count(*) FROM raw.crm WHERE list_contains(?, name) OR name IS NULL", [["Ann", "Bob"]]),
        ("SELECT * REPLACE (coalesce(name, $fill) AS name) FROM raw.crm ORDER BY id", {"fill": "?"}),
        ("SELECT * EXCLUDE (email) FROM raw.crm ORDER BY id", None),
        ("SELECT * FROM (SELECT id FROM raw.crm UNION ALL BY NAME SELECT name, id + 10 AS id FROM raw.crm) ORDER BY id", None),
    ]:  # fmt: skip
        expected, got = both(sql, params)
        assert got == expected, sql


def test_writes_in_place_end_as_in_duckdb(engines):
    both, _, _ = engines
    for sql, params in [
        ("INSERT INTO raw.quarantine (source, reason, _row_number) VALUES (?, ?, ?)", ["crm", "bad email", 7]),
        ("INSERT INTO raw.quarantine BY NAME SELECT 'shop' AS source, 8::BIGINT AS _row_number", None),
        ("DELETE FROM raw.crm WHERE email IS NULL", None),
        ("CREATE TEMP TABLE fixes AS SELECT 3 AS id, 'Cleo' AS name", None),
        ('UPDATE raw.crm AS c SET name = f.name FROM "temp"."fixes" AS f WHERE c.id = f.id', None),
        ("ALTER TABLE raw.crm DROP COLUMN email", None),
        ("ALTER TABLE raw.crm ADD COLUMN IF NOT EXISTS city VARCHAR", None),
    ]:  # fmt: skip
        both(sql, params)
    for sql in [
        "SELECT * FROM raw.crm ORDER BY id",
        "SELECT source, reason, _row_number, quarantined_at IS NOT NULL FROM raw.quarantine ORDER BY source",
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = 'crm' ORDER BY ordinal_position",
    ]:  # fmt: skip
        expected, got = both(sql)
        assert got == expected, sql


def test_the_statements_that_follow_a_batch_give_duckdbs_rows(engines):
    """Forms only the steps that follow a batch use: row values IN a subquery's row values,
    a whole row's hash matched in a join, and a table for hashes declared UBIGINT (Spark's
    hashes are signed: the column is BIGINT there, the values are the engine's own)."""
    both, _, _ = engines
    for sql in [
        "CREATE TEMP TABLE blocks (rule_order INTEGER, block UBIGINT)",
        'INSERT INTO "temp"."blocks" SELECT id, hash(name) FROM raw.crm WHERE name IS NOT NULL',
    ]:
        both(sql)
    for sql in [
        "SELECT id FROM raw.crm WHERE (id, name) IN (SELECT (id, name) FROM raw.crm WHERE id < 3) ORDER BY id",
        'SELECT count(*), count(DISTINCT block), min(rule_order) FROM "temp"."blocks"',
        """SELECT r.id FROM (SELECT r.*, hash(r) AS row_hash FROM raw.crm AS r) AS r
           ANTI JOIN (SELECT p.id, hash(p) AS row_hash FROM raw.crm AS p WHERE id <> 2) AS previous
                  ON previous.id = r.id AND previous.row_hash = r.row_hash""",
    ]:
        expected, got = both(sql)
        assert got == expected, sql


def test_rows_are_numbered_in_duckdbs_order_across_spark_partitions(engines, spark):
    """New records take keys in (source, record id) order. Spark numbers range partitions
    apart, each from its offset, not in one task: the numbers must still be DuckDB's."""
    both, duck, sparkling = engines
    ids = [f"{prefix}{n}" for prefix in ("A", "a", "é", "z-", "") for n in (1, 2, 10, 11, 100, 7)]
    rows = ", ".join(f"('{source}', '{record_id}')" for source in ("crm", "shop", "loyalty") for record_id in ids)
    both(f"CREATE TABLE raw.ids AS SELECT * FROM (VALUES {rows}) AS v(source, source_record_id)")
    numbered = TableName(SCRATCH, "numbered")
    settings = {"spark.sql.shuffle.partitions": "5", "spark.sql.adaptive.coalescePartitions.enabled": "false"}
    kept = {key: spark.conf.get(key) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        for con in (duck, sparkling):
            number_in_order(con, TableName("raw", "ids"), ("source", "source_record_id"), 1000, numbered)
    finally:
        for key, value in kept.items():
            spark.conf.set(key, value)
    expected, got = both(f"SELECT record_key, source, source_record_id FROM {numbered.sql} ORDER BY record_key")
    assert got == expected
    assert [row[0] for row in got] == list(range(1000, 1000 + 3 * len(ids)))


def test_every_row_falls_in_one_hash_bucket_on_both_engines(engines):
    """Large golden-record builds go in passes of customers drawn by hash bucket. Spark's
    hashes are signed: a bare `hash % n` left the customers of negative remainders out of
    every pass (a quarter of them at 5M persons, two passes)."""
    both, _, _ = engines
    both(
        "CREATE TABLE raw.people AS SELECT 'c' || CAST(n AS VARCHAR) AS customer_id FROM (SELECT unnest(range(400)) AS n)"
    )
    for buckets in (2, 3, 7):
        counts = [
            both(
                f"SELECT count(*) FROM raw.people WHERE {hash_bucket('customer_id', 'n')} = $b", {"n": buckets, "b": b}
            )
            for b in range(buckets)
        ]
        for in_duckdb, on_spark in counts:
            assert on_spark[0][0] > 0 and in_duckdb[0][0] > 0
        assert sum(on_spark[0][0] for _, on_spark in counts) == 400
        assert sum(in_duckdb[0][0] for in_duckdb, _ in counts) == 400


def test_a_table_is_a_parquet_directory_any_engine_reads(engines, tmp_path: Path):
    written = duckdb.execute(
        f"SELECT id, name FROM read_parquet('{tmp_path}/spark-warehouse/raw/crm/*.parquet') ORDER BY id"
    )
    assert written.fetchall() == [(1, "Ann"), (2, "Bob"), (3, None)]


def test_a_swap_replaces_the_table_and_a_failed_build_leaves_it(engines, tmp_path: Path):
    _, _, sparkling = engines
    crm, staging = TableName("raw", "crm"), TableName("raw", "crm").staging()
    sparkling.execute(f"CREATE TABLE {staging.sql} AS SELECT id FROM raw.crm WHERE id > 1")
    swap_in(sparkling, [(crm, staging)])
    assert sparkling.execute("SELECT id FROM raw.crm ORDER BY id").fetchall() == [(2,), (3,)]
    with pytest.raises(Exception, match="boom"):
        sparkling.execute(
            "CREATE OR REPLACE TABLE raw.crm AS SELECT CASE WHEN id = 3 THEN error('boom') END AS id FROM raw.crm"
        )
    assert sparkling.execute("SELECT id FROM raw.crm ORDER BY id").fetchall() == [(2,), (3,)]
    with pytest.raises(TableMissing, match=r"raw\.gone"):
        sparkling.execute("SELECT * FROM raw.gone")


def test_duckdbs_functions_give_duckdbs_values_on_spark(engines):
    """The idioms the domain uses where Spark's functions differ: string similarities,
    regexp_replace's first match and back-references, named groups, timestamps with
    offsets, strptime formats, day differences, list positions and lambda indexes."""
    both, _, _ = engines
    texts = (
        "('Bourgondië, van', 'Bourgondie'), ('martha', 'marhta'), ('', ''), "
        "('CA', 'ABC'), (NULL, 'x'), ('dixon', 'dicksonx')"
    )
    expected, got = both(
        f"""
        SELECT a, jaro_winkler_similarity(a, b), jaro_similarity(a, b), damerau_levenshtein(a, b),
               strip_accents(a), regexp_replace(a, '^(.*), (.*)$', '\\2 \\1'), regexp_replace(a, 'a', 'X'),
               regexp_replace(a, '[aeiou]', '', 'g'), regexp_replace(a, '(r)(t)', '\\2\\1\\0'),
               regexp_extract(a, '^(\\w+)\\W*(\\w*)', ['first', 'second']).second,
               list_position(['martha', 'dixon'], a), list_filter(['x', 'y', 'z'], lambda s, i: i > 1)
        FROM (VALUES {texts}) AS v(a, b) ORDER BY a NULLS FIRST
        """
    )
    assert got == expected
    moments = "('2024-03-01T10:00:00+02:00'), ('2024-03-01 10:00'), ('2024-3-1 9:05'), ('01/03/2024'), ('garbage')"
    expected, got = both(
        f"""
        SELECT t, CAST(timezone('UTC', TRY_CAST(t AS TIMESTAMPTZ)) AS TIMESTAMP),
               CAST(try_strptime(t, '%Y-%m-%d %H:%M') AS TIMESTAMP),
               date_diff('day', CAST(try_strptime(t, '%Y-%m-%d %H:%M') AS TIMESTAMP), ?::TIMESTAMP)
        FROM (VALUES {moments}) AS v(t) ORDER BY t
        """,
        ["2024-03-05 08:00:00"],
    )
    assert got == expected


def test_a_statement_spark_cannot_run_names_itself(engines):
    _, _, sparkling = engines
    with pytest.raises(StatementError, match=r"Spark: .*no_such_column.*\(in: SELECT no_such_column FROM raw\.crm"):
        sparkling.execute("SELECT no_such_column FROM raw.crm")
    with pytest.raises(StatementError, match="cannot read the statement"):
        sparkling.execute("SELEC 1 FROM")


def test_cannot_link_drops_duckdbs_weak_links_with_the_components_found_in_rounds(engines):
    from cdm_assets.domain.identity.cannot_link import drop_weak_links_in_conflict

    both, duck, sparkling = engines
    both('CREATE SCHEMA IF NOT EXISTS "identity"')
    both(
        "CREATE TABLE identity.lookup AS SELECT * FROM (VALUES (0, DATE '1980-01-01'), (1, NULL), "
        "(2, DATE '1990-02-02'), (3, DATE '1970-01-01'), (4, DATE '1970-01-01'), (5, NULL)) AS v(record_key, birth_date)"
    )
    # 0-1-2 joins two birth dates on weak links; 3-4 agrees; 4-5 and 0-2 rest on strong links
    both(
        "CREATE TABLE identity.links AS SELECT * FROM (VALUES (0, 1, 1, true), (1, 2, 1, true), (3, 4, 1, true), "
        "(4, 5, 2, false), (0, 2, 0, false)) AS v(key_a, key_b, rule_order, weak)"
    )
    lookup, links = TableName("identity", "lookup"), TableName("identity", "links")
    dropped = [
        drop_weak_links_in_conflict(con, lookup, links, {"birth_date": "birth_date"}, {"birth_date": [1]})
        for con in (duck, sparkling)
    ]
    assert dropped == [2, 2]
    kept, on_spark = both("SELECT key_a, key_b FROM identity.links ORDER BY ALL")
    assert kept == on_spark == [(0, 2), (3, 4), (4, 5)]


def test_clusters_a_stewards_overrides_shaped_are_duckdbs_with_groups_found_in_rounds(engines):
    from cdm_assets.domain.identity.overrides import clusters_made_by_overrides

    both, duck, sparkling = engines
    both('CREATE SCHEMA IF NOT EXISTS "identity"')
    # the steward linked 2 and 3 and cut the phone link between 4 and 5
    both(
        "CREATE TABLE identity.graph AS SELECT * FROM (VALUES (0, 1, 'email'), (2, 3, 'override')) AS v(key_a, key_b, rule)"
    )
    both("CREATE TABLE identity.cut AS SELECT * FROM (VALUES (4, 5, 'phone')) AS v(key_a, key_b, rule)")
    both(
        "CREATE TABLE identity.clusters AS SELECT * FROM (VALUES (0, 0), (1, 0), (2, 2), (3, 2), (4, 4), (5, 5), (6, 6)) "
        "AS v(record_key, cluster)"
    )
    graph, cut, made = TableName("identity", "graph"), TableName("identity", "cut"), TableName("identity", "made")
    shaped = [
        clusters_made_by_overrides(con, graph, cut, TableName("identity", "clusters").sql, made)
        for con in (duck, sparkling)
    ]
    assert shaped == [3, 3]
    in_duckdb, on_spark = both("SELECT cluster FROM identity.made ORDER BY cluster")
    assert in_duckdb == on_spark == [(2,), (4,), (5,)]


def test_a_golden_address_tied_on_every_criterion_is_duckdbs_on_spark(engines):
    """Engines order a missing part inside a struct apart; the surviving address must not."""
    from cdm_assets.domain.marts.customers import _surviving_address

    both, _, _ = engines
    both('CREATE SCHEMA IF NOT EXISTS "marts"')
    # two records of one loyalty source, same precedence and no update time: the same
    # street, one without its city; and two addresses that differ in the street alone
    both(
        "CREATE TABLE marts.records AS SELECT * FROM (VALUES "
        "('c1', 3, NULL::TIMESTAMP, 'Kerkstraat 1', '1', '1799 CR', 'Haarlem', NULL), "
        "('c1', 3, NULL::TIMESTAMP, 'Kerkstraat 1', '1', '1799 CR', NULL, NULL), "
        "('c2', 3, NULL::TIMESTAMP, NULL, NULL, '7468 LJ', 'Zwolle', NULL), "
        "('c2', 3, NULL::TIMESTAMP, 'Molenweg 2', '2', '7468 LJ', 'Zwolle', NULL)) "
        "AS v(customer_id, precedence, updated_at, street, house_number, postcode, city, country)"
    )
    chosen = _surviving_address(TableName("marts", "records"), "precedence")
    in_duckdb, on_spark = both(f"SELECT * FROM ({chosen}) ORDER BY customer_id")
    assert in_duckdb == [
        ("c1", "Kerkstraat 1", "1", "1799 CR", "Haarlem", None),
        ("c2", "Molenweg 2", "2", "7468 LJ", "Zwolle", None),
    ]
    assert on_spark == in_duckdb
