"""Blocking rules: which record pairs the match model compares at all.

Comparing every pair of two million records is 2·10¹² pairs; a blocking rule
names exact keys, and only records sharing all of them form candidate pairs.
Several rules together find pairs that agree on any one of them, so a typo
or a missing value in one key is caught by another. A key value held by more
than `max_records_per_key` records (a placeholder email, a shop's own phone,
a very common name with a common birth date) forms no block: it would cost
quadratic pairs and tell little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cdm_assets.domain.identity.match_keys import key_column
from cdm_assets.domain.sql import TableName, in_sample, quote_ident


@dataclass(frozen=True)
class BlockingRule:
    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.keys)

    def keyed_sql(self, lookup: TableName, columns: tuple[str, ...] = ("record_key",), sampled: bool = False) -> str:
        """`columns` of the lookup's records (or rows with its columns) that have every key, with
        one hash of the keys as their block; with `sampled`, only the blocks whose keys fall in
        the sample `$sample` (see `sql.in_sample`)."""
        keys = [quote_ident(key_column(key)) for key in self.keys]
        present = " AND ".join(f"{key} IS NOT NULL" for key in keys)
        if sampled:
            present += f" AND {in_sample('sample', *keys)}"
        selected = ", ".join(quote_ident(c) for c in columns)
        return f"SELECT {selected}, hash({', '.join(keys)}) AS block FROM {lookup.sql} WHERE {present}"

    def pairs_sql(
        self,
        lookup: TableName,
        sampled: bool = False,
        pair_sample: bool = False,
    ) -> str:
        """SELECT key_a, key_b of the rule's candidate pairs; `$max_records` caps a block.

        With `sampled`, only the blocks whose keys fall in the sample `$sample`
        (`sql.sample_threshold` of a share) take part: a deterministic sample of
        whole blocks, so that training sees the same pairs on the same data, on
        any engine. With `pair_sample`, only the pairs whose first record falls
        in the sample `$pair_share`: each pair with that chance, decided by the
        pair alone (so every rule keeps the same pairs), and the pairs left out
        are never formed.
        """
        pairs = f" WHERE {in_sample('pair_share', 'a.record_key')}" if pair_sample else ""
        # Blocks are one hash of the keys: a hash collision can only add a
        # candidate pair, which is then scored like any other.
        return f"""
            WITH keyed AS ({self.keyed_sql(lookup, sampled=sampled)}),
            blocks AS (
                SELECT block FROM keyed GROUP BY block HAVING count(*) BETWEEN 2 AND $max_records
            ),
            members AS MATERIALIZED (
                SELECT keyed.* FROM keyed JOIN blocks USING (block)
            )
            SELECT a.record_key AS key_a, b.record_key AS key_b
            FROM members a JOIN members b ON a.block = b.block AND a.record_key < b.record_key{pairs}
        """

    def pair_count_sql(self, lookup: TableName) -> str:
        """SELECT the number of candidate pairs the rule forms (without forming them)."""
        return f"""
            SELECT coalesce(sum(n * (n - 1) / 2), 0)::BIGINT FROM (
                SELECT count(*) AS n FROM ({self.keyed_sql(lookup)}) GROUP BY block
                HAVING count(*) BETWEEN 2 AND $max_records
            )
        """


# The default blocking rules: every contact key on its own, and pairs of person
# keys, so that each field can be wrong or missing while another still finds the pair.
DEFAULT_BLOCKING: tuple[tuple[str, ...], ...] = (
    ("email",),
    ("phone",),
    ("last_name_core", "birth_date"),
    ("first_name_root", "birth_date"),
    ("birth_date", "postcode"),
    ("first_name_root", "last_name_core"),
    # both names with a typo, or typed into each other's field, beside an exact birth date
    ("name_initials", "birth_date"),
    ("last_name_core", "postcode"),
    ("first_name_root", "postcode"),
    ("address",),
)


def blocking_rules(configured: Sequence[Sequence[str]] | None, identifier_names: Sequence[str]) -> list[BlockingRule]:
    """The configured blocking rules, or the defaults plus one per source identifier."""
    if configured is not None:
        return [BlockingRule(tuple(keys)) for keys in configured]
    identifiers = [(f"identifier:{name}",) for name in identifier_names]
    return [BlockingRule(keys) for keys in (*identifiers, *DEFAULT_BLOCKING)]
