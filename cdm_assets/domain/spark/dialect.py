"""DuckDB's dialect, as the domain writes it, rendered for Spark SQL with sqlglot.

A statement is parsed once (`parse`), its parameters become literals (`bind`),
its table names become the places where the tables live (`replace_tables`),
and what Spark's SQL lacks is spelled out with the columns Spark reports
(`spell_out_replace`, `spell_out_union_by_name`) before `render` writes it in
Spark's dialect.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Callable, Mapping, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from cdm_assets.domain.spark.functions import spark_names
from cdm_assets.domain.sql import StatementError

READ, WRITE = "duckdb", "spark"


class UnsupportedStatement(StatementError):
    """A statement the Spark engine does not run (yet); the message names it."""


def parse(sql: str, params: object = None) -> exp.Expression:
    """One statement in DuckDB's dialect, with `params` (a list for `?`, a mapping for
    `$name`) bound as literals."""
    if isinstance(params, Sequence) and not isinstance(params, str):
        sql, params = _number_positional(sql), {f"_p{index}": value for index, value in enumerate(params)}
    statements = [s for s in sqlglot.parse(sql, read=READ) if s is not None]
    if len(statements) != 1:
        raise UnsupportedStatement(f"expected one statement, got {len(statements)}: {sql[:200]}")
    tree = statements[0]
    return bind(tree, params) if params else tree


def _number_positional(sql: str) -> str:
    """`?` placeholders renamed `$_p0`, `$_p1`, ... in the order they are written."""
    parts, last, index = [], 0, 0
    for token in sqlglot.tokenize(sql, read=READ):
        # `?::DATE` is one token (a `?` cast in place): the cast stays
        if (token.token_type, token.text) in ((TokenType.PLACEHOLDER, "?"), (TokenType.QDCOLON, "?::")):
            parts.append(sql[last : token.start])
            parts.append(f"$_p{index}" + ("::" if token.text == "?::" else ""))
            last, index = token.end + 1, index + 1
    parts.append(sql[last:])
    return "".join(parts)


def bind(tree: exp.Expression, params: Mapping[str, object]) -> exp.Expression:
    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name:
            if node.name not in params:
                raise UnsupportedStatement(f"no value for parameter ${node.name}")
            return literal(params[node.name])
        return node

    return tree.transform(replace, copy=False)


def literal(value: object) -> exp.Expression:
    """A Python value as a SQL constant of the type DuckDB would bind it as."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float | decimal.Decimal):
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, datetime.datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
    if isinstance(value, datetime.date):
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    if isinstance(value, list | tuple):
        return exp.Array(expressions=[literal(item) for item in value])
    raise UnsupportedStatement(f"cannot bind a parameter of type {type(value).__name__}")


def cte_names(tree: exp.Expression) -> set[str]:
    return {cte.alias_or_name for cte in tree.find_all(exp.CTE)}


def replace_tables(tree: exp.Expression, place: Callable[[exp.Table], exp.Expression | None]) -> exp.Expression:
    """Every table the statement reads put through `place`, which returns what stands for it
    (None: leave it, a name Spark knows). A table keeps its name as its alias."""
    ctes = cte_names(tree)

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.args.get("db"):
            # `"raw"."crm".crm_id`: the table read keeps its name as its alias (below)
            node.set("db", None)
            node.set("catalog", None)
            return node
        if not isinstance(node, exp.Table) or not node.name or isinstance(node.this, exp.Func):
            return node
        if not node.db and node.name in ctes:
            return node
        placed = place(node)
        if placed is None:
            return node
        alias = node.alias or node.name
        return exp.alias_(placed, alias, table=True) if not isinstance(placed, exp.Table) else _aliased(placed, alias)

    return tree.transform(replace, copy=False)


def _aliased(table: exp.Table, alias: str) -> exp.Table:
    table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    return table


def parquet_table(path: str) -> exp.Table:
    """`parquet.`<path>``: a Parquet directory read as a table."""
    return exp.Table(this=exp.to_identifier(path, quoted=True), db=exp.to_identifier("parquet"))


def _full_match(node: exp.Expression) -> exp.Expression:
    text, pattern = node.this, node.expression
    anchored = exp.func("concat", exp.Literal.string("^(?:"), pattern, exp.Literal.string(")$"))
    return exp.RegexpLike(this=text, expression=anchored)


def _at_utc(node: exp.Expression) -> exp.Expression:
    zone, value = node.expressions
    if not (isinstance(zone, exp.Literal) and zone.this.upper() == "UTC"):
        raise UnsupportedStatement(f"timezone() to a zone other than UTC: {node.sql(dialect=READ)}")
    return value  # the session's time zone is UTC (`spark_session`)


def _try_strptime(node: exp.Expression) -> exp.Expression:
    # Spark's to_timestamp gives NULL where the text does not fit (ANSI mode off, `spark_session`)
    text, strftime_format = node.expressions
    return exp.StrToTime(this=text, format=strftime_format)


def _days_between(node: exp.DateDiff) -> exp.Expression:
    """DuckDB's `date_diff('day', a, b)` counts the day boundaries crossed; Spark's
    three-argument form counts whole days. The dates' difference is the former."""
    unit = node.args.get("unit")
    if unit is not None and unit.name.upper() != "DAY":
        raise UnsupportedStatement(f"date_diff in {unit.name} on Spark: {node.sql(dialect=READ)}")
    end, start = exp.cast(node.this, "DATE"), exp.cast(node.expression, "DATE")
    return exp.Anonymous(this="datediff", expressions=[end, start])


def _list_position(node: exp.Expression) -> exp.Expression:
    # Spark's array_position answers 0 where DuckDB's list_position answers NULL
    found = exp.Anonymous(this="array_position", expressions=node.expressions)
    return exp.Nullif(this=found, expression=exp.Literal.number(0))


def _index_from_one(node: exp.Expression) -> exp.Expression:
    """A lambda's index argument counts from 1 in DuckDB and from 0 in Spark."""
    function = node.expression
    if not isinstance(function, exp.Lambda) or len(function.expressions) < 2:
        return node
    index = function.expressions[1].name

    def shift(inner: exp.Expression) -> exp.Expression:
        if isinstance(inner, exp.Identifier | exp.Column) and inner.name == index and not getattr(inner, "table", ""):
            if isinstance(inner, exp.Identifier) and not isinstance(inner.parent, exp.Lambda | exp.Column):
                return exp.paren(exp.Add(this=exp.to_identifier(index), expression=exp.Literal.number(1)))
            if isinstance(inner, exp.Column):
                return exp.paren(exp.Add(this=exp.column(index), expression=exp.Literal.number(1)))
        return inner

    function.set("this", function.this.transform(shift))
    return node


def _named_groups(node: exp.RegexpExtract) -> exp.Expression:
    """`regexp_extract(text, pattern, ['a', 'b'])`, a struct of the named groups in DuckDB,
    as a struct of one extraction per group."""
    names = node.args.get("group")
    if not isinstance(names, exp.Array):
        return node
    fields: list[exp.Expression] = []
    for number, name in enumerate(names.expressions, start=1):
        group = exp.RegexpExtract(
            this=node.this.copy(), expression=node.expression.copy(), group=exp.Literal.number(number)
        )
        fields += [name.copy(), group]
    return exp.Anonymous(this="named_struct", expressions=fields)


def _as_row(node: exp.Expression) -> exp.Expression:
    """A bare name of a relation the statement reads (`hash(r)`, `old IS DISTINCT FROM new`):
    DuckDB takes it for the row as a struct, Spark for a column, so it is spelled `struct(r.*)`."""
    if not isinstance(node, exp.Column) or node.table:
        return node
    relations = {
        source.alias_or_name
        for source in node.root().find_all(exp.Table, exp.Subquery, exp.CTE)
        if source.alias_or_name
    }
    if node.name not in relations:
        return node
    return exp.Struct(expressions=[exp.Column(this=exp.Star(), table=exp.to_identifier(node.name))])


def _hash(node: exp.Expression) -> exp.Expression:
    """DuckDB's 64-bit `hash` as Spark's `xxhash64`: the values differ between engines, so the
    domain keeps them to grouping and change detection."""
    return exp.Anonymous(this="xxhash64", expressions=[_as_row(a) for a in node.expressions])


def _rows_compared(node: exp.Expression) -> exp.Expression:
    node.set("this", _as_row(node.this))
    node.set("expression", _as_row(node.expression))
    return node


def _java_replacement(text: str, whole: int) -> str:
    """A DuckDB (RE2) replacement as Java writes it: `\\0` (the match) → `$<whole>`, `\\n` →
    `$<whole + n>`, a literal `$` escaped."""
    escaped = text.replace("$", "\\$")
    return re.sub(r"\\(\d)", lambda m: f"${whole + int(m.group(1))}", escaped)


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expression:
    """DuckDB replaces the first match unless the options say `g`; Spark replaces every match.
    The first alone: the pattern anchored after the shortest prefix, which is put back."""
    options = node.args.get("modifiers")
    flags = options.this if isinstance(options, exp.Literal) else ""
    if set(flags) - set("gi"):
        raise UnsupportedStatement(f"regexp_replace options {flags!r} on Spark")
    pattern, replacement = node.expression, node.args.get("replacement")
    if not (isinstance(pattern, exp.Literal) and isinstance(replacement, exp.Literal)):
        raise UnsupportedStatement(f"regexp_replace with a computed pattern on Spark: {node.sql(dialect=READ)}")
    case = "(?i)" if "i" in flags else ""
    if "g" in flags:
        spark_pattern, spark_replacement = case + pattern.this, _java_replacement(replacement.this, 0)
    else:
        spark_pattern = f"^{case}(?s:(.*?))({pattern.this})"
        spark_replacement = "$1" + _java_replacement(replacement.this, 2)
    return exp.RegexpReplace(
        this=node.this, expression=exp.Literal.string(spark_pattern), replacement=exp.Literal.string(spark_replacement)
    )


def _to_json(node: exp.Expression) -> exp.Expression:
    """DuckDB's to_json keeps a struct's NULL fields (`"phone":null`); Spark's drops them unless told."""
    options = exp.Anonymous(
        this="map", expressions=[exp.Literal.string("ignoreNullFields"), exp.Literal.string("false")]
    )
    return exp.Anonymous(this="to_json", expressions=[*node.expressions[:1], options])


def _try(node: exp.Try) -> exp.Expression:
    """DuckDB's try(e): NULL where e fails. Spark's casts and functions give NULL already (ANSI
    mode off, `spark_session`); decoding bytes does not fail but replaces bad ones, so a decode
    is checked for valid UTF-8 instead."""
    inner = node.this
    if isinstance(inner, exp.Decode):
        return exp.Anonymous(this="try_validate_utf8", expressions=[exp.cast(inner.this, "STRING")])
    return inner


# DuckDB's functions that sqlglot passes through by name, as Spark spells them
_SPARK_FUNCTIONS = {
    **{  # those cdm registers as Python functions (`functions.py`)
        duckdb_name: lambda node, name=spark_name: exp.Anonymous(this=name, expressions=node.expressions)
        for duckdb_name, spark_name in spark_names().items()
    },
    "hash": _hash,
    "to_json": _to_json,
    "list_position": _list_position,
    "error": lambda node: exp.Anonymous(this="raise_error", expressions=node.expressions),
    "timezone": _at_utc,
    "try_strptime": _try_strptime,
}


def _rows_in(node: exp.In) -> exp.Expression:
    """`(a, b) IN (SELECT (a, b) FROM t)`: DuckDB compares one row value with the subquery's;
    Spark compares the row's columns with the subquery's columns, so the subquery's row value
    is spelled out as its columns."""
    query = node.args.get("query")
    select = query.this if isinstance(query, exp.Subquery) else query
    if (
        isinstance(node.this, exp.Tuple)
        and isinstance(select, exp.Select)
        and len(select.expressions) == 1
        and isinstance(select.expressions[0], exp.Tuple)
    ):
        select.set("expressions", list(select.expressions[0].expressions))
    return node


# ... and those sqlglot knows but writes for Spark as DuckDB's
_SPARK_FORMS = {
    exp.In: _rows_in,
    exp.NullSafeNEQ: _rows_compared,
    exp.NullSafeEQ: _rows_compared,
    exp.Try: _try,
    exp.JarowinklerSimilarity: lambda node: exp.Anonymous(
        this=spark_names()["jaro_winkler_similarity"], expressions=[node.this, node.expression]
    ),
    exp.RegexpReplace: _regexp_replace,
    exp.RegexpExtract: _named_groups,
    exp.ArrayFilter: _index_from_one,
    exp.Transform: _index_from_one,
    exp.RegexpFullMatch: _full_match,
    exp.DateDiff: _days_between,
}


def unique_cte_names(tree: exp.Expression) -> exp.Expression:
    """sqlglot writes every CTE at the top for Spark: two subqueries that each define a
    `keyed` would clash there, so the CTEs of nested WITH clauses get names of their own."""
    for number, with_ in enumerate(w for w in tree.find_all(exp.With) if w.parent is not tree):
        scope = with_.parent
        renamed = {}
        for cte in with_.expressions:
            renamed[cte.alias] = f"{cte.alias}_{number}"
            cte.set("alias", exp.TableAlias(this=exp.to_identifier(renamed[cte.alias])))
        for table in scope.find_all(exp.Table):
            if not table.db and table.name in renamed:
                alias = table.alias or table.name
                table.set("this", exp.to_identifier(renamed[table.name]))
                table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    return tree


# Spark has no unsigned integers. A UBIGINT column holds DuckDB's hashes, which are
# xxhash64's signed BIGINT on Spark (`_hash`); the smaller ones widen to a signed type.
_SIGNED = {
    exp.DataType.Type.UBIGINT: exp.DataType.Type.BIGINT,
    exp.DataType.Type.UINT: exp.DataType.Type.BIGINT,
    exp.DataType.Type.USMALLINT: exp.DataType.Type.INT,
    exp.DataType.Type.UTINYINT: exp.DataType.Type.SMALLINT,
}


def _retype(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)  # a hint to DuckDB's planner; Spark plans its own way
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.TIMESTAMPTZ:
        # Spark's TIMESTAMP is without time zone in cdm's sessions (`spark_session`)
        return exp.DataType(this=exp.DataType.Type.USERDEFINED, kind="TIMESTAMP_LTZ")
    if isinstance(node, exp.DataType) and node.this in _SIGNED:
        return exp.DataType(this=_SIGNED[node.this])
    return node


def spark_type(kind: exp.DataType) -> str:
    """A column type of DuckDB's DDL in Spark's words."""
    return _children_first(kind.copy(), _retype).sql(dialect=WRITE)


def render(tree: exp.Expression) -> str:

    def rename(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.lower() in _SPARK_FUNCTIONS:
            return _SPARK_FUNCTIONS[node.name.lower()](node)
        form = _SPARK_FORMS.get(type(node))
        return form(node) if form is not None else node

    return _children_first(_children_first(unique_cte_names(tree), _retype), rename).sql(dialect=WRITE)


def _children_first(tree: exp.Expression, fun: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
    """`fun` applied to every node, a node's arguments before the node (so a node that is
    replaced has its own arguments rewritten already)."""
    for node in reversed(list(tree.walk(bfs=False))):
        new = fun(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def spell_out_replace(tree: exp.Expression, columns_of: Callable[[str], list[str]]) -> exp.Expression:
    """`SELECT * REPLACE (expr AS c) ...`, which Spark lacks, as the full column list;
    `columns_of(sql)` gives the columns of a Spark query."""
    for star in list(tree.find_all(exp.Star)):
        replacements = star.args.get("replace")
        if not replacements:
            continue
        select = star.parent if isinstance(star.parent, exp.Select) else None
        qualifier = None
        if select is None and isinstance(star.parent, exp.Column):  # t.* REPLACE (...)
            column = star.parent
            qualifier, select = column.table, column.parent
        if not isinstance(select, exp.Select):
            raise UnsupportedStatement(f"a * REPLACE outside a SELECT list: {render(tree)[:200]}")
        probe = select.copy()
        probe_star = exp.Star(**{"except": star.args.get("except")}) if star.args.get("except") else exp.Star()
        probe.set("expressions", [exp.column(probe_star, table=qualifier) if qualifier else probe_star])
        for clause in ("group", "having", "qualify", "order", "limit", "distinct"):
            probe.set(clause, None)
        probe.set("limit", exp.Limit(expression=exp.Literal.number(0)))
        names = columns_of(render(probe))
        by_name = {r.alias_or_name: r.this if isinstance(r, exp.Alias) else r for r in replacements}
        spelled = [
            exp.alias_(by_name[name].copy(), name, quoted=True)
            if name in by_name
            else exp.column(exp.to_identifier(name, quoted=True), table=qualifier)
            for name in names
        ]
        owner = star.parent if qualifier else star
        position = select.expressions.index(owner)
        select.set("expressions", [*select.expressions[:position], *spelled, *select.expressions[position + 1 :]])
    return tree


def spell_out_union_by_name(tree: exp.Expression, columns_of: Callable[[str], list[str]]) -> exp.Expression:
    """`a UNION ALL BY NAME b`, which Spark's SQL lacks, as a union of the two sides with
    their columns in one order, NULL where a side has no such column."""
    for union in reversed(list(tree.find_all(exp.Union))):  # innermost first
        if not union.args.get("by_name"):
            continue
        left, right = union.this, union.expression
        left_columns, right_columns = columns_of(render(left)), columns_of(render(right))
        every = [*left_columns, *(c for c in right_columns if c not in left_columns)]

        def side(query: exp.Expression, has: list[str], every: list[str] = every) -> exp.Expression:
            chosen = [
                exp.column(exp.to_identifier(c, quoted=True)) if c in has else exp.alias_(exp.Null(), c, quoted=True)
                for c in every
            ]
            return exp.select(*chosen).from_(exp.paren(query.copy()).as_("_by_name"))

        union.set("this", side(left, left_columns))
        union.set("expression", side(right, right_columns))
        union.set("by_name", None)
    return tree
