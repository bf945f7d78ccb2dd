"""cdm: a customer data platform on Dagster.

`cdm_assets.defs` is the Dagster `Definitions` object. It is built on first
access, so that the config, domain and sample modules import without loading
(and validating) the whole Dagster project. `cdm_assets.CdmComponent` adds the
platform to another Dagster project (`dg scaffold defs cdm_assets.CdmComponent <name>`).
"""

__all__ = ["CdmComponent", "defs"]


def __getattr__(name: str):
    if name == "defs":
        from cdm_assets.definitions import defs

        return defs
    if name == "CdmComponent":
        from cdm_assets.component import CdmComponent

        return CdmComponent
    raise AttributeError(f"module 'cdm_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
