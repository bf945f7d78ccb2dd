"""How much the sample's records differ from the truth: corruption rates and the
corruptions they drive.

Two profiles. `default` is the generator as it has always been (one phone per
person, birth dates 1940-2004, no date typos, no name changes at marriage): its
files stay byte-identical for a seed, so earlier benchmark figures remain
comparable. `hard` adds what customer data from several systems shows and our
defaults were never measured against. Its rates, and where they come from:

- FEBRL's data set generator (Christen 2005, "Probabilistic data generation
  for deduplication and data linkage", IDEAL; `dsgen/generate.py` of Febrl
  0.4.2, of the generator family behind FEBRL1-4 and RLdata) draws birth dates from
  1900-1999; a corrupted birth date is a digit substitution 50 % of the time,
  a transposition 30 %, missing 10 %. Its name fields are chosen for a
  modification 10-15 % of the time per modification of a record, and it
  swaps given name and surname with probability 0.05.
- The typo literature it summarises (Damerau 1964; Pollock and Zamora 1984):
  80-95 % of misspellings hold one error, hence one typo per corrupted value.
- The ONS synthetic linkage data (`ONSBigData/synthetic4linkage`, census vs.
  survey) plans to perturb 15 % of birth days, 13 % of birth months and 13 % of birth
  years between two records of one person: an upper bound for date typos,
  which our rates stay well below.
- Issue #12's multi-source customer data: 19 % of same-person record pairs
  that both carry a phone carry different phones. `second_phone` x
  `second_phone_use` (0.35 x 0.5, so ~18 % of such pairs) aims at it.
- Splink's synthetic person data (`splink_synthetic_data`, behind
  `historical_50k`) corrupts names into alternative forms (nicknames,
  variants), keyboard typos and dropped name parts, and birth dates by keypad
  typos that spare the century (as our digit typo does), shifts by days and
  year-only dates; it gives no single rate we could copy.
- Our assumptions, kept small and stated per field: initials for first names,
  day/month swaps (where day-first and month-first date orders meet), name
  change at marriage, moves (about one in ten people moves house a year in
  Western Europe, and records span years) and changed email addresses.

A rate is a probability per record (per value) unless its docstring says per
person. Every corruption of the `hard` profile is drawn from its own random
stream, so the `default` profile's draws, and files, are unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields, replace

import numpy as np

from cdm_assets.sample import noise
from cdm_assets.sample.vocabulary import NICKNAMES


@dataclass(frozen=True)
class CorruptionRates:
    """Rates of the corruptions the `hard` profile adds; 0 switches one off.

    The values are the `hard` profile's (see the module docstring for sources).
    """

    birth_year_from: int = 1900  # FEBRL: birth dates 1900-1999; ours run to 2005 (adult customers)
    birth_year_to: int = 2005
    born_before_1900: float = 0.01  # per person: legacy records of the very old (1870-1899); assumption
    second_phone: float = 0.35  # per person: a landline or an earlier mobile besides the current mobile (issue #12)
    second_phone_use: float = 0.5  # a record of such a person carries the other number
    household_landline: float = 0.5  # a second number in a shared home is the home's landline, shared by all
    changed_email_use: float = 0.12  # a record carries the person's other (older) address; assumption
    moved_use: float = 0.12  # a record carries the previous address; ~1 in 10 move a year
    married_name_change: float = 0.3  # per woman: a surname taken at marriage; assumption
    birth_name_use: float = 0.4  # a record of such a woman carries her birth surname
    initials: float = 0.04  # a first name written as its initial ("J." or "J"); assumption
    nickname: float = 0.06  # a first name written as its nickname, beyond the sources' own habits
    name_typo: float = 0.05  # one more typo per name (FEBRL: names 10-15 % of modifications, one error each)
    name_swap: float = 0.02  # first and last name exchanged (FEBRL: 0.05 per duplicate)
    missing: float = 0.08  # a further share of each field left empty (FEBRL: dob missing in 10 % of its corruptions)
    date_day_month_swap: float = 0.02  # birth day and month exchanged, where both are valid months; assumption
    date_year_off: float = 0.015  # birth year one too high or too low
    date_digit_typo: float = 0.02  # one digit replaced, never the century (FEBRL: substitution 50 % of date errors)

    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if not f.name.startswith("birth_year"))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


# The `default` profile: the generator's data as it always was.
OFF = replace(
    CorruptionRates(),
    **{name: 0 for name in CorruptionRates.names() if not name.startswith("birth_year")},
    birth_year_from=1940,
    birth_year_to=2004,
)
PROFILES = {"default": OFF, "hard": CorruptionRates()}


def with_overrides(rates: CorruptionRates, overrides: dict[str, float]) -> CorruptionRates:
    """`rates` with some values replaced; names are checked."""
    unknown = sorted(set(overrides) - set(CorruptionRates.names()))
    if unknown:
        raise ValueError(
            f"unknown corruption rate(s): {', '.join(unknown)}; known: {', '.join(CorruptionRates.names())}"
        )
    typed = {k: int(v) if k.startswith("birth_year") else float(v) for k, v in overrides.items()}
    return replace(rates, **typed)


class Corruptor:
    """Applies the rates to one source's values, drawing from its own stream.

    With every rate 0 it returns its inputs untouched and draws nothing.
    """

    def __init__(self, rates: CorruptionRates, rng: np.random.Generator):
        self.rates, self.rng = rates, rng

    def _chosen(self, size: int, share: float) -> np.ndarray:
        return self.rng.random(size) < share if share else np.zeros(size, dtype=bool)

    def phones(self, nsn: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Each record's number: the current one, or the person's other one."""
        other = (second != None) & self._chosen(len(nsn), self.rates.second_phone_use)  # noqa: E711
        return np.where(other, second, nsn)

    def last_names(self, married: np.ndarray, birth_name: np.ndarray) -> np.ndarray:
        """A married woman's record carries her birth surname now and then."""
        use = (birth_name != None) & self._chosen(len(married), self.rates.birth_name_use)  # noqa: E711
        return np.where(use, birth_name, married)

    def emails(self, email: np.ndarray, other: np.ndarray) -> np.ndarray:
        use = (email != None) & self._chosen(len(email), self.rates.changed_email_use)  # noqa: E711
        return np.where(use, other, email)

    def moved(self, size: int) -> np.ndarray:
        """Which records carry the previous address."""
        return self._chosen(size, self.rates.moved_use)

    def first_names(self, values: np.ndarray) -> np.ndarray:
        """Nicknames, initials and typos on written first names."""
        r = self.rates
        values = self._apply(values, r.nickname, lambda name, _: noise_nickname(name))
        values = self._apply(
            values, r.initials, lambda name, roll: name.strip()[:1].upper() + ("." if roll < 0.5 else "")
        )
        return self._apply(values, r.name_typo, noise.typo)

    def names(self, values: np.ndarray) -> np.ndarray:
        return self._apply(values, self.rates.name_typo, noise.typo)

    def swap_names(self, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        swapped = self._chosen(len(first), self.rates.name_swap)
        return np.where(swapped, last, first), np.where(swapped, first, last)

    def blank(self, values: np.ndarray) -> np.ndarray:
        if not self.rates.missing:
            return values
        result = values.copy()
        result[self._chosen(len(values), self.rates.missing)] = None
        return result

    def birth_dates(self, dates: np.ndarray) -> np.ndarray:
        """Birth dates (datetime64[D]) with day/month swaps, years off by one and digit typos."""
        r = self.rates
        if not (r.date_day_month_swap or r.date_year_off or r.date_digit_typo):
            return dates
        result = dates.copy()
        rolls = self.rng.random((len(dates), 3))
        kinds = (
            (self._chosen(len(dates), r.date_day_month_swap), _swap_day_month),
            (self._chosen(len(dates), r.date_year_off), _year_off),
            (self._chosen(len(dates), r.date_digit_typo), _digit_typo),
        )
        for chosen, change in kinds:
            for index in np.flatnonzero(chosen & ~np.isnat(result)):
                day = result[index].astype(dt.date)
                changed = change(day, rolls[index])
                if changed is not None:
                    result[index] = np.datetime64(changed, "D")
        return result

    def _apply(self, values: np.ndarray, share: float, change) -> np.ndarray:
        if not share:
            return values
        return noise.apply(values, self.rng, share, change)


def noise_nickname(name: str) -> str:
    return NICKNAMES.get(name.strip(), name)


def _swap_day_month(day: dt.date, _rolls) -> dt.date | None:
    if day.day > 12 or day.day == day.month:
        return None
    return day.replace(month=day.day, day=day.month)


def _year_off(day: dt.date, rolls) -> dt.date | None:
    try:
        return day.replace(year=day.year + (1 if rolls[0] < 0.5 else -1))
    except ValueError:  # 29 February
        return None


def _digit_typo(day: dt.date, rolls) -> dt.date | None:
    """One digit of YYYYMMDD replaced (not the century); None when no valid date results."""
    digits = day.strftime("%Y%m%d")
    position = 2 + int(rolls[0] * 6)
    new = str((int(digits[position]) + 1 + int(rolls[1] * 9)) % 10)
    try:
        return dt.datetime.strptime(digits[:position] + new + digits[position + 1 :], "%Y%m%d").date()
    except ValueError:
        return None
