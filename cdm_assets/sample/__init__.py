"""Sample data: landing files of several customer sources, transactions and
events, with realistic noise, hard negatives and a ground truth.

    python -m cdm_assets.sample --persons 10000 --seed 42 --out data

The same persons and seed give byte-identical files. No Dagster import here.
"""

from cdm_assets.sample.generator import GenerationSummary, generate

__all__ = ["GenerationSummary", "generate"]
