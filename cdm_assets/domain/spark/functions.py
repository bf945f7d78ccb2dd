"""DuckDB's functions that Spark SQL lacks, as vectorised Python functions.

They run in Spark's Python workers, so this module imports nothing beyond the
standard library at load time. The rendered SQL calls them by the names
`register_functions` gives them (see `dialect._SPARK_FUNCTIONS`).
"""

from __future__ import annotations

import unicodedata


def _strip(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))


def strip_accents(texts):
    """DuckDB's strip_accents: each text decomposed (NFD) without its combining marks."""
    return texts.map(_strip, na_action="ignore")


def register_functions(spark) -> None:
    from pyspark.sql.functions import pandas_udf

    spark.udf.register("cdm_strip_accents", pandas_udf(strip_accents, "string"))
