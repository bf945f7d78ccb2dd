"""How much of cdm's SQL reads as Spark SQL today: a survey for running on Spark (issue #17).

    python benchmarks/spark_sql_survey.py --persons 10000      # needs sqlglot: pip install '.[bench]'

Builds everything once on the generated sample in DuckDB (raw loads, source
lookup, match model, identity graph, Customer IDs, the four marts, the data
tests), a first time in full and a second time following a small batch, through
a connection that records every statement the domain sends and which module
sent it. Each distinct statement (staging names and literals in lists set
aside) is transpiled from DuckDB's dialect to Spark's with sqlglot, raising on
what the Spark dialect lacks. Printed per module: the statements, how many
transpile, and why the others do not.

Transpiling is not running: a statement that transpiles may still fail on Spark
or give another result (types, NULL ordering, hash functions), and the Python
steps (the clustering with scipy, phone numbers, names) are not SQL at all. It
tells where the work for Spark lies, not that it is done.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import tempfile
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.identity_quality import SEED, sample_config
from cdm_assets.config import load_config
from cdm_assets.config.plan import resolve_plan
from cdm_assets.domain.identity.resolution import assign_ids_from_graph, build_graph
from cdm_assets.domain.identity.source_lookup import build_source_lookup_counting_nulls
from cdm_assets.domain.marts import data_tests
from cdm_assets.domain.marts.customer_metrics import build_customer_metrics
from cdm_assets.domain.marts.customers import build_customers
from cdm_assets.domain.marts.events import build_events
from cdm_assets.domain.marts.transactions import build_transactions
from cdm_assets.domain.raw.load import landed_files, load_raw_source
from cdm_assets.domain.vocabulary import CUSTOMER
from cdm_assets.sample import generate

DOMAIN = str(Path(__file__).resolve().parents[1] / "cdm_assets" / "domain")
# staging and scratch names carry a process token and a random part; the rest of a statement is its shape
_TOKENS = re.compile(r"_[0-9a-f]{8}(?=[_\"])")
_SPACE = re.compile(r"\s+")
_HELPERS = ("/warehouse.py", "/sql.py")


class RecordingConnection:
    """A DuckDB connection that records each statement with the domain module that sent it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, statements: dict[str, tuple[str, str]]) -> None:
        self._con, self._statements = con, statements

    def _record(self, sql: str) -> None:
        module = "?"
        for frame in inspect.stack()[2:]:  # the first domain module that is not a warehouse helper
            if frame.filename.startswith(DOMAIN) and not frame.filename.endswith(_HELPERS):
                module = frame.filename[len(DOMAIN) + 1 : -3].replace("/", ".")
                break
        # one entry per shape (the key), transpiled as sent (line comments end at the line's end)
        self._statements.setdefault(_SPACE.sub(" ", _TOKENS.sub("_X", sql)).strip(), (module, sql))

    def execute(self, sql: str, *args, **kwargs):
        self._record(sql)
        return self._con.execute(sql, *args, **kwargs)

    def sql(self, sql: str, *args, **kwargs):
        self._record(sql)
        return self._con.sql(sql, *args, **kwargs)

    def executemany(self, sql: str, *args, **kwargs):
        self._record(sql)
        return self._con.executemany(sql, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def build_everything(con, plan, entity, full: bool, now: datetime) -> None:
    for name, source in plan.sources.items():
        load_raw_source(con, name, source, landed_files(Path(source.path)), full=full)
    build_source_lookup_counting_nulls(con, entity, full=full)
    build_graph(con, entity, full=full)
    assign_ids_from_graph(con, entity.tables, now=now, full=full)
    build_customers(con, entity, full=full)
    build_transactions(con, plan, full=full)
    build_events(con, plan, full=full)
    build_customer_metrics(con, entity.tables, as_of=now, full=full)
    tables = entity.tables
    data_tests.records_without_exactly_one_customer_id(con, tables)
    data_tests.duplicate_customer_ids(con, tables)
    data_tests.oversized_clusters(con, entity.max_cluster_size, tables)
    data_tests.negative_amounts(con)


def transpiled(sql: str) -> str | None:
    """None when the statement transpiles to Spark SQL, else why not (the first line of the error)."""
    import sqlglot
    from sqlglot.errors import ErrorLevel, SqlglotError

    try:
        sqlglot.transpile(sql, read="duckdb", write="spark", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as error:
        found = getattr(error, "errors", None)
        if found:  # a parse error: what the parser expected, and the DuckDB token it met there
            return f"does not parse: {found[0]['description']} at `{found[0]['highlight']}`"
        return f"no Spark form: {str(error).splitlines()[0][:100]}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=10_000)
    args = parser.parse_args(argv)
    statements: dict[str, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="cdm-survey-") as folder:
        out = Path(folder)
        generate(persons=args.persons, seed=SEED, out=out)
        config = load_config(sample_config(out))
        plan = resolve_plan(config)
        entity = plan.entities[CUSTOMER]
        con = RecordingConnection(duckdb.connect(str(out / "survey.duckdb")), statements)
        build_everything(con, plan, entity, full=True, now=datetime(2026, 12, 1))
        batch = out / "landing" / "crm" / "zz_survey.csv"  # a small batch, so the following steps run too
        crm = plan.sources["crm"]
        rows = con.execute("SELECT * FROM raw.crm LIMIT 20").fetchdf().drop(columns=["_file", "_row_number"])
        rows[crm.record_id] = [f"survey{i}" for i in range(len(rows))]
        rows.to_csv(batch, index=False)
        build_everything(con, plan, entity, full=False, now=datetime(2026, 12, 2))
    by_module: dict[str, Counter] = defaultdict(Counter)
    reasons: Counter = Counter()
    examples: dict[str, str] = {}
    for shape, (module, sql) in statements.items():
        if module == "?":
            continue  # the survey's own queries
        reason = transpiled(sql)
        by_module[module]["statements"] += 1
        by_module[module]["transpile"] += reason is None
        if reason is not None:
            reasons[reason] += 1
            examples.setdefault(reason, f"{module}: {shape[:150]}")
    total = sum(c["statements"] for c in by_module.values())
    clean = sum(c["transpile"] for c in by_module.values())
    print(f"\n{total} distinct statements, {clean} transpile to Spark SQL ({clean / total:.0%})\n")
    print("| domain module | statements | transpile |")
    print("|---|---:|---:|")
    for module, counts in sorted(by_module.items(), key=lambda item: -item[1]["statements"]):
        print(f"| {module} | {counts['statements']} | {counts['transpile']} |")
    print("\n| why a statement does not transpile | statements | e.g. |")
    print("|---|---:|---|")
    for reason, count in reasons.most_common(25):
        example = examples[reason].replace("|", "/").replace("`", "'")
        print(f"| {reason.replace('|', '/')} | {count} | `{example}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
