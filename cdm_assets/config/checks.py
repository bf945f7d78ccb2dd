"""The `checks:` and `privacy:` of `cdm.yaml`: thresholds, freshness, custom checks, previews."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cdm_assets.config.base import SOURCE_NAME, FieldError, StrictModel


class FreshnessConfig(StrictModel):
    """How old the marts may get before Dagster shows them late (warn) or stale (fail)."""

    warn_after_hours: float | None = Field(default=None, gt=0)
    fail_after_hours: float = Field(default=48, gt=0)

    @model_validator(mode="after")
    def _warn_before_fail(self) -> FreshnessConfig:
        if self.warn_after_hours is not None and self.warn_after_hours >= self.fail_after_hours:
            raise FieldError(("warn_after_hours",), "must be less than fail_after_hours")
        return self


ASSET_KEY = re.compile(r"^(raw|identity|marts)/[a-z][a-z0-9_]*$")


class CustomCheck(StrictModel):
    """A data test of the user's own: SQL that returns the failing rows of one asset."""

    name: str
    asset: str  # the asset key it checks, e.g. marts/customers
    sql: str
    blocking: bool = False  # a failing blocking check stops the assets downstream in the run
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SOURCE_NAME.match(value):
            raise ValueError(f"bad check name {value!r}: expected lower-case [a-z][a-z0-9_]*")
        return value

    @field_validator("asset")
    @classmethod
    def _asset(cls, value: str) -> str:
        if not ASSET_KEY.match(value):
            raise ValueError(f"bad asset key {value!r}: expected raw/<source>, identity/<table> or marts/<table>")
        return value

    @field_validator("sql")
    @classmethod
    def _sql(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty SQL: expected a query returning the failing rows")
        return value.strip().rstrip(";")


class ChecksConfig(StrictModel):
    """Thresholds of the advisory data tests, freshness of the marts and the user's own checks."""

    max_unattributed_share: float = Field(default=0.10, ge=0, le=1)
    max_quarantine_share: float = Field(default=0.01, ge=0, le=1)
    max_row_count_drop: float = Field(default=0.5, ge=0, le=1)
    freshness: FreshnessConfig = Field(default_factory=FreshnessConfig)
    custom: list[CustomCheck] = Field(default_factory=list)

    @field_validator("custom")
    @classmethod
    def _unique(cls, value: list[CustomCheck]) -> list[CustomCheck]:
        seen: set[tuple[str, str]] = set()
        for index, check in enumerate(value):
            if (check.asset, check.name) in seen:
                raise FieldError((str(index), "name"), f"a second check {check.name!r} on {check.asset}")
            seen.add((check.asset, check.name))
        return value


class PrivacyConfig(StrictModel):
    """What personal data may leave the warehouse as Dagster metadata."""

    # previews of tables and samples of failing rows: masked values, none at all, or as they are
    previews: Literal["masked", "off", "full"] = "masked"
