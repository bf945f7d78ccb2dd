"""The dbt example: a dbt project on cdm's marts in the same code location, one lineage
from the landing files to the dbt models, built in the `duckdb` pool."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml

from cdm_assets.config import BUNDLED_CONFIG
from cdm_assets.sample import generate
from cdm_assets_tests.conftest import materialize_all

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dbt_customer_segments"
DBT = Path(sys.executable).parent / "dbt"


def test_the_dbt_models_build_on_the_marts_with_one_lineage(tmp_path, monkeypatch):
    generate(persons=300, seed=7, out=tmp_path)
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    for source in document["sources"].values():
        source["path"] = source["path"].removeprefix("../../data/")
    (tmp_path / "cdm.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("CDM_CONFIG", str(tmp_path / "cdm.yaml"))
    monkeypatch.setenv("CDM_DUCKDB_PATH", str(tmp_path / "cdm.duckdb"))
    project = shutil.copytree(EXAMPLE, tmp_path / "dbt", ignore=shutil.ignore_patterns("target", "logs"))
    subprocess.run(
        [str(DBT), "parse", "--project-dir", str(project), "--profiles-dir", str(project)],
        check=True,
        capture_output=True,
        text=True,
    )
    spec = importlib.util.spec_from_file_location("dbt_customer_segments", project / "definitions.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    graph = example.defs.resolve_asset_graph()
    rfm = graph.get(example.dg.AssetKey(["analytics", "rfm_scores"]))
    assert {key.to_user_string() for key in rfm.parent_keys} == {"marts/customer_metrics", "marts/transactions"}
    assert rfm.group_name == "analytics"
    assert example.customer_segments.op.pool == "duckdb"  # never beside a cdm step on the file

    result = materialize_all(example.defs)
    assert result.success
    materialised = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert {"raw/crm", "identity/customer_id_map", "marts/customers", "analytics/rfm_scores",
            "analytics/customer_segments"} <= materialised  # fmt: skip
    with duckdb.connect(str(tmp_path / "cdm.duckdb"), read_only=True) as con:
        buying = con.execute("SELECT count(*) FROM marts.customer_metrics WHERE orders > 0").fetchone()[0]
        scored = con.execute("SELECT count(*) FROM main_analytics.rfm_scores").fetchone()[0]
        segmented = con.execute("SELECT sum(customers) FROM main_analytics.customer_segments").fetchone()[0]
        scores = con.execute(
            "SELECT min(recency_score), max(recency_score), min(monetary_score), max(monetary_score) "
            "FROM main_analytics.rfm_scores"
        ).fetchone()
    assert buying > 50 and scored == buying and segmented == buying
    assert scores == (1, 5, 1, 5)
