"""`SparkWarehouse`: the connection the domain's steps talk to, over a Spark session.

It answers the part of DuckDB's connection the domain uses (`execute` with `?` or
`$name` parameters, `sql`, `register`, results fetched as rows, pandas, NumPy or
Arrow) with Spark:

- a query runs as Spark SQL, rendered from DuckDB's dialect (`dialect.py`);
- a table of schema `s` is the Parquet directory `<warehouse_dir>/s/<name>/`; a
  scratch table (`CREATE TEMP TABLE`, schema `temp`) lives in a folder of its own
  that closing the connection deletes;
- every statement that writes a table (CREATE TABLE AS, INSERT, DELETE, UPDATE,
  ALTER TABLE) writes the whole new version under a staging name and swaps it in
  by rename (`storage.py`). Parquet keeps no deletes or updates in place: a DELETE
  rewrites its table, which is what a full build costs anyway.

Spark has no transactions across tables: BEGIN, COMMIT and ROLLBACK do nothing, so
the tables of one swap are each replaced whole, one after the other; a step that
fails between two of them leaves the first new and the second old. Constraints
(PRIMARY KEY, NOT NULL) are not enforced; column defaults are kept beside the table.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import uuid
from collections.abc import Mapping, Sequence

import sqlglot
from sqlglot import exp

from cdm_assets.domain.spark import dialect
from cdm_assets.domain.spark.dialect import UnsupportedStatement, parquet_table, render
from cdm_assets.domain.spark.functions import register_functions
from cdm_assets.domain.spark.storage import SCRATCH_FOLDER, ParquetStorage
from cdm_assets.domain.sql import PROCESS_TOKEN, SCRATCH, StatementError, TableName

_DEFAULTS_FILE = "_cdm_defaults.json"  # hidden from Parquet readers (leading underscore)
# Spark's type names as DuckDB names them, for DESCRIBE and information_schema
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "bigint": "BIGINT",
    "int": "INTEGER",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP",
    "binary": "BLOB",
}


class TableMissing(StatementError, LookupError):
    """A statement names a table the warehouse does not hold."""


def duckdb_type(spark_type: str) -> str:
    if spark_type.startswith("decimal"):
        return spark_type.upper()
    if spark_type.startswith("array<") and spark_type.endswith(">"):
        return duckdb_type(spark_type[6:-1]) + "[]"
    return _DUCKDB_TYPES.get(spark_type, spark_type.upper())


class SparkResult:
    """A statement's result, fetched like DuckDB's."""

    def __init__(self, table) -> None:  # a pyarrow.Table
        self._table = table
        self._rows: list[tuple] | None = None
        self._next = 0

    @property
    def description(self) -> list[tuple]:
        return [(name, None, None, None, None, None, None) for name in self._table.column_names]

    def _all_rows(self) -> list[tuple]:
        if self._rows is None:
            columns = [column.to_pylist(maps_as_pydicts="strict") for column in self._table.columns]
            self._rows = list(zip(*columns)) if columns else []
        return self._rows

    def fetchall(self) -> list[tuple]:
        rows = self._all_rows()[self._next :]
        self._next = len(self._all_rows())
        return rows

    def fetchone(self) -> tuple | None:
        rows = self._all_rows()
        if self._next >= len(rows):
            return None
        self._next += 1
        return rows[self._next - 1]

    def df(self):
        return self._table.to_pandas()

    fetchdf = df

    def fetchnumpy(self) -> dict:
        return {name: self._table.column(name).to_numpy(zero_copy_only=False) for name in self._table.column_names}

    def to_arrow_table(self):
        return self._table

    arrow = fetch_arrow_table = to_arrow_table


class SparkWarehouse:
    """A connection to the warehouse kept as Parquet directories under `root`, run by `spark`."""

    engine = "spark"

    def __init__(self, spark, root: str) -> None:
        self.spark = spark
        register_functions(spark)
        self.storage = ParquetStorage(spark, root.rstrip("/"))
        self._scratch = f"{self.storage.root}/{SCRATCH_FOLDER}/{PROCESS_TOKEN}_{uuid.uuid4().hex[:8]}"
        self._scratch_tables: set[str] = set()
        self._views: set[str] = set()

    # -- the DuckDB connection's surface --------------------------------------------------

    def execute(self, sql: str, params: object = None) -> SparkResult:
        from pyspark.errors import PySparkException

        try:
            tree = dialect.parse(sql, params)
        except sqlglot.errors.SqlglotError as error:
            raise StatementError(f"cannot read the statement: {error}") from None
        handler = _HANDLERS.get(type(tree))
        try:
            if handler is not None:
                return handler(self, tree)
            if isinstance(tree, exp.Query):
                return self._result(self.frame(tree))
        except PySparkException as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise StatementError(f"Spark: {first_line} (in: {' '.join(sql.split())[:300]})") from error
        raise UnsupportedStatement(f"the Spark engine does not run: {sql.strip()[:200]}")

    def sql(self, sql: str, params: object = None) -> SparkResult:
        return self.execute(sql, params)

    def executemany(self, sql: str, rows: list) -> None:
        for row in rows:
            self.execute(sql, row)

    def cursor(self) -> SparkWarehouse:
        """Another connection on the same session and warehouse, with scratch tables of its own."""
        return SparkWarehouse(self.spark, self.storage.root)

    def register(self, name: str, table) -> None:
        """A table held in Python (pandas, Arrow) readable under `name`."""
        self.spark.createDataFrame(table).createOrReplaceTempView(name)
        self._views.add(name)

    def unregister(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)
        self._views.discard(name)

    def close(self) -> None:
        for name in list(self._views):
            self.unregister(name)
        if self.storage.exists(self._scratch):
            self.storage.delete(self._scratch)
        self._scratch_tables.clear()

    def __enter__(self) -> SparkWarehouse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- tables -----------------------------------------------------------------------------

    def table_path(self, schema: str | None, name: str) -> str:
        if schema in (None, "", SCRATCH, "main") and (schema == SCRATCH or name in self._scratch_tables):
            return f"{self._scratch}/{name}"
        if not schema or schema == "main":
            raise TableMissing(f"Table with name {name} does not exist")
        return self.storage.table_path(schema, name)

    def has_table(self, schema: str, name: str) -> bool:
        if schema == SCRATCH:
            return name in self._scratch_tables
        return self.storage.exists(self.storage.table_path(schema, name))

    def tables(self) -> list[tuple[str, str]]:
        """(schema, table) of every table in the warehouse."""
        return [
            (schema, name)
            for schema in self.storage.folders(self.storage.root)
            for name in self.storage.folders(f"{self.storage.root}/{schema}")
        ]

    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        """(name, DuckDB type) of a table's columns."""
        frame = self.spark.read.parquet(self.table_path(schema, name))
        return [(field.name, duckdb_type(field.dataType.simpleString())) for field in frame.schema.fields]

    def number_rows(self, rows: TableName, order: Sequence[str], first: int, numbered: TableName, column: str) -> None:
        """`numbered`: the rows of `rows` with `column` = first, first + 1, ... in `order` (see
        `warehouse.number_in_order`), in three jobs that spread over the cluster: the rows are
        range-partitioned on `order` (each partition a run of consecutive rows) and written
        with their partition, the partitions' sizes give each its first number, and each
        partition is numbered on its own. One window over all rows would run in one task."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        by = [F.col(c).asc_nulls_last() for c in order]
        ranged = TableName(SCRATCH, f"{numbered.name}_ranged")
        frame = self.spark.read.parquet(self.table_path(rows.schema, rows.name))
        # written, so that each row keeps the partition it was given (range bounds are sampled)
        self._write(
            frame.repartitionByRange(*by).withColumn("_partition", F.spark_partition_id()), SCRATCH, ranged.name
        )
        try:
            frame = self.spark.read.parquet(self.table_path(SCRATCH, ranged.name))
            sizes = sorted(tuple(row) for row in frame.groupBy("_partition").count().collect())
            starts, start = [], first
            for partition, size in sizes:
                starts.append((partition, start))
                start += size
            offsets = self.spark.createDataFrame(starts, "_partition INT, _first BIGINT")
            position = F.row_number().over(Window.partitionBy("_partition").orderBy(*by))
            result = (
                frame.join(F.broadcast(offsets), "_partition")
                .withColumn(column, (F.col("_first") + position - 1).cast("bigint"))
                .drop("_partition", "_first")
            )
            self._write(result, numbered.schema, numbered.name, defaults={})
        finally:
            self.execute(f"DROP TABLE IF EXISTS {ranged.sql}")

    def _place(self, table: exp.Table) -> exp.Expression | None:
        schema, name = table.db or None, table.name
        if schema == "information_schema":
            self._catalog_view(name)
            return exp.Table(this=exp.to_identifier(f"information_schema_{name}"))
        if schema is None and name in self._views:
            return None
        if schema is None and name not in self._scratch_tables:
            return None  # a name Spark resolves itself (or reports missing)
        path = self.table_path(schema, name)
        if not self.storage.exists(path):
            raise TableMissing(f"Table with name {table.sql(dialect='duckdb')} does not exist")
        return parquet_table(path)

    def _catalog_view(self, name: str) -> None:
        """`information_schema.tables` or `.columns`, read off the warehouse's folders."""
        rows: list[tuple]
        if name == "tables":
            rows = [("warehouse", schema, table, "BASE TABLE") for schema, table in self.tables()]
            rows += [("temp", "main", table, "LOCAL TEMPORARY") for table in sorted(self._scratch_tables)]
            columns = "table_catalog string, table_schema string, table_name string, table_type string"
        elif name == "columns":
            every = [("warehouse", schema, table) for schema, table in self.tables()]
            every += [("temp", SCRATCH, table) for table in sorted(self._scratch_tables)]
            rows = [
                ("warehouse" if catalog != "temp" else "temp", "main" if catalog == "temp" else schema, table,
                 column, dtype, position)
                for catalog, schema, table in every
                for position, (column, dtype) in enumerate(self.columns(schema, table), start=1)
            ]  # fmt: skip
            columns = (
                "table_catalog string, table_schema string, table_name string, column_name string, "
                "data_type string, ordinal_position bigint"
            )
        else:
            raise UnsupportedStatement(f"information_schema.{name} is not kept on Spark")
        self.spark.createDataFrame(rows, columns).createOrReplaceTempView(f"information_schema_{name}")

    # -- rendering and running --------------------------------------------------------------

    def spark_sql(self, tree: exp.Expression) -> str:
        """The statement (a query) in Spark's SQL, its tables placed and its gaps spelled out."""
        tree = dialect.replace_tables(tree, self._place)
        tree = dialect.spell_out_union_by_name(tree, self._columns_of)
        tree = dialect.spell_out_replace(tree, self._columns_of)
        return render(tree)

    def frame(self, query: exp.Expression):
        return self.spark.sql(self.spark_sql(query))

    def _columns_of(self, sql: str) -> list[str]:
        return self.spark.sql(sql).columns

    def _result(self, frame) -> SparkResult:
        return SparkResult(frame.toArrow())

    def _write(self, frame, schema: str, name: str, defaults: Mapping[str, str] | None = None) -> None:
        """`frame` as the new version of the table: written aside, swapped in."""
        if schema == SCRATCH:
            self._scratch_tables.add(name)
        target = self.table_path(schema, name)
        staging = (
            f"{self._scratch}/_aside/{name}_{uuid.uuid4().hex[:8]}"
            if schema == SCRATCH
            else self.storage.staging_path(schema, name)
        )
        frame.write.mode("errorifexists").parquet(staging)
        kept = defaults if defaults is not None else self._defaults(target)
        if kept:
            self._write_defaults(staging, kept)
        self.storage.swap_in(staging, target)

    def _rewrite(self, frame, schema: str, name: str) -> SparkResult:
        """`frame` as the table's new version; the result is how many rows it gained or lost,
        as DuckDB answers an INSERT or DELETE (Parquet's footers count the rows)."""
        before = self._read(schema, name).count()
        self._write(frame, schema, name)
        return _count(abs(self._read(schema, name).count() - before))

    def _read(self, schema: str, name: str):
        path = self.table_path(schema, name)
        if not self.storage.exists(path):
            raise TableMissing(f"Table with name {schema}.{name} does not exist")
        return self.spark.read.parquet(path)

    def _defaults(self, path: str) -> dict[str, str]:
        file = f"{path}/{_DEFAULTS_FILE}"
        if not self.storage.exists(file):
            return {}
        return json.loads(self.storage.read_text(file))

    def _write_defaults(self, path: str, defaults: Mapping[str, str]) -> None:
        self.storage.write_text(f"{path}/{_DEFAULTS_FILE}", json.dumps(dict(defaults)))

    # -- statements that write ---------------------------------------------------------------

    def _create(self, tree: exp.Create) -> SparkResult:
        kind = (tree.args.get("kind") or "").upper()
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if kind == "SCHEMA":
            self.storage.make_folder(f"{self.storage.root}/{target.name}")
            return _nothing()
        if kind != "TABLE":
            raise UnsupportedStatement(f"the Spark engine does not create a {kind}: {render(tree)[:200]}")
        temporary = any(isinstance(p, exp.TemporaryProperty) for p in tree.find_all(exp.TemporaryProperty))
        schema = SCRATCH if temporary else (target.db or None)
        if schema is None:
            raise UnsupportedStatement(f"a table needs a schema on Spark: {render(tree)[:200]}")
        exists = self.has_table(schema, target.name)
        if exists and tree.args.get("exists"):
            return _nothing()
        if exists and not tree.args.get("replace"):
            raise UnsupportedStatement(f"Table with name {schema}.{target.name} already exists")
        query = tree.expression
        if isinstance(query, exp.Query):
            self._write(self.frame(query), schema, target.name, defaults={})
            return _nothing()
        definitions = [c for c in tree.this.expressions if isinstance(c, exp.ColumnDef)]
        ddl = ", ".join(f"`{c.name}` {dialect.spark_type(c.args['kind'])}" for c in definitions)
        defaults = {
            c.name: constraint.kind.this.sql(dialect="duckdb")
            for c in definitions
            for constraint in c.constraints
            if isinstance(constraint.kind, exp.DefaultColumnConstraint)
        }
        self._write(self.spark.createDataFrame([], ddl), schema, target.name, defaults=defaults)
        return _nothing()

    def _insert(self, tree: exp.Insert) -> SparkResult:
        target = tree.this
        named = None
        if isinstance(target, exp.Schema):
            named = [c.name for c in target.expressions]
            target = target.this
        schema, name = target.db or SCRATCH, target.name
        existing = self._read(schema, name)
        query = tree.expression
        if isinstance(query, exp.Values):
            query = exp.select("*").from_(query)
        incoming = self.frame(query)
        if tree.args.get("by_name"):
            named = incoming.columns
        elif named is None:
            named = existing.columns[: len(incoming.columns)]
        incoming = incoming.toDF(*named)
        defaults = self._defaults(self.table_path(schema, name))
        chosen = []
        for field in existing.schema.fields:
            if field.name in named:
                chosen.append(f"CAST(`{field.name}` AS {field.dataType.simpleString()}) AS `{field.name}`")
            else:
                default = defaults.get(field.name)
                value = (
                    self.spark_sql(dialect.parse(f"SELECT {default}")).removeprefix("SELECT ") if default else "NULL"
                )
                chosen.append(f"CAST({value} AS {field.dataType.simpleString()}) AS `{field.name}`")
        appended = existing.unionByName(incoming.selectExpr(*chosen))
        return self._rewrite(appended, schema, name)

    def _delete(self, tree: exp.Delete) -> SparkResult:
        target = tree.this
        schema, name = target.db or SCRATCH, target.name
        alias = target.alias or name
        condition = tree.args.get("where")
        using = tree.args.get("using")
        base = exp.select(exp.column(exp.Star(), table=alias)).from_(target.copy())
        if condition is None:
            kept = base.where("false")
        elif using:
            matched = exp.select("1").from_(using[0].copy()).where(condition.this.copy())
            for other in using[1:]:
                matched = matched.join(other.copy())
            kept = base.where(exp.not_(exp.Exists(this=matched)))
        else:
            kept = base.where(exp.not_(exp.func("coalesce", condition.this.copy(), exp.false())))
        return self._rewrite(self.frame(kept), schema, name)

    def _update(self, tree: exp.Update) -> SparkResult:
        target = tree.this
        schema, name = target.db or SCRATCH, target.name
        alias = target.alias or name
        columns = self._read(schema, name).columns
        condition = tree.args.get("where")
        source = tree.args.get("from_")
        hit: exp.Expression
        query = exp.select().from_(target.copy())
        if source is not None:
            # each row of the target meets at most one row of FROM, as in DuckDB's UPDATE ... FROM
            joined = source.this.copy()
            other = joined.alias_or_name
            marked = exp.select(exp.Star(), exp.alias_(exp.true(), "_cdm_matched")).from_(joined.copy())
            query = query.join(
                exp.paren(marked).as_(other), on=condition.this.copy() if condition else "true", join_type="left"
            )
            hit = exp.column("_cdm_matched", table=other).is_(exp.true())
        else:
            hit = exp.func("coalesce", condition.this.copy(), exp.false()) if condition else exp.true()
        assignments = {e.this.name: e.expression for e in tree.expressions}
        selected = [
            exp.alias_(exp.Case(ifs=[exp.If(this=hit.copy(), true=assignments[c].copy())], default=exp.column(c, table=alias)), c, quoted=True)
            if c in assignments
            else exp.column(exp.to_identifier(c, quoted=True), table=alias)
            for c in columns
        ]  # fmt: skip
        changed = exp.alias_(
            exp.Case(ifs=[exp.If(this=hit.copy(), true=exp.true())], default=exp.false()), "_cdm_updated"
        )
        query.set("expressions", [*selected, changed])
        frame = self.frame(query).cache()
        try:
            updated = frame.where("_cdm_updated").count()
            self._write(frame.drop("_cdm_updated"), schema, name)
        finally:
            frame.unpersist()
        return _count(updated)

    def _alter(self, tree: exp.Alter) -> SparkResult:
        target = tree.this
        schema, name = target.db or SCRATCH, target.name
        for action in tree.args.get("actions") or []:
            if isinstance(action, exp.AlterRename):
                new = action.this.name
                if schema == SCRATCH:
                    self.storage.rename(self.table_path(schema, name), f"{self._scratch}/{new}")
                    self._scratch_tables.discard(name)
                    self._scratch_tables.add(new)
                else:
                    self.storage.rename(self.table_path(schema, name), self.storage.table_path(schema, new))
            elif isinstance(action, exp.Drop) and (action.args.get("kind") or "").upper() == "COLUMN":
                frame = self._read(schema, name)
                for column in (c.name for c in action.args.get("tables") or []):
                    if column in frame.columns:
                        frame = frame.drop(column)
                    elif not action.args.get("exists"):
                        raise UnsupportedStatement(f"{schema}.{name} has no column {column}")
                self._write(frame, schema, name)
            elif isinstance(action, exp.ColumnDef):
                frame = self._read(schema, name)
                if action.name in frame.columns:
                    if action.args.get("exists"):
                        continue
                    raise UnsupportedStatement(f"{schema}.{name} has a column {action.name} already")
                dtype = action.args["kind"].sql(dialect="spark")
                self._write(frame.selectExpr("*", f"CAST(NULL AS {dtype}) AS `{action.name}`"), schema, name)
            else:
                raise UnsupportedStatement(f"the Spark engine does not run: {render(tree)[:200]}")
        return _nothing()

    def _drop(self, tree: exp.Drop) -> SparkResult:
        kind = (tree.args.get("kind") or "").upper()
        for target in tree.args.get("tables") or [tree.this]:
            self._drop_one(kind, target, bool(tree.args.get("exists")))
        return _nothing()

    def _drop_one(self, kind: str, target: exp.Table, if_exists: bool) -> None:
        if kind == "VIEW" or (kind == "TABLE" and not target.db and target.name in self._views):
            self.unregister(target.name)
            return
        if kind != "TABLE":
            raise UnsupportedStatement(f"the Spark engine does not drop a {kind}")
        schema = target.db or (SCRATCH if target.name in self._scratch_tables else None)
        if schema is None or not self.has_table(schema, target.name):
            if if_exists:
                return
            raise TableMissing(f"Table with name {target.name} does not exist")
        self.storage.delete(self.table_path(schema, target.name))
        if schema == SCRATCH:
            self._scratch_tables.discard(target.name)

    def _describe(self, tree: exp.Describe) -> SparkResult:
        described = tree.this
        if isinstance(described, exp.Table):
            described = exp.select("*").from_(described)
        frame = self.frame(described)
        rows = [(f.name, duckdb_type(f.dataType.simpleString()), "YES", None, None, None) for f in frame.schema.fields]
        import pyarrow as pa

        names = ["column_name", "column_type", "null", "key", "default", "extra"]
        return SparkResult(pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}))


def _nothing() -> SparkResult:
    import pyarrow as pa

    return SparkResult(pa.table({}))


def _count(rows: int) -> SparkResult:
    import pyarrow as pa

    return SparkResult(pa.table({"Count": pa.array([rows], pa.int64())}))


def _ignored(connection: SparkWarehouse, tree: exp.Expression) -> SparkResult:
    """BEGIN, COMMIT, ROLLBACK (no transactions on Spark) and DuckDB's own settings."""
    return _nothing()


_HANDLERS = {
    exp.Create: SparkWarehouse._create,
    exp.Insert: SparkWarehouse._insert,
    exp.Delete: SparkWarehouse._delete,
    exp.Update: SparkWarehouse._update,
    exp.Alter: SparkWarehouse._alter,
    exp.Drop: SparkWarehouse._drop,
    exp.Describe: SparkWarehouse._describe,
    exp.Transaction: _ignored,
    exp.Commit: _ignored,
    exp.Rollback: _ignored,
    exp.Set: _ignored,
}


def spark_session(master: str, conf: Mapping[str, object] | None = None):
    """A Spark session for the steps: UTC, timestamps without time zone (as DuckDB's
    TIMESTAMP), Arrow for moving data to Python; `conf` on top."""
    import os

    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise StatementError("warehouse.engine is spark, but Spark needs Java 17: no java on PATH and no JAVA_HOME")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python functions run in worker processes: the same interpreter (and packages) as this one
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName("cdm")
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.timestampType": "TIMESTAMP_NTZ",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.ansi.enabled": "false",  # DuckDB's casts of bad text fail, its arithmetic does not
        **{key: str(value) for key, value in (conf or {}).items()},
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    # a failing statement raises with Spark's message; its JVM stack trace need not be logged too
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    return spark
