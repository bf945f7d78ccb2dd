"""The JSON Schema of `cdm.yaml`, for editor completion and validation (`cdm schema`).

It is generated from the same models that validate the file, so it cannot
drift from what `load_config` accepts; the keys the loader sets itself are
left out, and `environments` (an overlay the loader applies before
validation) is described here.
"""

from __future__ import annotations

from cdm_assets.config.environments import ENVIRONMENT_ENV, OVERLAY_KEYS
from cdm_assets.config.model import CdmConfig

SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_SET_BY_LOADER = ("config_path", "environment")


def config_json_schema() -> dict:
    schema = CdmConfig.model_json_schema()
    for key in _SET_BY_LOADER:
        schema["properties"].pop(key, None)
    schema["properties"]["environments"] = {
        "type": "object",
        "description": f"Overlays per stage; {ENVIRONMENT_ENV}=<name> lays environments.<name> over the rest",
        "additionalProperties": {
            "type": "object",
            "properties": {key: {"type": "object"} for key in OVERLAY_KEYS},
            "additionalProperties": False,
        },
    }
    return {**schema, "$schema": SCHEMA_DRAFT, "title": "cdm.yaml"}
