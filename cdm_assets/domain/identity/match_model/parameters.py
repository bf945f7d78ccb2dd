"""The match model in the warehouse: one row per comparison level, plus the prior.

`identity.match_model` (or `identity.<entity>_match_model`) holds m, u and
the match weight of every level, which blocking rules trained it, when it
was trained, and a fingerprint of the settings it was trained for. Beside it,
`identity.match_model_frequencies` holds the u of each shared value the
model measured on the records it was trained on (see `ValueFrequencies`). A
model is reused while the fingerprint matches, so unchanged input keeps every
id; it is retrained when missing, on demand, or when its settings change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from cdm_assets.domain.identity.match_model.training import ComparisonParameters, TrainedModel
from cdm_assets.domain.sql import TableName
from cdm_assets.domain.warehouse import (
    arrow_views,
    create_table_as,
    staged_tables,
    swap_in,
    table_columns,
    table_exists,
)

PRIOR = "(prior)"  # the comparison name of the row that holds the prior


@dataclass(frozen=True)
class StoredModel:
    prior: float
    parameters: tuple[ComparisonParameters, ...]
    fingerprint: str
    trained_at: datetime
    first_name_given_surname: float = 1.0
    one_holder_u: Mapping[str, float] = field(default_factory=dict)
    frequencies: TableName | None = None  # None: stored before frequencies were part of the model
    trained_on_records: int | None = None  # the lookup's records when it was trained (None: not recorded)


def frequencies_table(table: TableName) -> TableName:
    """Where the frequencies of the model stored in `table` are kept."""
    return TableName(table.schema, f"{table.name}_frequencies")


def settings_fingerprint(settings: dict) -> str:
    """A short digest of what the model depends on: comparisons, levels, blocking, sampling."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def save_model(
    con: duckdb.DuckDBPyConnection,
    table: TableName,
    model: TrainedModel,
    fingerprint: str,
    measure_frequencies: Callable[[TableName], float],
    trained_on_records: int,
) -> None:
    """Store `model` in `table` and what `measure_frequencies` writes (into the table it is
    given; it returns `first_name_given_surname`) in its frequencies table, in one transaction,
    with the number of records it was trained on."""
    trained_at = datetime.now(UTC).replace(tzinfo=None)
    rows: dict[str, list] = {
        "comparison": [], "level_index": [], "level": [], "m_probability": [], "u_probability": [],
        "match_weight": [], "trained_by": [], "u_given_surname": [], "match_weight_given_surname": [],
    }  # fmt: skip
    for parameters in model.parameters:
        given = parameters.u_given_surname or [None] * len(parameters.levels)
        given_weights = parameters.weights_given_surname() or [None] * len(parameters.levels)
        for index, values in enumerate(
            zip(parameters.levels, parameters.m, parameters.u, parameters.weights(), given, given_weights)
        ):
            level, m, u, weight, u_given, weight_given = values
            row = (parameters.comparison, index, level, m, u, weight, parameters.trained_by, u_given, weight_given)
            for key, value in zip(rows, row):
                rows[key].append(value)
    for key, value in zip(rows, (PRIOR, 0, "match", model.prior, None, None, [], None, None)):
        rows[key].append(value)
    arrow = pa.table(rows)
    for column in ("u_given_surname", "match_weight_given_surname"):  # NULL for most comparisons
        arrow = arrow.set_column(arrow.schema.get_field_index(column), column, arrow[column].cast(pa.float64()))
    arrow = arrow.append_column("fingerprint", pa.array([fingerprint] * len(rows["level"])))
    arrow = arrow.append_column("trained_at", pa.array([trained_at] * len(rows["level"]), pa.timestamp("us")))
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
    name = f"_cdm_match_model_{table.name}"
    frequencies = frequencies_table(table)
    with arrow_views(con, {name: arrow}), staged_tables(con, table, frequencies) as (staging, staged_frequencies):
        given_surname = measure_frequencies(staged_frequencies)
        # on the prior's row: how much a shared surname says about the first name, and the records
        create_table_as(
            con,
            staging,
            f"SELECT *, CASE WHEN comparison = '{PRIOR}' THEN $given END::DOUBLE AS first_name_given_surname, "
            f"CASE WHEN comparison = '{PRIOR}' THEN $records END::BIGINT AS trained_on_records FROM {name}",
            {"given": given_surname, "records": trained_on_records},
        )
        swap_in(con, [(table, staging), (frequencies, staged_frequencies)])


def load_model(con: duckdb.DuckDBPyConnection, table: TableName) -> StoredModel | None:
    """The stored model, or None when there is none."""
    if not table_exists(con, table):
        return None
    # a model stored before the surname-given u existed has no such column (and another fingerprint)
    columns = dict(table_columns(con, table))
    given = "u_given_surname" if "u_given_surname" in columns else "NULL"
    factor = "first_name_given_surname" if "first_name_given_surname" in columns else "NULL"
    records = "trained_on_records" if "trained_on_records" in columns else "NULL"
    rows = con.execute(
        f"""
        SELECT comparison, level, m_probability, u_probability, trained_by, fingerprint, trained_at,
               {given}, {factor}, {records}
        FROM {table.sql} ORDER BY comparison, level_index
        """
    ).fetchall()
    if not rows:
        return None
    prior, given_surname, trained_on = next((row[2], row[8], row[9]) for row in rows if row[0] == PRIOR)
    parameters: dict[str, ComparisonParameters] = {}
    for comparison, level, m, u, trained_by, _, _, u_given, _, _ in rows:
        if comparison == PRIOR:
            continue
        entry = parameters.setdefault(comparison, ComparisonParameters(comparison, [], [], [], list(trained_by)))
        entry.levels.append(level)
        entry.m.append(m)
        entry.u.append(u)
        if u_given is not None:
            entry.u_given_surname = [*(entry.u_given_surname or []), u_given]
    frequencies = frequencies_table(table)
    if not table_exists(con, frequencies):
        return StoredModel(prior, tuple(parameters.values()), rows[0][5], rows[0][6])
    one_holder = con.execute(
        f"SELECT comparison, u FROM {frequencies.sql} WHERE value IS NULL ORDER BY comparison"
    ).fetchall()
    return StoredModel(
        prior, tuple(parameters.values()), rows[0][5], rows[0][6],
        first_name_given_surname=1.0 if given_surname is None else given_surname,
        one_holder_u=dict(one_holder), frequencies=frequencies, trained_on_records=trained_on,
    )  # fmt: skip
