"""The match model: a Fellegi-Sunter model whose weights come from the data being resolved.

`comparisons` say how alike two records are per field (levels), `blocking`
which pairs are compared at all, `training` estimates m, u and the prior
without labels, `scoring` links the pairs whose match probability reaches
the threshold, and `parameters` stores the model in the warehouse. This
module ties them to an entity's settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cdm_assets.domain.identity.match_model.blocking import BlockingRule, blocking_rules
from cdm_assets.domain.identity.match_model.comparisons import Comparison, comparisons_for
from cdm_assets.domain.identity.match_model.parameters import StoredModel, load_model, save_model, settings_fingerprint
from cdm_assets.domain.identity.match_model.scoring import (
    ScoringModel,
    ValueFrequencies,
    measure_value_frequencies,
    personal_columns,
)
from cdm_assets.domain.identity.match_model.training import train
from cdm_assets.domain.plan import EntityPlan
from cdm_assets.domain.sql import TableName
from cdm_assets.domain.warehouse import row_count


@dataclass(frozen=True)
class ModelSettings:
    comparisons: tuple[Comparison, ...]
    blocking: tuple[BlockingRule, ...]
    max_records_per_key: int
    threshold: float
    cannot_link: tuple[str, ...]
    u_sample_pairs: int
    em_max_pairs: int

    @property
    def fingerprint(self) -> str:
        """What a trained model depends on; the threshold and cannot-link apply at scoring only."""
        return settings_fingerprint(
            {
                # how the model is estimated; 2: household fields also get a u given a shared surname;
                # 3: value frequencies are measured with the model and kept with it
                "training": 3,
                "comparisons": {
                    c.name: [[level.name, level.condition] for level in c.levels] for c in self.comparisons
                },
                "blocking": [rule.name for rule in self.blocking],
                "max_records_per_key": self.max_records_per_key,
                "u_sample_pairs": self.u_sample_pairs,
                "em_max_pairs": self.em_max_pairs,
            }
        )


def model_settings(entity: EntityPlan) -> ModelSettings | None:
    """The entity's match model settings, or None when it links by rules alone."""
    options = entity.match_model
    if options is None:
        return None
    identifiers = entity.identifier_names
    return ModelSettings(
        comparisons=tuple(comparisons_for(identifiers)),
        blocking=tuple(blocking_rules(options.blocking, identifiers)),
        max_records_per_key=entity.max_records_per_key,
        threshold=options.threshold,
        cannot_link=tuple(options.cannot_link),
        u_sample_pairs=options.u_sample_pairs,
        em_max_pairs=options.em_max_pairs,
    )


def ensure_match_model(
    con: duckdb.DuckDBPyConnection, settings: ModelSettings, lookup: TableName, table: TableName, retrain: bool = False
) -> tuple[StoredModel, bool]:
    """The stored model when it fits the settings (and no retraining is asked for),
    else a model trained now on `lookup` and stored; the flag says whether it was trained."""
    stored = None if retrain else load_model(con, table)
    if stored is not None and stored.fingerprint == settings.fingerprint:
        return stored, False
    trained = train(
        con, lookup, settings.comparisons, settings.blocking, settings.max_records_per_key,
        settings.u_sample_pairs, settings.em_max_pairs,
    )  # fmt: skip
    save_model(
        con, table, trained, settings.fingerprint,
        lambda frequencies: measure_value_frequencies(
            con, lookup, settings.comparisons, settings.max_records_per_key, frequencies
        ),
        row_count(con, lookup),
    )  # fmt: skip
    stored = load_model(con, table)
    assert stored is not None
    return stored, True


def scoring_model(settings: ModelSettings, stored: StoredModel) -> ScoringModel:
    """The stored parameters in the order of the settings' comparisons."""
    by_name = {p.comparison: p for p in stored.parameters}
    return ScoringModel(
        comparisons=settings.comparisons,
        parameters=tuple(by_name[c.name] for c in settings.comparisons),
        prior=stored.prior,
        threshold=settings.threshold,
        blocking=settings.blocking,
        cannot_link=settings.cannot_link,
        conflict_columns=personal_columns(stored.parameters, settings.cannot_link),
        frequencies=None
        if stored.frequencies is None
        else ValueFrequencies(stored.frequencies, stored.one_holder_u, stored.first_name_given_surname),
    )
