"""The public data sets of the identity benchmark, written as a user would bring them."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from benchmarks import yardsticks
from cdm_assets.config import load_config
from cdm_assets.domain.identity.source_lookup import build_source_lookup
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets_tests.plans import entity_of


def counts(stick: yardsticks.Yardstick) -> tuple[dict[str, int], int, int]:
    """Records per source, true persons and true pairs of a written set."""
    truth = pd.read_parquet(stick.truth_path)
    sizes = truth.groupby("person_id").size()
    return truth.groupby("source").size().to_dict(), len(sizes), int((sizes * (sizes - 1) // 2).sum())


def source_lookup(stick: yardsticks.Yardstick) -> pd.DataFrame:
    config = load_config(stick.config_path)
    con = duckdb.connect()
    customers = entity_of(config)
    for name, source in customers.sources.items():
        load_raw_source(con, name, source, landed_files(Path(source.path)))
    build_source_lookup(con, customers)
    return con.execute("SELECT * FROM identity.source_lookup").fetchdf()


def test_febrl3_is_5000_records_of_2000_persons(tmp_path):
    stick = yardsticks.load("febrl3", tmp_path)
    assert counts(stick)[:2] == ({"febrl": 5000}, 2000)


def test_febrl4_is_two_files_of_5000_with_5000_true_pairs(tmp_path):
    stick = yardsticks.load("febrl4", tmp_path)
    assert counts(stick) == ({"febrl_a": 5000, "febrl_b": 5000}, 5000, 5000)


@pytest.mark.parametrize(("name", "records", "duplicates"), [("rldata500", 500, 50), ("rldata10000", 10000, 1000)])
def test_rldata_has_its_documented_duplicates(tmp_path, name, records, duplicates):
    stick = yardsticks.load(name, tmp_path)
    assert counts(stick) == ({"rldata": records}, records - duplicates, duplicates)


def test_the_written_config_maps_febrl_columns_to_canonical_fields(tmp_path):
    lookup = source_lookup(yardsticks.load("febrl1", tmp_path))
    assert len(lookup) == 1000
    for column in ("first_name", "last_name", "birth_date", "postcode", "city", "street", "id_social_security_id"):
        assert lookup[column].notna().mean() > 0.9, column


def test_the_written_config_reads_rldata_birth_dates(tmp_path):
    lookup = source_lookup(yardsticks.load("rldata500", tmp_path))
    assert lookup["birth_date"].notna().mean() > 0.95
    assert lookup["last_name"].notna().all()


def test_a_data_set_of_ones_own_is_measured_from_its_config_and_a_csv_truth(tmp_path, capsys):
    """As a user measures data kept outside the repo: their cdm.yaml and a labelled file."""
    from benchmarks import identity_quality

    stick = yardsticks.load("rldata500", tmp_path / "set")
    truth = pd.read_parquet(stick.truth_path)
    labelled = tmp_path / "labels.csv"
    # a labelled sample is enough; a row for a record the sources do not hold is reported
    extra = pd.DataFrame({"source": ["rldata"], "record_id": ["no-such-record"], "person_id": ["p-x"]})
    pd.concat([truth[["source", "record_id", "person_id"]], extra]).to_csv(labelled, index=False)

    assert (
        identity_quality.main(
            ["--config", str(stick.config_path), "--truth", str(labelled), "--no-splink", "--json", "--examples", "2"]
        )
        == 0
    )
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["set"] for row in rows] == [str(stick.config_path)]  # no built-in set besides
    own = rows[0]
    assert own["records"] == 500 and own["truth_rows_unmatched"] == 1 and own["true_pairs"] == 50
    assert own["pair_f1"] > 0.9
    assert "1 truth row(s) name no record" in err
    # the worst disagreements, by record, to look up: RLdata500's misses are persons split in two
    split = own["examples"]["split"]
    assert own["examples"]["merged"] == [] and 1 <= len(split) <= 2
    assert split[0]["customer_ids"] == 2 and all(m.startswith("rldata:r") for m in split[0]["members"])


def test_a_truth_file_without_its_columns_is_refused_naming_the_file(tmp_path, capsys):
    from benchmarks import identity_quality

    stick = yardsticks.load("rldata500", tmp_path / "set")
    labelled = tmp_path / "labels.csv"
    labelled.write_text("source,id,person\nrldata,r1,1\n")
    with pytest.raises(SystemExit):
        identity_quality.main(["--config", str(stick.config_path), "--truth", str(labelled), "--no-splink"])
    assert f"{labelled}: the truth file has no column record_id, person_id" in capsys.readouterr().err


def test_a_reference_clustering_is_scored_as_cdms_own_ids_are():
    from benchmarks.identity_quality import score_labels

    con = duckdb.connect()
    con.execute("CREATE SCHEMA identity")
    con.execute(
        "CREATE TABLE identity.source_lookup AS SELECT * FROM (VALUES "
        "('crm', 'c1', 0), ('crm', 'c2', 1), ('shop', 's1', 2), ('shop', 's2', 3)) t(source, source_record_id, record_key)"
    )
    con.execute(
        "CREATE TEMP TABLE truth AS SELECT * FROM (VALUES "
        "('crm', 'c1', 'ann'), ('shop', 's1', 'ann'), ('crm', 'c2', 'bob'), ('shop', 's2', 'cy')) t(source, record_id, person_id)"
    )
    right = score_labels(con, pd.DataFrame({"record_key": [0, 1, 2, 3], "cluster": [7, 8, 7, 9]}), "r")
    assert (right["pair_f1"], right["customers"], right["largest_cluster"]) == (1.0, 3, 2)
    lumped = score_labels(con, pd.DataFrame({"record_key": [0, 1, 2, 3], "cluster": [5, 5, 5, 5]}), "l")
    assert (lumped["pair_precision"], lumped["pair_recall"], lumped["largest_cluster"]) == (1 / 6, 1.0, 4)
