"""Splink 5 on DuckDB as a second reference for the identity step.

Splink reads the records cdm has standardised (`identity.source_lookup`): the
same name, email, phone, postcode and address keys cdm matches on, with
placeholders already removed, so the comparison is between two ways of
matching, not two ways of cleaning. The model is a conventional
Fellegi-Sunter one, built from Splink's own comparison library; the
threshold was fixed beforehand, and the model had one round of error
inspection on 10,000 persons (which added term frequencies to email, since
family inboxes are shared, and moved EM training off birth date + postcode,
which twins share):

- blocking for prediction on email, phone, birth date + last name,
  postcode + first name, and first + last name + city;
- comparisons: first and last name (Jaro-Winkler levels), email, phone
  (exact, one edit), date of birth, and one location comparison (address,
  then postcode, then city); exact matches of names, email, phone and city
  are adjusted for how common the value is;
- the prior from deterministic rules (email + first name, phone + first
  name, full name + birth date) at an assumed recall of 0.7; u from 10
  million random pairs with a fixed seed; m by expectation maximisation on
  two blocking rules (first + last name; phone);
- pairs at match probability >= 0.9 are links; clusters are their connected
  components.

On other data sets (`benchmarks/identity_quality.py`) the model keeps only
what the records carry: a comparison, blocking rule or training rule on a
key that no record has is left out. Without email and phone, prediction also
blocks on first name + birth date and on first + last name, and EM trains
names on birth-date blocks instead of phone blocks, and the prior counts
pairs that share a birth date and one of the names as well. Where every pair of an EM
block matches (RLdata500's name blocks), EM runs again with the prior fixed. Source identifiers the
caller names (FEBRL's social security number) get a comparison (exact, one
edit) and a blocking rule of their own. On the sample data, which carries
every key, the model is the one described above.

Needs `pip install '.[bench]'`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from cdm_assets.domain.sql import quote_ident

MATCH_PROBABILITY = 0.9
PRIOR_RECALL = 0.7
U_SAMPLE_PAIRS = 1e7

# The standardised keys Splink compares; cdm's own rules match on the same ones.
KEY_COLUMNS = (
    "first_name_key",
    "last_name_key",
    "email_key",
    "phone_key",
    "birth_date",
    "postcode_key",
    "address_key",
    "city",
)
INPUT_SQL = """
SELECT record_key, first_name_key, last_name_key, email_key, phone_key,
       birth_date, postcode_key, address_key, lower(city) AS city{identifiers}
FROM identity.source_lookup
"""


@dataclass(frozen=True)
class SplinkRun:
    """What the reference run produced: its time, per stage, and one cluster label per record."""

    seconds: float
    stage_seconds: dict[str, float]
    links: int
    labels: pa.Table  # record_key, cluster


def splink_available() -> bool:
    """Whether the optional `bench` extra is installed."""
    try:
        import splink  # noqa: F401
    except ImportError:
        return False
    return True


def customer_model(present: frozenset[str] = frozenset(KEY_COLUMNS), identifiers: tuple[str, ...] = ()):
    """The Splink settings: link type, comparisons and blocking rules for prediction.

    `present`: the key columns some record carries; `identifiers`: source
    identifier columns to compare (see the module docstring).
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    comparisons = [
        cl.NameComparison("first_name_key").configure(term_frequency_adjustments=True),
        cl.NameComparison("last_name_key").configure(term_frequency_adjustments=True),
        cl.EmailComparison("email_key").configure(term_frequency_adjustments=True),
        cl.LevenshteinAtThresholds("phone_key", 1).configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("birth_date", input_is_string=False),
    ]
    comparisons = [c for c, column in zip(comparisons, KEY_COLUMNS[:5]) if column in present]
    # Address, postcode and city in one comparison: as separate ones they would
    # count the same evidence (one home) two or three times.
    places = [column for column in ("postcode_key", "city") if column in present]
    if places:
        missing = cll.Or(*(cll.NullLevel(c) for c in places)) if len(places) > 1 else cll.NullLevel(places[0])
        exact = [
            cll.ExactMatchLevel(c, term_frequency_adjustments=c == "city")
            for c in ("address_key", "postcode_key", "city")
            if c in present
        ]
        comparisons.append(
            cl.CustomComparison(output_column_name="location", comparison_levels=[missing, *exact, cll.ElseLevel()])
        )
    comparisons += [cl.LevenshteinAtThresholds(column, 1) for column in identifiers]
    blocking = [
        block_on(*columns)
        for columns in (
            ("email_key",),
            ("phone_key",),
            ("birth_date", "last_name_key"),
            ("postcode_key", "first_name_key"),
            ("first_name_key", "last_name_key", "city"),
        )
        if present.issuperset(columns)
    ]
    if not present & {"email_key", "phone_key"}:  # fewer strong keys: block wider on names and birth dates
        blocking += [block_on("first_name_key", "birth_date"), block_on("first_name_key", "last_name_key")]
    blocking += [block_on(column) for column in identifiers]
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking,
        retain_matching_columns=False,
    )


def present_keys(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """The key columns of `identity.source_lookup` that at least one record carries."""
    counts = con.execute(
        "SELECT " + ", ".join(f"count({c})" for c in KEY_COLUMNS) + " FROM identity.source_lookup"
    ).fetchall()[0]
    return frozenset(c for c, n in zip(KEY_COLUMNS, counts) if n)


def run_splink_reference(con: duckdb.DuckDBPyConnection, seed: int, identifiers: tuple[str, ...] = ()) -> SplinkRun:
    """Train, predict and cluster with Splink on `identity.source_lookup` in `con`.

    Splink's working tables land in `con`'s database; the labels are returned
    as an Arrow table (record_key, cluster). `identifiers`: source identifier
    columns of the lookup (`id_<name>`) to compare too.
    """
    from splink import DuckDBAPI, Linker, block_on

    stages: dict[str, float] = {}
    start = mark = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        stages[name] = now - mark
        mark = now

    present = present_keys(con)
    extra = "".join(f", {quote_ident(c)}" for c in identifiers)
    con.execute(f"CREATE OR REPLACE TEMP VIEW splink_customer_records AS {INPUT_SQL.format(identifiers=extra)}")
    db_api = DuckDBAPI(connection=con)
    records = db_api.register("splink_customer_records")
    linker = Linker(records, customer_model(present, identifiers), log_level=logging.ERROR)

    training = linker.training
    deterministic = [
        columns
        for columns in (
            ("email_key", "first_name_key"),
            ("phone_key", "first_name_key"),
            ("first_name_key", "last_name_key", "birth_date"),
        )
        if present.issuperset(columns)
    ]
    if not present & {"email_key", "phone_key"}:  # a person's records may differ in any one of names and birth date
        deterministic += [("first_name_key", "birth_date"), ("last_name_key", "birth_date")]
    if deterministic:
        training.estimate_probability_two_random_records_match(
            [block_on(*columns) for columns in deterministic], recall=PRIOR_RECALL
        )
    stage("prior")
    training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=seed)
    stage("u")
    names_trained_on = "phone_key" if "phone_key" in present else "birth_date"
    for columns in (("first_name_key", "last_name_key"), (names_trained_on,)):
        try:
            training.estimate_parameters_using_expectation_maximisation(block_on(*columns))
        except ValueError:  # every pair of a small, clean block matched: the block's prior reached 1
            training.estimate_parameters_using_expectation_maximisation(
                block_on(*columns), fix_probability_two_random_records_match=True
            )
    stage("m (EM)")

    predictions = linker.inference.predict(threshold_match_probability=MATCH_PROBABILITY)
    stage("predict")

    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=MATCH_PROBABILITY
    )
    labels = clusters.as_duckdbpyrelation().select("record_key, cluster_id AS cluster").to_arrow_table()
    stage("cluster")
    seconds = time.perf_counter() - start

    links = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchall()[0][0]
    linker.table_management.delete_tables_created_by_splink_from_db()
    con.execute("DROP VIEW splink_customer_records")
    return SplinkRun(seconds=seconds, stage_seconds=stages, links=links, labels=labels)
