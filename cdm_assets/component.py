"""cdm inside another Dagster project: `CdmComponent`.

    dg scaffold defs cdm_assets.CdmComponent customers

adds `defs/customers/defs.yaml` (and a starter `cdm.yaml` beside it) to a `dg`
project: the whole platform of one cdm.yaml (raw sources, identity, marts, checks,
the landing sensor, the `forget` job) under the asset key prefix `customers/`.
Scaffold it twice, with two configs and two prefixes, and two instances sit side by
side, each with its own warehouse file, resource key and names.
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
from pydantic import Field, field_validator

from cdm_assets.config import load_config
from cdm_assets.wiring.keys import Namespace
from cdm_assets.wiring.project import build_definitions

# A prefix part names assets, steps and a resource key: Dagster allows letters, digits and _.
PREFIX_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

STARTER_CONFIG = """\
# A cdm instance of this project (`CdmComponent` in defs.yaml). Relative paths are
# relative to this file. Every key is described in cdm's README ("Configuration").
warehouse:
  duckdb_path: data/cdm.duckdb

sources:
  crm:
    entity: customer
    path: landing/crm/*.csv
    record_id: customer_id
    fields:
      first_name: first_name
      last_name: last_name
      email: email
      phone: phone
      birth_date: {column: birth_date, format: "%Y-%m-%d"}
      postcode: postcode
      city: city
"""


class CdmScaffolder(dg.Scaffolder):
    """Writes defs.yaml (the folder's name as the key prefix) and a starter cdm.yaml."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        folder = Path(request.target_path)
        prefix = re.sub(r"[^A-Za-z0-9_]", "_", folder.name)
        dg.scaffold_component(request, {"config_path": "cdm.yaml", "key_prefix": prefix})
        config = folder / "cdm.yaml"
        if not config.exists():
            config.write_text(STARTER_CONFIG)


@dg.scaffold_with(CdmScaffolder)
class CdmComponent(dg.Component, dg.Model, dg.Resolvable):
    """The customer data platform of one cdm.yaml: raw sources with quarantine, the source
    lookup, match model, identity graph, stable Customer IDs, golden records, transactions,
    events and metrics, their checks, the landing sensor and the `forget` job."""

    config_path: str = Field(
        description="The cdm.yaml of this instance; a relative path is relative to this defs.yaml's folder."
    )
    key_prefix: str | list[str] | None = Field(
        default=None,
        description="Prefix of every asset key (`customers` gives customers/marts/customers); also prefixes "
        "step, sensor and job names and the warehouse resource key (`duckdb_customers`). None: cdm's own keys.",
    )
    environment: str | None = Field(
        default=None, description="The `environments.<name>` overlay of cdm.yaml to apply; default: CDM_ENV, else dev."
    )
    in_process_executor: bool = Field(
        default=True,
        description="Run the project's steps with cdm's in-process executor (one DuckDB writer, freed slots of "
        "killed runs). Set false when the project declares its own executor.",
    )

    @field_validator("key_prefix")
    @classmethod
    def _prefix_parts(cls, value: str | list[str] | None) -> str | list[str] | None:
        parts = [value] if isinstance(value, str) else (value or [])
        for part in parts:
            if not PREFIX_PART.match(part):
                raise ValueError(f"key_prefix: {part!r} is not a name of letters, digits and _")
        return value

    @property
    def namespace(self) -> Namespace:
        prefix = self.key_prefix
        return Namespace(tuple([prefix] if isinstance(prefix, str) else (prefix or [])))

    def config_file(self, folder: Path) -> Path:
        path = Path(self.config_path).expanduser()
        return path if path.is_absolute() else folder / path

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        config = load_config(self.config_file(Path(context.path)), environment=self.environment)
        return build_definitions(
            config, self.namespace, executor=self.in_process_executor, honour_duckdb_path_env=False
        )
