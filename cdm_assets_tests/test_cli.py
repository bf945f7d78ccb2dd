"""The `cdm` command: --version, validate and schema."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml

from cdm_assets.cli import main
from cdm_assets.config import BUNDLED_CONFIG

ROOT = Path(__file__).resolve().parents[1]
CDM = Path(sys.executable).parent / "cdm"


def test_version_is_the_installed_package_version():
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    shown = subprocess.run([str(CDM), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert shown == f"cdm {expected}"


def test_validate_accepts_a_good_config_and_says_what_it_found(capsys):
    assert main(["validate", str(BUNDLED_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{BUNDLED_CONFIG}: valid for environment 'dev'")
    assert "5 customer" in out and "2 transaction" in out


def test_validate_refuses_a_bad_config_with_the_loaders_message_and_exit_code_1(tmp_path, capsys):
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    del document["sources"]["crm"]["record_id"]
    path = tmp_path / "cdm.yaml"
    path.write_text(yaml.safe_dump(document))
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().err.strip() == f"{path}: sources.crm.record_id: required key is missing"


def test_validate_reads_the_stewards_overrides_file_and_names_a_bad_line(tmp_path, capsys):
    document = {
        "sources": {"crm": {"entity": "customer", "path": "crm/*.csv", "record_id": "id", "fields": {"email": "e"}}},
        "identity": {"overrides": "steward/overrides.csv"},
    }
    path = tmp_path / "cdm.yaml"
    path.write_text(yaml.safe_dump(document))
    overrides = tmp_path / "steward/overrides.csv"
    overrides.parent.mkdir()
    overrides.write_text("source_a,record_id_a,source_b,record_id_b,action\ncrm,1,crm,2,link\n")
    assert main(["validate", str(path)]) == 0
    assert "customer overrides: 1 line(s) read" in capsys.readouterr().out
    overrides.write_text("source_a,record_id_a,source_b,record_id_b,action\ncrm,1,crm,2,join\n")
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().err.strip() == f"{overrides}:2: column action is 'join'; expected link or unlink"


def test_the_schema_accepts_the_bundled_config_and_catches_an_unknown_key(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    document["environments"] = {"prod": {"warehouse": {"duckdb_path": "/srv/cdm/prod.duckdb"}}}
    jsonschema.validate(document, schema)  # raises when the schema refuses the config
    document["sources"]["crm"]["recordid"] = "crm_id"
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    assert any("recordid" in error.message for error in errors)
