"""Find, read and validate `cdm.yaml`.

Every problem becomes one `ConfigError` whose message names the file, the key
path (`sources.crm.record_id`) and what was expected, so that a broken config
stops definitions from loading with a message a user can act on.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from cdm_assets.config.base import FieldError
from cdm_assets.config.environments import EnvironmentProblem, active_environment, apply_environment, overlay_key
from cdm_assets.config.model import ENGINES, CdmConfig

CONFIG_ENV = "CDM_CONFIG"
DUCKDB_PATH_ENV = "CDM_DUCKDB_PATH"
ENGINE_ENV = "CDM_ENGINE"
BUNDLED_CONFIG = Path(__file__).resolve().parent.parent / "demo" / "cdm.yaml"

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """`cdm.yaml` cannot be used; the message says where and why."""


def config_path() -> Path:
    """The config file in use: `CDM_CONFIG`, or the bundled demo config."""
    configured = os.environ.get(CONFIG_ENV)
    return Path(configured).expanduser().resolve() if configured else BUNDLED_CONFIG


def load_config(path: str | Path | None = None, environment: str | None = None) -> CdmConfig:
    """Read and validate a config file (default: `config_path()`) with the overlay of
    `environment` (default: `CDM_ENV`, else `dev`)."""
    path = Path(path).expanduser().resolve() if path is not None else config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = f" (set by {CONFIG_ENV})" if os.environ.get(CONFIG_ENV) else ""
        raise ConfigError(f"{path}: config file not found{hint}") from None
    try:
        _refuse_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), path)
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping with at least a 'sources' key")
    return parse_config(document, path, environment)


def parse_config(document: dict, path: Path, environment: str | None = None) -> CdmConfig:
    """Validate an already parsed document that came from `path`, with the overlay of
    `environment` (default: `CDM_ENV`, else `dev`) applied."""
    environment = environment or active_environment()
    try:
        document, overlay = apply_environment(document, environment)
    except EnvironmentProblem as problem:
        raise ConfigError(f"{path}: {problem.key}: {problem.message}") from None
    try:
        config = CdmConfig.model_validate({**document, "config_path": path, "environment": environment})
    except ValidationError as error:
        raise ConfigError(_describe(error, path, overlay, environment)) from None
    warehouse = config.resolve(config.warehouse.duckdb_path)
    if warehouse.is_dir():
        raise ConfigError(
            f"{path}: warehouse.duckdb_path: {config.warehouse.duckdb_path} is a directory; expected a DuckDB file"
        )
    _warn_about_empty_globs(config, path)
    return config


def duckdb_path(config: CdmConfig, honour_env: bool = True) -> Path:
    """The warehouse file: `CDM_DUCKDB_PATH`, else `warehouse.duckdb_path`. A cdm instance
    inside another project (`CdmComponent`) reads only its config (`honour_env=False`):
    one variable would point every instance at one file."""
    override = os.environ.get(DUCKDB_PATH_ENV) if honour_env else None
    if override:
        resolved = Path(override).expanduser().resolve()
        if resolved.is_dir():
            raise ConfigError(f"{DUCKDB_PATH_ENV}: {override} is a directory; expected a DuckDB file")
        return resolved
    return config.resolve(config.warehouse.duckdb_path).resolve()


def engine(config: CdmConfig, honour_env: bool = True) -> str:
    """The engine that runs the steps: `CDM_ENGINE`, else `warehouse.engine`."""
    override = os.environ.get(ENGINE_ENV, "").strip() if honour_env else ""
    if not override:
        return config.warehouse.engine
    if override not in ENGINES:
        raise ConfigError(f"{ENGINE_ENV}: {override!r} is not an engine; expected one of {', '.join(ENGINES)}")
    return override


def spark_warehouse_dir(config: CdmConfig) -> str:
    """`warehouse.spark.warehouse_dir`: a URL (`s3a://...`) as it is, a path resolved
    against the config file's folder."""
    configured = config.warehouse.spark.warehouse_dir
    if "://" in configured:
        return configured.rstrip("/")
    return str(config.resolve(configured).resolve())


def _refuse_duplicate_keys(node: yaml.Node | None, path: Path, key_path: tuple[str, ...] = ()) -> None:
    """YAML keeps the last of two equal keys without a word; two sources of one name
    (or any repeated key) are a mistake to report, with the key path and lines."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                where = ".".join((*key_path, key))
                raise ConfigError(
                    f"{path}: {where}: duplicate key (lines {seen[key]} and {line}); each key may appear once"
                )
            seen[key] = line
            _refuse_duplicate_keys(value_node, path, (*key_path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, path, (*key_path, str(index)))


def _describe(error: ValidationError, path: Path, overlay: dict | None = None, environment: str = "") -> str:
    problems = []
    items = error.errors()
    for item in items:
        location = [str(part) for part in item["loc"]]
        if _is_losing_union_branch(location, items):
            continue
        message = item["msg"]
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            location += list(cause.path)
            message = cause.message
        else:
            message = _plain(message, item["type"])
        location = _drop_union_branches(location)
        if overlay:
            location = overlay_key(location, overlay, environment)
        key = ".".join(location) or "(top level)"
        problems.append(f"{path}: {key}: {message}")
    # One clear message: pydantic may report the same key several times (one
    # per union branch); keep the first of each.
    unique = list(dict.fromkeys(problems))
    return "\n".join(unique)


def _plain(message: str, kind: str) -> str:
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if message.startswith("Value error, "):
        return message[len("Value error, ") :]
    return message


UNION_BRANCHES = {"str", "constrained-str", "DateColumn"}


def _drop_union_branches(location: list[str]) -> list[str]:
    # pydantic names the union branch it tried (`str`, `DateColumn`); users
    # never wrote those, so leave them out of the key path.
    return [part for part in location if part not in UNION_BRANCHES]


def _is_losing_union_branch(location: list[str], items: list) -> bool:
    """A "should be a string" error for a value that was given as a mapping.

    A field takes a column name or `{column, format}`; when the user wrote a
    mapping, only the mapping branch's complaint is worth showing.
    """
    for index, part in enumerate(location):
        if part in {"str", "constrained-str"}:
            prefix = location[:index]
            return any([str(p) for p in other["loc"]][: index + 1] == [*prefix, "DateColumn"] for other in items)
    return False


def _warn_about_empty_globs(config: CdmConfig, path: Path) -> None:
    for name, source in config.sources.items():
        pattern = os.path.normpath(config.resolve(source.path))
        if not glob.glob(pattern, recursive=True):
            log.warning(
                "%s: sources.%s.path: no file matches %s yet; the source loads as empty until files land",
                path,
                name,
                pattern,
            )
