"""The sample generator's `hard` profile: records that stray from their person as the literature says they do."""

from __future__ import annotations

import hashlib
import re

import pandas as pd
import pytest

from cdm_assets.sample import generate
from cdm_assets.sample.__main__ import main as sample_cli
from cdm_assets.sample.corruption import PROFILES, with_overrides

HARD = PROFILES["hard"]
PERSONS = 3000


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    out = tmp_path_factory.mktemp("hard")
    generate(persons=PERSONS, seed=7, out=out, rates=HARD)
    persons = pd.read_parquet(out / "truth/persons.parquet")
    truth = pd.read_parquet(out / "truth/customer_records.parquet")
    crm = pd.read_csv(out / "landing/crm/crm_customers.csv", dtype=str, on_bad_lines="skip", encoding_errors="replace")
    crm = crm.merge(truth[truth["source"] == "crm"], left_on="crm_id", right_on="record_id").merge(
        persons, on="person_id", suffixes=("", "_true")
    )
    return out, persons, crm


def digest(folder) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def test_the_configured_share_of_persons_has_a_second_phone_and_records_carry_either(hard):
    _, persons, crm = hard
    assert persons["second_phone_nsn"].notna().mean() == pytest.approx(HARD.second_phone, abs=0.03)
    shared_home = (
        persons.dropna(subset=["second_phone_nsn"]).groupby("second_phone_nsn")["household_id"].agg(["size", "nunique"])
    )
    assert ((shared_home["size"] >= 2) & (shared_home["nunique"] == 1)).any()  # a home's landline, shared
    two = crm.dropna(subset=["second_phone_nsn", "phone"])
    digits = two["phone"].map(lambda phone: re.sub(r"\D", "", phone))
    on_second = [d.endswith(n) for d, n in zip(digits, two["second_phone_nsn"])]
    on_first = [d.endswith(n) for d, n in zip(digits, two["phone_nsn"])]
    assert pd.Series(on_second).mean() == pytest.approx(HARD.second_phone_use, abs=0.08)
    either = [a or b for a, b in zip(on_first, on_second)]
    assert pd.Series(either).mean() > 0.99  # the rest are placeholders


def test_birth_dates_span_1900_to_2005_with_some_older_and_typos_among_them(hard):
    _, persons, crm = hard
    years = pd.to_datetime(persons["birth_date"]).dt.year
    assert years.max() == 2005 and years[years >= 1900].min() == 1900
    assert (years < 1900).mean() == pytest.approx(HARD.born_before_1900, abs=0.007)
    written = crm.dropna(subset=["birth_date"])
    seen = pd.to_datetime(written["birth_date"])
    true = pd.to_datetime(written["birth_date_true"])
    swapped = (
        (seen.dt.year == true.dt.year)
        & (seen.dt.month == true.dt.day)
        & (seen.dt.day == true.dt.month)
        & (seen != true)
    )
    year_off = (
        ((seen.dt.year - true.dt.year).abs() == 1) & (seen.dt.month == true.dt.month) & (seen.dt.day == true.dt.day)
    )
    differs = seen != true
    assert swapped.sum() >= 5
    assert year_off.sum() >= 5
    # day/month swaps apply only where the day is a month: about 12/30 of the configured rate
    assert swapped.mean() == pytest.approx(HARD.date_day_month_swap * 12 / 30.4, abs=0.01)
    assert differs.mean() < HARD.date_day_month_swap + HARD.date_year_off + HARD.date_digit_typo + 0.01


def test_some_records_of_married_women_carry_their_birth_surname(hard):
    _, persons, crm = hard
    changed = persons["birth_last_name"].notna().mean()
    assert changed == pytest.approx(0.5 * HARD.married_name_change, abs=0.04)  # half the persons are women
    with_birth_name = crm.dropna(subset=["birth_last_name", "last_name"])
    on_birth_name = (
        with_birth_name["last_name"].str.strip().str.lower() == with_birth_name["birth_last_name"].str.lower()
    )
    assert on_birth_name.mean() == pytest.approx(HARD.birth_name_use, abs=0.1)


def test_initials_stand_for_some_first_names(hard):
    _, _, crm = hard
    initials = crm["first_name"].dropna().str.fullmatch(r"[A-Z]\.?")
    assert initials.mean() == pytest.approx(HARD.initials, abs=0.02)


def test_the_hard_profile_is_deterministic_for_a_seed_and_differs_from_the_default(hard, tmp_path):
    out, _, _ = hard
    generate(persons=PERSONS, seed=7, out=tmp_path / "again", rates=HARD)
    assert digest(tmp_path / "again" / "landing") == digest(out / "landing")
    generate(persons=PERSONS, seed=7, out=tmp_path / "default")
    assert digest(tmp_path / "default" / "landing") != digest(out / "landing")


def test_a_rate_set_to_zero_switches_its_corruption_off(tmp_path):
    generate(
        persons=500, seed=3, out=tmp_path, rates=with_overrides(HARD, {"second_phone": 0, "married_name_change": 0})
    )
    persons = pd.read_parquet(tmp_path / "truth/persons.parquet")
    assert persons["second_phone_nsn"].isna().all()
    assert persons["birth_last_name"].isna().all()


def test_the_command_line_takes_a_profile_and_single_rates_and_refuses_unknown_rates(tmp_path, capsys):
    assert (
        sample_cli(["--persons", "200", "--out", str(tmp_path), "--profile", "hard", "--rate", "second_phone=1"]) == 0
    )
    assert "profile custom" in capsys.readouterr().out
    assert pd.read_parquet(tmp_path / "truth/persons.parquet")["second_phone_nsn"].notna().all()
    with pytest.raises(SystemExit):
        sample_cli(["--persons", "200", "--out", str(tmp_path), "--rate", "phone_typos=0.1"])
