"""Write the sample landing files and their ground truth."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from cdm_assets.sample import sources
from cdm_assets.sample.population import make_population


@dataclass
class GenerationSummary:
    persons: int
    seed: int
    out: Path
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        counts = ", ".join(f"{name} {count:,}" for name, count in self.rows.items())
        return f"{self.persons:,} persons (seed {self.seed}) in {self.seconds:.1f}s → {self.out}: {counts}"


def _write_csv(frame: pd.DataFrame, path: Path, delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame.astype(object).where(frame.notna(), None), preserve_index=False)
    table = table.cast(pa.schema([(name, pa.string()) for name in table.column_names]))
    pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(delimiter=delimiter, quoting_style="needed"))


def _write_jsonl(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute("SET threads = 1")  # keeps row order, so output is byte-identical per seed
        con.register("frame", pa.Table.from_pandas(frame, preserve_index=False))
        con.execute(f"COPY frame TO '{path}' (FORMAT json)")


def _append_lines(path: Path, lines: list[bytes]) -> int:
    """Append raw lines; returns the data row number of the first one (header excluded)."""
    with path.open("rb") as handle:
        rows = handle.read().count(b"\n") - 1
    with path.open("ab") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))
    return rows + 1


# Persons generated in one piece at most: larger runs are written in parts of
# this size, so memory stays that of one part (about 3.5 GB).
PART_SIZE = 1_000_000
CUSTOMER_SOURCES = {  # name: (renderer, file, record id column, delimiter; None for JSON lines)
    "crm": (sources.crm, "crm/crm_customers.csv", "crm_id", ","),
    "webshop": (sources.webshop, "webshop/webshop_accounts.csv", "account_id", ","),
    "loyalty": (sources.loyalty, "loyalty/loyalty_members.csv", "kaartnummer", ";"),
    "newsletter": (sources.newsletter, "newsletter/newsletter_subscribers.jsonl", "subscriber_id", None),
    "support": (sources.support, "support/support_contacts.csv", "contact_id", ","),
}


def generate(persons: int, seed: int, out: Path, part_size: int = PART_SIZE) -> GenerationSummary:
    """Generate `persons` people's records under `out/landing` and `out/truth`.

    Up to `part_size` persons are one part, written to the files the demo
    config reads. Beyond that, each further part has its own seed, its own
    files (`crm/crm_customers-part01.csv`, ...), person and household ids
    that continue the previous part's, and record, transaction, event and
    cookie ids led by `P<k>-`; references between its files use those ids.
    The raw defects are injected once, in the first part.
    """
    started = time.perf_counter()
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    summary = GenerationSummary(persons, seed, out)
    sizes = [min(part_size, persons - first) for first in range(0, persons, part_size)]
    truth: dict[str, list[pa.Table]] = {"customer_records": [], "persons": [], "transactions": [], "events": []}
    for part, size in enumerate(sizes):
        rng = np.random.default_rng(seed if part == 0 else [seed, part])
        for name, table in _generate_part(part, part * part_size, size, rng, out / "landing", summary).items():
            truth[name].append(table)
    for name, tables in truth.items():
        pq.write_table(pa.concat_tables(tables, promote_options="permissive"), out / "truth" / f"{name}.parquet")
    summary.seconds = time.perf_counter() - started
    return summary


def _generate_part(
    part: int, first_person: int, persons: int, rng: np.random.Generator, landing: Path, summary: GenerationSummary
) -> dict[str, pa.Table]:
    """Write one part's landing files; returns its truth tables."""
    population = make_population(persons, rng, first_person)
    prefix = f"P{part}-" if part else ""

    def file(relative: str) -> Path:
        path = Path(relative)
        return landing / (path.with_name(f"{path.stem}-part{part:02d}{path.suffix}") if part else path)

    def led(values) -> np.ndarray:
        values = np.asarray(values, dtype=object)
        return prefix + values if prefix else values

    def count(name: str, rows: int) -> None:
        summary.rows[name] = summary.rows.get(name, 0) + rows

    frames: dict[str, tuple[pd.DataFrame, np.ndarray, str]] = {}
    truth = []
    for name, (render, relative, id_column, delimiter) in CUSTOMER_SOURCES.items():
        frame, people = render(population, rng)
        frame[id_column] = led(frame[id_column])
        frames[name] = (frame, people, id_column)
        if delimiter is None:
            _write_jsonl(frame, file(relative))
        else:
            _write_csv(frame, file(relative), delimiter)
        truth.append(pd.DataFrame({
            "source": name, "record_id": frame[id_column], "person_id": population.person_id[people],
            "household_id": population.household_id[people], "defect": None,
        }))
        count(name, len(frame))
    if part == 0:
        truth.append(_inject_raw_defects(landing, frames, population))
    records = pd.concat(truth, ignore_index=True)

    accounts, account_people, _ = frames["webshop"]
    orders, order_people, order_defects = sources.webshop_orders(population, accounts, account_people, rng)
    orders["order_id"] = led(orders["order_id"])
    file("orders/webshop_orders.parquet").parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(orders, preserve_index=False), file("orders/webshop_orders.parquet"))
    sales, sale_people, sale_defects = sources.store_sales(
        population, {name: frames[name] for name in ("crm", "loyalty")}, rng
    )
    sales["sale_id"] = led(sales["sale_id"])
    _write_csv(sales, file("store_sales/store_sales.csv"))
    transactions = pd.concat([
        pd.DataFrame({"source": "webshop_orders", "transaction_id": orders["order_id"],
                      "person_id": order_people + first_person, "defect": order_defects}),
        pd.DataFrame({"source": "store_sales", "transaction_id": sales["sale_id"],
                      "person_id": sale_people + first_person, "defect": sale_defects}),
    ], ignore_index=True)
    events, event_truth = sources.clickstream(population, accounts, account_people, rng)
    events["event_id"], events["anon_id"] = led(events["event_id"]), led(events["anon_id"])
    event_truth["event_id"], event_truth["anon_id"] = events["event_id"], events["anon_id"]
    event_truth["person_id"] = event_truth["person_id"] + first_person
    _write_jsonl(events, file("events/clickstream.jsonl"))
    count("webshop_orders", len(orders))
    count("store_sales", len(sales))
    count("clickstream", len(events))
    return {
        "customer_records": pa.Table.from_pandas(records, preserve_index=False),
        "persons": pa.Table.from_pandas(population.frame(), preserve_index=False),
        "transactions": pa.Table.from_pandas(transactions, preserve_index=False),
        "events": pa.Table.from_pandas(event_truth, preserve_index=False),
    }


def _inject_raw_defects(landing: Path, frames: dict, population) -> pd.DataFrame:
    """A few rows the raw layer must quarantine: short, long, duplicate id, missing id, bad bytes."""
    crm, crm_people, _ = frames["crm"]
    support, support_people, _ = frames["support"]
    if len(crm) < 2 or len(support) < 1:
        return pd.DataFrame(columns=["source", "record_id", "person_id", "household_id", "defect"])
    first_id = crm["crm_id"].iloc[0]
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
    return pd.DataFrame({
        "source": ["crm"] * 4 + ["support"],
        "record_id": ["C9000001", "C9000002", first_id, None, "S9000001"],
        "person_id": [None] * 5,
        "household_id": [None] * 5,
        "defect": ["too few columns", "too many columns", "duplicate record id", "missing record id", "invalid UTF-8"],
        "row_number": [first_row, first_row + 1, first_row + 2, first_row + 3, support_row],
    })
