"""A warehouse file another process holds: a prompt, clear error, never a long silent wait."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cdm_assets.wiring.resources import WarehouseLocked, warehouse_resource

PROJECT = Path(__file__).resolve().parent.parent
HOLD = "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)"


@pytest.fixture
def locked_warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"locked"
    yield path
    holder.kill()
    holder.wait()


def test_a_locked_warehouse_fails_promptly_naming_the_file_and_the_holder(locked_warehouse, write_config, caplog):
    config = write_config({"crm": {"entity": "customer", "path": "x/*.csv", "record_id": "id"}},
                          warehouse={"duckdb_path": str(locked_warehouse)})  # fmt: skip
    started = time.monotonic()
    with pytest.raises(WarehouseLocked) as raised, warehouse_resource(config).get_connection():
        pass
    assert time.monotonic() - started < 15
    assert str(raised.value).startswith(f"{locked_warehouse}: the warehouse is in use by another process")
    assert any("in use by another process" in r.getMessage() for r in caplog.records)


def test_cdm_explain_on_a_locked_warehouse_prints_one_line(locked_warehouse, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cdm_assets.explain", "cus_0000000000000000", "--db", str(locked_warehouse)],
        cwd=PROJECT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # before it: config warnings, the one "waiting" line
    assert last.startswith(f"cdm explain: {locked_warehouse}: the warehouse is in use by another process")
