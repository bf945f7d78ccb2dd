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

Needs `pip install '.[bench]'`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import duckdb
import pyarrow as pa

MATCH_PROBABILITY = 0.9
PRIOR_RECALL = 0.7
U_SAMPLE_PAIRS = 1e7

# The standardised keys Splink compares; cdm's own rules match on the same ones.
INPUT_SQL = """
SELECT record_key, first_name_key, last_name_key, email_key, phone_key,
       birth_date, postcode_key, address_key, lower(city) AS city
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


def customer_model():
    """The Splink settings: link type, comparisons and blocking rules for prediction."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    # Address, postcode and city in one comparison: as separate ones they would
    # count the same evidence (one home) two or three times.
    location = cl.CustomComparison(
        output_column_name="location",
        comparison_levels=[
            cll.Or(cll.NullLevel("postcode_key"), cll.NullLevel("city")),
            cll.ExactMatchLevel("address_key"),
            cll.ExactMatchLevel("postcode_key"),
            cll.ExactMatchLevel("city", term_frequency_adjustments=True),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        comparisons=[
            cl.NameComparison("first_name_key").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name_key").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email_key").configure(term_frequency_adjustments=True),
            cl.LevenshteinAtThresholds("phone_key", 1).configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("birth_date", input_is_string=False),
            location,
        ],
        blocking_rules_to_generate_predictions=[
            block_on("email_key"),
            block_on("phone_key"),
            block_on("birth_date", "last_name_key"),
            block_on("postcode_key", "first_name_key"),
            block_on("first_name_key", "last_name_key", "city"),
        ],
        retain_matching_columns=False,
    )


def run_splink_reference(con: duckdb.DuckDBPyConnection, seed: int) -> SplinkRun:
    """Train, predict and cluster with Splink on `identity.source_lookup` in `con`.

    Splink's working tables land in `con`'s database; the labels are returned
    as an Arrow table (record_key, cluster).
    """
    from splink import DuckDBAPI, Linker, block_on

    stages: dict[str, float] = {}
    start = mark = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        stages[name] = now - mark
        mark = now

    con.execute(f"CREATE OR REPLACE TEMP VIEW splink_customer_records AS {INPUT_SQL}")
    db_api = DuckDBAPI(connection=con)
    records = db_api.register("splink_customer_records")
    linker = Linker(records, customer_model(), log_level=logging.ERROR)

    training = linker.training
    training.estimate_probability_two_random_records_match(
        [
            block_on("email_key", "first_name_key"),
            block_on("phone_key", "first_name_key"),
            block_on("first_name_key", "last_name_key", "birth_date"),
        ],
        recall=PRIOR_RECALL,
    )
    stage("prior")
    training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=seed)
    stage("u")
    training.estimate_parameters_using_expectation_maximisation(block_on("first_name_key", "last_name_key"))
    training.estimate_parameters_using_expectation_maximisation(block_on("phone_key"))
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
