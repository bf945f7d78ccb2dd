"""What every part of `cdm.yaml` shares: strict models, names, errors at a key path."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(ValueError):
    """A validation error that knows the key path below the model it came from."""

    def __init__(self, path: tuple[str, ...], message: str):
        super().__init__(message)
        self.path = path
        self.message = message
