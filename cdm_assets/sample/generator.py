"""Write the sample landing files and their ground truth."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from cdm_assets.domain.sql import sql_string
from cdm_assets.sample import sources
from cdm_assets.sample.corruption import OFF, PROFILES, CorruptionRates, Corruptor
from cdm_assets.sample.population import make_population


@dataclass
class GenerationSummary:
    persons: int
    seed: int
    out: Path
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    profile: str = "default"

    def __str__(self) -> str:
        counts = ", ".join(f"{name} {count:,}" for name, count in self.rows.items())
        return f"{self.persons:,} persons (seed {self.seed}, profile {self.profile}) in {self.seconds:.1f}s → {self.out}: {counts}"


def write_csv(frame: pd.DataFrame, path: Path, delimiter: str = ",") -> None:
    """A landing CSV file: every value as text, quoted only where needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame.astype(object).where(frame.notna(), None), preserve_index=False)
    table = table.cast(pa.schema([(name, pa.string()) for name in table.column_names]))
    pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(delimiter=delimiter, quoting_style="needed"))


def write_jsonl(frame: pd.DataFrame, path: Path) -> None:
    """A landing JSON lines file, one object per row, in row order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute("SET threads = 1")  # keeps row order, so output is byte-identical per seed
        con.register("frame", pa.Table.from_pandas(frame, preserve_index=False))
        con.execute(f"COPY frame TO {sql_string(str(path))} (FORMAT json)")


def _append_lines(path: Path, lines: list[bytes]) -> int:
    """Append raw lines; returns the data row number of the first one (header excluded)."""
    with path.open("rb") as handle:
        rows = handle.read().count(b"\n") - 1
    with path.open("ab") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))
    return rows + 1


# Persons generated in one piece at most: larger runs are written in parts of
# this size, so memory stays that of one part.
PART_SIZE = 1_000_000
CUSTOMER_SOURCES = {  # name: (renderer, file, record id column, delimiter; None for JSON lines)
    "crm": (sources.crm, "crm/crm_customers.csv", "crm_id", ","),
    "webshop": (sources.webshop, "webshop/webshop_accounts.csv", "account_id", ","),
    "loyalty": (sources.loyalty, "loyalty/loyalty_members.csv", "kaartnummer", ";"),
    "newsletter": (sources.newsletter, "newsletter/newsletter_subscribers.jsonl", "subscriber_id", None),
    "support": (sources.support, "support/support_contacts.csv", "contact_id", ","),
}


def generate(
    persons: int, seed: int, out: Path, part_size: int = PART_SIZE, rates: CorruptionRates = OFF
) -> GenerationSummary:
    """Generate `persons` people's records under `out/landing` and `out/truth`.

    `rates` says how far records stray from their person (see
    `cdm_assets.sample.corruption`); the default keeps the files of earlier
    versions byte for byte, `PROFILES["hard"]` is the literature-based profile.

    Up to `part_size` persons are one part, written to the files the demo
    config reads. Beyond that, each further part has its own seed, its own
    files (`crm/crm_customers-part01.csv`, ...), person and household ids
    that continue the previous part's, and record, transaction, event and
    cookie ids led by `P<k>-`; references between its files use those ids.
    The raw defects are injected once, in the first part. The truth files
    cover all parts; each part's share is written as soon as it is made.
    """
    started = time.perf_counter()
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    profile = next((name for name, known in PROFILES.items() if known == rates), "custom")
    summary = GenerationSummary(persons, seed, out, profile=profile)
    sizes = [min(part_size, persons - first) for first in range(0, persons, part_size)]
    with _TruthFiles(out / "truth", several_parts=len(sizes) > 1) as truth:
        for part, size in enumerate(sizes):
            rng = np.random.default_rng(seed if part == 0 else [seed, part])
            corruptor = Corruptor(rates, np.random.default_rng([seed, part, 1]))  # its own stream: see corruption.py
            _generate_part(part, part * part_size, size, rng, corruptor, out / "landing", summary, truth)
    summary.seconds = time.perf_counter() - started
    return summary


class _TruthFiles:
    """The ground truth's parquet files, appended to part by part.

    The first part's table fixes each file's schema (one part's file is what
    `pq.write_table` writes); later parts are cast to it, with any column
    they lack (the defects' row numbers) left null.
    """

    def __init__(self, folder: Path, several_parts: bool):
        self.folder, self.several_parts = folder, several_parts
        self.writers: dict[str, pq.ParquetWriter] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        for writer in self.writers.values():
            writer.close()

    def write(self, name: str, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if name not in self.writers:
            schema = table.schema
            if self.several_parts:  # a column without a value in this part (no defects) has text in another
                schema = pa.schema(
                    [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema],
                    metadata=schema.metadata,
                )
            self.writers[name] = pq.ParquetWriter(self.folder / f"{name}.parquet", schema)
        schema = self.writers[name].schema
        columns = [
            table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type) for f in schema
        ]
        self.writers[name].write_table(pa.Table.from_arrays(columns, schema=schema))


@dataclass
class _PartFiles:
    """Where one part writes its landing files (`-partNN` before the suffix after part 0), and its row counts."""

    part: int
    landing: Path
    summary: GenerationSummary

    def path(self, relative: str) -> Path:
        path = Path(relative)
        if self.part:
            path = path.with_name(f"{path.stem}-part{self.part:02d}{path.suffix}")
        path = self.landing / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def count(self, name: str, rows: int) -> None:
        self.summary.rows[name] = self.summary.rows.get(name, 0) + rows


def _generate_part(
    part: int,
    first_person: int,
    persons: int,
    rng: np.random.Generator,
    corruptor: Corruptor,
    landing: Path,
    summary: GenerationSummary,
    truth: _TruthFiles,
) -> None:
    """Write one part's landing files and its share of the truth.

    Each file's frame is dropped once written: only the customer sources'
    record ids and persons stay, for the transactions and events that refer
    to them.
    """
    population = make_population(persons, rng, first_person, corruptor.rates, corruptor.rng)
    truth.write("persons", population.frame())
    prefix = f"P{part}-" if part else ""
    files = _PartFiles(part, landing, summary)
    customers, records = _write_customer_sources(population, rng, prefix, corruptor, files)
    if part == 0:
        records.append(_inject_raw_defects(landing, customers))
    truth.write("customer_records", pd.concat(records, ignore_index=True))
    country, email = population.country, population.email
    del records, population  # the rest of the population is written: its memory goes to the transactions and events
    _write_transactions(country, customers, rng, prefix, first_person, files, truth)
    events, event_truth = sources.clickstream(email, *customers["webshop"], rng, prefix)
    del customers, country, email
    write_jsonl(events, files.path("events/clickstream.jsonl"))
    files.count("clickstream", len(events))
    del events
    event_truth["person_id"] = event_truth["person_id"] + first_person
    truth.write("events", event_truth)


def _write_customer_sources(
    population, rng: np.random.Generator, prefix: str, corruptor: Corruptor, files: _PartFiles
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[pd.DataFrame]]:
    """Each customer source's file; returns per source (record ids, persons by position) and the truth rows."""
    customers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    records = []
    for name, (render, relative, id_column, delimiter) in CUSTOMER_SOURCES.items():
        frame, people = render(population, rng, prefix, corruptor)
        if delimiter is None:
            write_jsonl(frame, files.path(relative))
        else:
            write_csv(frame, files.path(relative), delimiter)
        customers[name] = (frame[id_column].to_numpy(copy=True), people)  # a view would keep the whole frame
        records.append(
            pd.DataFrame(
                {
                    "source": name,
                    "record_id": customers[name][0],
                    "person_id": population.person_id[people],
                    "household_id": population.household_id[people],
                    "defect": None,
                }
            )
        )
        files.count(name, len(frame))
        del frame
    return customers, records


def _transaction_truth(source: str, ids: pd.Series, people: np.ndarray, defects, first_person: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"source": source, "transaction_id": ids, "person_id": people + first_person, "defect": defects}
    )


def _write_transactions(
    country: np.ndarray,
    customers: dict[str, tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    prefix: str,
    first_person: int,
    files: _PartFiles,
    truth: _TruthFiles,
) -> None:
    """The webshop's orders (Parquet) and the stores' sales (CSV), with their truth."""
    orders, order_people, order_defects = sources.webshop_orders(country, *customers["webshop"], rng, prefix)
    pq.write_table(pa.Table.from_pandas(orders, preserve_index=False), files.path("orders/webshop_orders.parquet"))
    transactions = [_transaction_truth("webshop_orders", orders["order_id"], order_people, order_defects, first_person)]
    files.count("webshop_orders", len(orders))
    del orders
    sales, sale_people, sale_defects = sources.store_sales(
        country, {name: customers[name] for name in ("crm", "loyalty")}, rng, prefix
    )
    write_csv(sales, files.path("store_sales/store_sales.csv"))
    transactions.append(_transaction_truth("store_sales", sales["sale_id"], sale_people, sale_defects, first_person))
    files.count("store_sales", len(sales))
    del sales
    truth.write("transactions", pd.concat(transactions, ignore_index=True))


def _inject_raw_defects(landing: Path, customers: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """A few rows the raw layer must quarantine: short, long, duplicate id, missing id, bad bytes."""
    crm_ids, support_ids = customers["crm"][0], customers["support"][0]
    if len(crm_ids) < 2 or len(support_ids) < 1:
        return pd.DataFrame(columns=["source", "record_id", "person_id", "household_id", "defect"])
    first_id = crm_ids[0]
    lines = [
        b"C9000001,Kort",  # too few columns
        b"C9000002,Lang,Regel,a@b.nl,,,,,,NL,2024-01-01T00:00:00,extra",  # too many columns
        f"{first_id},Dubbel,Record,dubbel@mail.nl,,,,,,NL,2024-01-01T00:00:00".encode(),  # duplicate id
        b",Zonder,Id,zonder.id@mail.nl,,,,,,NL,2024-01-01T00:00:00",  # missing id
    ]
    first_row = _append_lines(landing / "crm/crm_customers.csv", lines)
    support_row = _append_lines(
        landing / "support/support_contacts.csv", [b'S9000001,"M\xfcller, Hans",hans@mail.de,,2024-01-01T00:00:00']
    )
    return pd.DataFrame(
        {
            "source": ["crm"] * 4 + ["support"],
            "record_id": ["C9000001", "C9000002", first_id, None, "S9000001"],
            "person_id": [None] * 5,
            "household_id": [None] * 5,
            "defect": [
                "too few columns",
                "too many columns",
                "duplicate record id",
                "missing record id",
                "invalid UTF-8",
            ],
            "row_number": [first_row, first_row + 1, first_row + 2, first_row + 3, support_row],
        }
    )
