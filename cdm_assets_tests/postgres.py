"""A real PostgreSQL database for the tests of the production instance (`deploy/dagster.yaml`).

With `DAGSTER_PG_HOST` set, that server is used as it is (with the other
`DAGSTER_PG_*` variables). Otherwise, as root on a machine with Debian's
`postgresql` package (`make system-packages` installs it), the local cluster
is started (`pg_ctlcluster`) and a role and database for the tests are created.
Where neither is possible the tests are skipped with the reason, except in CI
(`CI=true`), which never skips them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

ROLE, PASSWORD = "cdm_test", "cdm_test"
ENV_KEYS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def _as_postgres(sql: str) -> None:
    subprocess.run(
        ["su", "postgres", "-c", f"psql -q -v ON_ERROR_STOP=1 -c {_shell_quote(sql)}"],
        check=True,
        capture_output=True,
        text=True,
    )


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _local_cluster() -> tuple[str, str, int]:
    """(version, name, port) of the first local cluster, started if it was down."""
    listed = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    if not listed.strip():
        _unavailable("postgresql is installed but has no cluster (pg_createcluster)")
    version, name, port, status, *_ = listed.split()
    if status != "online":
        subprocess.run(["pg_ctlcluster", version, name, "start"], check=True, capture_output=True, text=True)
    return version, name, int(port)


def postgres_environment() -> dict[str, str]:
    """`DAGSTER_PG_*` for a fresh, empty database of its own (the instance's storage)."""
    if os.environ.get("DAGSTER_PG_HOST"):
        return {key: os.environ[key] for key in ENV_KEYS if key in os.environ}
    if shutil.which("pg_lsclusters") is None:
        _unavailable("PostgreSQL is missing: install Debian's postgresql package (make system-packages, as root)")
    if os.geteuid() != 0:
        _unavailable("starting the local PostgreSQL cluster needs root (or set DAGSTER_PG_HOST and the rest)")
    _version, _name, port = _local_cluster()
    database = f"dagster_{uuid.uuid4().hex[:12]}"
    exists = subprocess.run(
        ["su", "postgres", "-c", f"psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'\""],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        _as_postgres(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
    _as_postgres(f"CREATE DATABASE {database} OWNER {ROLE}")
    return {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(port),
        "DAGSTER_PG_DB": database,
        "DAGSTER_PG_USERNAME": ROLE,
        "DAGSTER_PG_PASSWORD": PASSWORD,
    }
