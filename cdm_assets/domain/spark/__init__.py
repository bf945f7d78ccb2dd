"""The domain's statements on Apache Spark.

The domain writes its SQL once, in DuckDB's dialect, and sends it to a
connection. `SparkWarehouse` is such a connection over a Spark session: it
renders each statement for Spark (`dialect.py`, with sqlglot) and keeps every
table as a Parquet directory `<warehouse_dir>/<schema>/<table>/`, written
under a staging name and swapped in by rename (`storage.py`), so a failed
statement leaves the previous table and any engine, DuckDB included, reads the
result. Only this package imports pyspark, and only when a session starts.
"""
