"""DuckDB's functions that Spark SQL lacks, as vectorised Python functions.

They run in Spark's Python workers, so this module imports nothing beyond the
standard library at load time. The rendered SQL calls them by the names
`register_functions` gives them (see `dialect._SPARK_FUNCTIONS`). The string
similarities are rapidfuzz's, whose algorithms DuckDB's own follow; they give
DuckDB's values (a test compares them), down to DuckDB's 0.0 for two empty texts.
"""

from __future__ import annotations

import unicodedata

# name in the rendered SQL: (function, Spark's type of its result)
_FUNCTIONS: dict[str, tuple[str, str]] = {
    "cdm_strip_accents": ("strip_accents", "string"),
    "cdm_jaro_similarity": ("jaro_similarity", "double"),
    "cdm_jaro_winkler_similarity": ("jaro_winkler_similarity", "double"),
    "cdm_damerau_levenshtein": ("damerau_levenshtein", "bigint"),
}


def _strip(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))


def strip_accents(texts):
    """DuckDB's strip_accents: each text decomposed (NFD) without its combining marks."""
    return texts.map(_strip, na_action="ignore")


def _pairwise(measure, a, b, dtype: str):
    import pandas as pd

    values = [None if x is None or y is None else measure(x, y) for x, y in zip(a.tolist(), b.tolist())]
    return pd.Series(values, dtype=dtype)


def _similarity(measure):
    return lambda x, y: 0.0 if not x and not y else measure(x, y)


def jaro_similarity(a, b):
    from rapidfuzz.distance import Jaro

    return _pairwise(_similarity(Jaro.similarity), a, b, "Float64")


def jaro_winkler_similarity(a, b):
    from rapidfuzz.distance import JaroWinkler

    return _pairwise(_similarity(JaroWinkler.similarity), a, b, "Float64")


def damerau_levenshtein(a, b):
    from rapidfuzz.distance import DamerauLevenshtein

    return _pairwise(DamerauLevenshtein.distance, a, b, "Int64")


def register_functions(spark) -> None:
    from pyspark.sql.functions import pandas_udf

    for name, (function, result_type) in _FUNCTIONS.items():
        spark.udf.register(name, pandas_udf(globals()[function], result_type))


def spark_names() -> dict[str, str]:
    """DuckDB's function name: the name it has in Spark's sessions."""
    return {function: name for name, (function, _) in _FUNCTIONS.items()}
