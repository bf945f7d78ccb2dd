"""Person names: a full name split into first and last name, and each distinct name
standardised once (display form, match key, nickname root or surname core).

Names repeat a lot, so the lookup standardises each distinct typed name here
and joins the results back to the records.
"""

from __future__ import annotations

from cdm_assets.domain.identity import standardise as std

# The name under which the nickname table (name, root) is visible while names are standardised.
NICKNAMES = "_cdm_ref_nicknames"


def split_names_sql(records: str) -> str:
    """CTEs ending in `split_names`: `records` plus `_first_name` and `_last_name`.

    Typed first and last names win; a full name fills what is missing:
    "Berg, Jan van der" (last name first; particles after the given name move
    back) or "Jan van der Berg" (first word, then the rest). Titles go first,
    and particles written after the surname ("Bourgondië, van") go before it.
    """
    after_comma = std.without_titles("trim(substring(_full_name, _comma + 1))")
    return f"""
    full_names AS (
        SELECT * EXCLUDE (_titled_name), {std.particles_before_surname("_titled_name")} AS _full_name
        FROM (SELECT *, {std.without_titles(std.collapsed("full_name_raw"))} AS _titled_name FROM {records})
    ),
    comma_names AS (
        SELECT *, strpos(_full_name, ',') AS _comma FROM full_names
    ),
    split_names AS (
        SELECT * EXCLUDE (_comma, _after_comma, _full_name, first_name_raw, last_name_raw, full_name_raw),
               coalesce(first_name_raw,
                        CASE WHEN _comma > 0 THEN nullif(trim(_after_comma.given), '')
                             ELSE split_part(_full_name, ' ', 1) END) AS _first_name,
               coalesce(last_name_raw,
                        CASE WHEN _comma > 0
                             THEN nullif(concat_ws(' ', nullif(trim(_after_comma.particles), ''),
                                                   nullif(trim(left(_full_name, _comma - 1)), '')), '')
                             ELSE nullif(substring(_full_name, strpos(_full_name, ' ') + 1), _full_name) END)
                   AS _last_name
        FROM (
            SELECT *, CASE WHEN _comma > 0 THEN {std.given_name_and_particles(after_comma)} END AS _after_comma
            FROM comma_names
        )
    )"""


def person_names_sql(records: str) -> str:
    """Each distinct first and last name of `records`: (part, typed, name, key, root).

    `root` is the nickname root of a first name and the particle-free core of a last name.
    """
    return f"""
    WITH records AS ({records}),
    {split_names_sql("records")},
    distinct_names AS (
        -- one pass for both parts: part 'first' rows have _last_name aggregated away
        SELECT CASE WHEN grouping(_first_name) = 0 THEN 'first' ELSE 'last' END AS part,
               coalesce(_first_name, _last_name) AS typed
        FROM split_names
        GROUP BY GROUPING SETS ((_first_name), (_last_name))
    ),
    first_name_values AS (
        SELECT typed, {std.without_titles(std.collapsed("typed"))} AS cleaned
        FROM distinct_names WHERE part = 'first' AND typed IS NOT NULL
    ),
    first_name_givens AS (
        SELECT *, {std.first_given_name(std.folded("cleaned"))} AS given FROM first_name_values
    ),
    nicknames AS (
        SELECT {std.letters_only(std.folded("name"))} AS name, {std.letters_only(std.folded("root"))} AS root
        FROM {NICKNAMES}
    ),
    last_name_values AS (
        SELECT typed, {std.particles_before_surname(std.collapsed("typed"))} AS cleaned
        FROM distinct_names WHERE part = 'last' AND typed IS NOT NULL
    )
    SELECT 'first' AS part, typed,
           {std.name_cased("cleaned", surname=False)} AS name,
           {std.letters_only(std.folded("cleaned"))} AS key,
           coalesce(nicknames.root, given) AS root
    FROM first_name_givens
    LEFT JOIN nicknames ON nicknames.name = first_name_givens.given
    UNION ALL
    SELECT 'last', typed,
           {std.name_cased("cleaned", surname=True)},
           {std.letters_only(std.folded("cleaned"))},
           {std.without_leading_particles(std.folded("cleaned"))}
    FROM last_name_values
    """
