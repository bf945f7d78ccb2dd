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


def generate(persons: int, seed: int, out: Path) -> GenerationSummary:
    """Generate `persons` people's records under `out/landing` and `out/truth`."""
    started = time.perf_counter()
    out = Path(out)
    rng = np.random.default_rng(seed)
    population = make_population(persons, rng)
    landing, truth_dir = out / "landing", out / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    summary = GenerationSummary(persons, seed, out)

    customer_sources = {
        "crm": (sources.crm, "crm/crm_customers.csv", "crm_id", ","),
        "webshop": (sources.webshop, "webshop/webshop_accounts.csv", "account_id", ","),
        "loyalty": (sources.loyalty, "loyalty/loyalty_members.csv", "kaartnummer", ";"),
        "newsletter": (sources.newsletter, "newsletter/newsletter_subscribers.jsonl", "subscriber_id", None),
        "support": (sources.support, "support/support_contacts.csv", "contact_id", ","),
    }
    frames: dict[str, tuple[pd.DataFrame, np.ndarray, str]] = {}
    truth = []
    for name, (render, relative, id_column, delimiter) in customer_sources.items():
        frame, people = render(population, rng)
        frames[name] = (frame, people, id_column)
        path = landing / relative
        if delimiter is None:
            _write_jsonl(frame, path)
        else:
            _write_csv(frame, path, delimiter)
        truth.append(pd.DataFrame({
            "source": name, "record_id": frame[id_column], "person_id": people,
            "household_id": population.household_id[people], "defect": None,
        }))
        summary.rows[name] = len(frame)
    truth.append(_inject_raw_defects(landing, frames, population))
    pd.concat(truth, ignore_index=True).to_parquet(truth_dir / "customer_records.parquet", index=False)
    population.frame().to_parquet(truth_dir / "persons.parquet", index=False)

    accounts, account_people, _ = frames["webshop"]
    orders, order_people, order_defects = sources.webshop_orders(population, accounts, account_people, rng)
    (landing / "orders").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(orders, preserve_index=False), landing / "orders/webshop_orders.parquet")
    sales, sale_people, sale_defects = sources.store_sales(
        population, {name: frames[name] for name in ("crm", "loyalty")}, rng
    )
    _write_csv(sales, landing / "store_sales/store_sales.csv")
    pd.concat([
        pd.DataFrame({"source": "webshop_orders", "transaction_id": orders["order_id"], "person_id": order_people, "defect": order_defects}),
        pd.DataFrame({"source": "store_sales", "transaction_id": sales["sale_id"], "person_id": sale_people, "defect": sale_defects}),
    ], ignore_index=True).to_parquet(truth_dir / "transactions.parquet", index=False)
    events, event_truth = sources.clickstream(population, accounts, account_people, rng)
    _write_jsonl(events, landing / "events/clickstream.jsonl")
    event_truth.to_parquet(truth_dir / "events.parquet", index=False)
    summary.rows.update(webshop_orders=len(orders), store_sales=len(sales), clickstream=len(events))
    summary.seconds = time.perf_counter() - started
    return summary


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
