"""Environments: one `cdm.yaml` for every stage of a DTAP street.

`environments.<name>` in cdm.yaml is an overlay; `CDM_ENV=<name>` applies it
over the rest of the document before validation. What may differ between
stages is what a stage owns: the warehouse (file, engine, memory), where each
source's files land (`sources.<name>.path`), check thresholds (including
`identity.max_cluster_size`) and privacy settings. Sources, their fields and
how records match stay the same on every stage, so acceptance tests what production
runs. Without `CDM_ENV` the environment is `dev`, and a config needs no
`environments.dev` for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

ENVIRONMENT_ENV = "CDM_ENV"
DEFAULT_ENVIRONMENT = "dev"
ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

# Top-level keys an overlay may set; under `sources.<name>` only the path, under
# `identity` only the over-merge check's threshold (how records match is shared).
OVERLAY_KEYS = ("warehouse", "sources", "checks", "privacy", "identity")
SOURCE_OVERLAY_KEYS = ("path",)
IDENTITY_OVERLAY_KEYS = ("max_cluster_size",)


class EnvironmentProblem(ValueError):
    """An overlay that cannot apply: `key` is its key path within the document."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def active_environment() -> str:
    """The environment in use: `CDM_ENV`, or `dev`."""
    return os.environ.get(ENVIRONMENT_ENV, "").strip() or DEFAULT_ENVIRONMENT


def apply_environment(document: dict, environment: str) -> tuple[dict, dict]:
    """The document with `environments.<environment>` laid over it (and the
    `environments` key removed), and the overlay itself. Raises
    EnvironmentProblem for an undeclared environment other than `dev` or an
    overlay that sets what stages must share."""
    declared = document.get("environments") or {}
    if not isinstance(declared, Mapping):
        raise EnvironmentProblem("environments", "expected a mapping of environment name to overlay")
    for name, overlay in declared.items():
        if not isinstance(name, str) or not ENVIRONMENT_NAME.match(name):
            raise EnvironmentProblem(f"environments.{name}", "expected a lower-case name [a-z][a-z0-9_-]*")
        _check_overlay(overlay, f"environments.{name}", document)
    base = {key: value for key, value in document.items() if key != "environments"}
    if environment not in declared:
        if environment != DEFAULT_ENVIRONMENT:
            names = ", ".join(sorted(declared)) or "none"
            raise EnvironmentProblem(
                f"environments.{environment}",
                f"{ENVIRONMENT_ENV}={environment} names no environment of this config (declared: {names})",
            )
        return base, {}
    overlay = declared[environment] or {}
    return _merged(base, overlay), overlay


def overlay_key(location: list[str], overlay: Mapping, environment: str) -> list[str]:
    """A validation error's key path, prefixed with `environments.<name>` when the
    overlay set that key, so the message points at the line that is wrong."""
    node: object = overlay
    for part in location:
        if not isinstance(node, Mapping) or part not in node:
            return location
        node = node[part]
    return ["environments", environment, *location]


def _check_overlay(overlay: object, where: str, document: dict) -> None:
    if overlay is None:
        return
    if not isinstance(overlay, Mapping):
        raise EnvironmentProblem(where, "expected a mapping of the keys this environment changes")
    for key, value in overlay.items():
        if key not in OVERLAY_KEYS:
            raise EnvironmentProblem(
                f"{where}.{key}",
                f"an environment may change only {', '.join(OVERLAY_KEYS)} (sources: their path); "
                "the rest is shared by every stage",
            )
        if key == "sources":
            _check_source_overlay(value, f"{where}.sources", document.get("sources") or {})
        if key == "identity" and isinstance(value, Mapping):
            for setting in value:
                if setting not in IDENTITY_OVERLAY_KEYS:
                    raise EnvironmentProblem(
                        f"{where}.identity.{setting}",
                        f"an environment may change only identity.{', identity.'.join(IDENTITY_OVERLAY_KEYS)}; "
                        "how records match is shared by every stage",
                    )


def _check_source_overlay(value: object, where: str, sources: Mapping) -> None:
    if not isinstance(value, Mapping):
        raise EnvironmentProblem(where, "expected a mapping of source name to its landing path")
    for name, source in value.items():
        if name not in sources:
            raise EnvironmentProblem(f"{where}.{name}", f"no source {name!r} in sources; an environment cannot add one")
        if not isinstance(source, Mapping):
            raise EnvironmentProblem(f"{where}.{name}", "expected a mapping such as {path: ...}")
        for key in source:
            if key not in SOURCE_OVERLAY_KEYS:
                raise EnvironmentProblem(f"{where}.{name}.{key}", "an environment may change only a source's path")


def _merged(base: Mapping, overlay: Mapping) -> dict:
    """`base` with `overlay` laid over it: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged
