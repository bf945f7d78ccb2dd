"""The true population: persons, their households, twins and namesakes.

Everything is drawn with numpy over whole arrays; strings live in object
arrays so fancy indexing copies pointers, not text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from unidecode import unidecode

from cdm_assets.sample import vocabulary as v
from cdm_assets.sample.corruption import OFF, CorruptionRates

BIRTH_FROM = np.datetime64("1940-01-01")
BIRTH_DAYS = 65 * 365


@dataclass
class Population:
    """Column arrays, one entry per person (index = person_id)."""

    person_id: np.ndarray
    country: np.ndarray
    first_name: np.ndarray
    last_name: np.ndarray
    birth_last_name: np.ndarray  # the surname before marriage where it changed, or None
    birth_date: np.ndarray  # datetime64[D]
    email: np.ndarray
    old_email: np.ndarray  # a changed email: the address an older record still has
    phone_nsn: np.ndarray  # national significant number (digits)
    second_phone_nsn: np.ndarray  # a landline (maybe the household's) or an earlier mobile, or None
    street: np.ndarray
    postcode: np.ndarray
    city: np.ndarray
    old_street: np.ndarray  # before moving
    old_postcode: np.ndarray
    old_city: np.ndarray
    household_id: np.ndarray
    household_email: np.ndarray  # shared inbox of the household, or None
    twin_of: np.ndarray  # person_id of the twin, or -1

    def __len__(self) -> int:
        return len(self.person_id)

    def frame(self) -> pd.DataFrame:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        frame = pd.DataFrame(data)
        frame["birth_date"] = frame["birth_date"].astype("datetime64[s]").dt.date
        return frame


def pick(rng: np.random.Generator, choices, size: int) -> np.ndarray:
    values = np.array(list(choices), dtype=object)
    return values[rng.integers(0, len(values), size)]


def _digits(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """`size` strings of `count` random digits."""
    numbers = rng.integers(0, 10**count, size, dtype=np.int64)
    if size == 0:  # numpy's zfill cannot take an empty array
        return np.empty(0, dtype=object)
    return np.char.zfill(numbers.astype(str), count).astype(object)


# Mobile prefixes that phonenumbers accepts as valid, with the digits that follow.
MOBILE_PREFIXES = {
    "NL": (("61", 7), ("62", 7), ("63", 7), ("64", 7), ("65", 7), ("68", 7)),
    "BE": (("47", 7), ("48", 7), ("49", 7)),
    "DE": (("170", 7), ("171", 7), ("172", 7), ("160", 7), ("151", 8), ("176", 8)),
    "GB": (("74", 8), ("75", 8), ("78", 8), ("79", 8)),
    "FR": (("61", 7), ("62", 7), ("64", 7), ("65", 7), ("75", 7), ("76", 7), ("77", 7), ("78", 7)),
}


def _mobile_numbers(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    """Valid mobile national significant numbers for each person's country."""
    return _phone_numbers(rng, country, MOBILE_PREFIXES)


# Geographic area codes that phonenumbers accepts, with the digits that follow
# (the first of them drawn from LANDLINE_LEAD where only some digits are valid).
LANDLINE_PREFIXES = {
    "NL": (("20", 7), ("30", 7), ("10", 7), ("70", 7), ("40", 7)),
    "BE": (("2", 7), ("3", 7)),
    "DE": (("30", 8), ("40", 8), ("89", 8)),
    "GB": (("20", 8),),
    "FR": (("1", 8), ("3", 8)),
}
LANDLINE_LEAD = {"BE": "2345678", "GB": "378"}


def _landline_numbers(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    """Valid geographic national significant numbers for each country (US: any valid number)."""
    return _phone_numbers(rng, country, LANDLINE_PREFIXES, LANDLINE_LEAD)


def _phone_numbers(
    rng: np.random.Generator, country: np.ndarray, plan: dict[str, tuple], leads: dict[str, str] | None = None
) -> np.ndarray:
    """Numbers from a numbering plan: per country (prefix, digits after it); US numbers by area code."""
    result = np.empty(len(country), dtype=object)
    for code in v.COUNTRIES:
        mask = np.flatnonzero(country == code)
        if not len(mask):
            continue
        if code == "US":
            exchange = rng.integers(200, 1000, len(mask)).astype(str).astype(object)
            result[mask] = pick(rng, v.US_AREA_CODES, len(mask)) + exchange + _digits(rng, len(mask), 4)
            continue
        prefixes = plan[code]
        which = rng.integers(0, len(prefixes), len(mask))
        lead = (leads or {}).get(code)
        for index, (prefix, length) in enumerate(prefixes):
            rows = mask[which == index]
            if lead:
                result[rows] = prefix + pick(rng, lead, len(rows)) + _digits(rng, len(rows), length - 1)
            else:
                result[rows] = prefix + _digits(rng, len(rows), length)
    return result


def _postcodes(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    n = len(country)
    result = np.empty(n, dtype=object)
    letters = np.array(list("ABCDEFGHJKLMNPRSTVWXZ"), dtype=object)
    for code in v.COUNTRIES:
        mask = country == code
        count = int(mask.sum())
        if not count:
            continue
        if code == "NL":
            result[mask] = (
                rng.integers(1000, 10000, count).astype(str).astype(object)
                + " "
                + letters[rng.integers(0, len(letters), count)]
                + letters[rng.integers(0, len(letters), count)]
            )
        elif code == "BE":
            result[mask] = rng.integers(1000, 10000, count).astype(str).astype(object)
        elif code == "GB":
            result[mask] = (
                letters[rng.integers(0, len(letters), count)]
                + letters[rng.integers(0, len(letters), count)]
                + rng.integers(1, 10, count).astype(str).astype(object)
                + " "
                + rng.integers(1, 10, count).astype(str).astype(object)
                + letters[rng.integers(0, len(letters), count)]
                + letters[rng.integers(0, len(letters), count)]
            )
        else:
            result[mask] = np.char.zfill(rng.integers(1000, 99999, count).astype(str), 5).astype(object)
    return result


def _addresses(rng: np.random.Generator, country: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(country)
    street, city = np.empty(n, dtype=object), np.empty(n, dtype=object)
    for code in v.COUNTRIES:
        mask = country == code
        count = int(mask.sum())
        if count:
            number = rng.integers(1, 250, count).astype(str).astype(object)
            street[mask] = pick(rng, v.STREET_WORDS[code], count) + " " + number
            city[mask] = pick(rng, v.CITIES[code], count)
    return street, _postcodes(rng, country), city


def _ascii_lower(values: np.ndarray) -> np.ndarray:
    folded = {name: "".join(ch for ch in unidecode(name).lower() if ch.isalnum() or ch == "-") for name in set(values)}
    return np.array([folded[name] for name in values], dtype=object)


def make_population(
    persons: int,
    rng: np.random.Generator,
    first_person: int = 0,
    rates: CorruptionRates = OFF,
    extra: np.random.Generator | None = None,
) -> Population:
    """`persons` people living in households, with twins and namesakes among them.

    Person and household ids start at `first_person`, so populations generated
    in parts never share an id (nor an email address built from one). The
    arrays are indexed by position: position i is person `first_person + i`.
    What `rates` adds (wider birth years, second phones, surnames changed at
    marriage) is drawn from `extra`, so `rng`'s draws are the same for every
    profile.
    """
    extra = extra if extra is not None else np.random.default_rng(0)
    household_id, head, household_size = _households(rng, persons)
    country = np.array(v.COUNTRIES, dtype=object)[rng.choice(len(v.COUNTRIES), size=persons, p=v.COUNTRY_SHARE)]
    country = country[head]  # a household lives in one country
    female = rng.random(persons) < 0.5
    first, last = _names(rng, country, female)
    last = last[head]
    birth = BIRTH_FROM + rng.integers(0, BIRTH_DAYS, persons).astype("timedelta64[D]")
    if (rates.birth_year_from, rates.birth_year_to, rates.born_before_1900) != (
        OFF.birth_year_from,
        OFF.birth_year_to,
        OFF.born_before_1900,
    ):
        birth = _birth_dates(extra, persons, rates)
    street, postcode, city = _addresses(rng, country)
    street, postcode, city = street[head], postcode[head], city[head]
    twin_of = _twins_and_namesakes(rng, head, household_size, household_id, birth, first, last)
    household_id = household_id + first_person  # at most one household per person: unique across parts
    person_id = np.arange(persons) + first_person
    email, old_email, household_email = _emails(
        rng, country, first, last, person_id, head, household_size, household_id
    )
    old_street, old_postcode, old_city = _addresses(rng, country)
    second_phone, birth_last = _second_phones_and_birth_names(extra, rates, country, female, last, head, household_size)
    return Population(
        person_id=person_id,
        country=country,
        first_name=first,
        last_name=last,
        birth_last_name=birth_last,
        birth_date=birth,
        email=email,
        old_email=old_email,
        phone_nsn=_mobile_numbers(rng, country),
        second_phone_nsn=second_phone,
        street=street,
        postcode=postcode,
        city=city,
        old_street=old_street,
        old_postcode=old_postcode,
        old_city=old_city,
        household_id=household_id,
        household_email=household_email,
        twin_of=np.where(twin_of >= 0, twin_of + first_person, -1),
    )


def _households(rng: np.random.Generator, persons: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per person: household (from 0), the household's first member (its head) and its size.
    Most people live alone here; some share a home (and an inbox, a landline)."""
    sizes = rng.choice([1, 2, 3, 4], size=persons, p=[0.78, 0.12, 0.06, 0.04])
    household_id = np.repeat(np.arange(len(sizes)), sizes)[:persons]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    head = np.repeat(starts, sizes)[:persons]
    household_size = np.repeat(sizes, sizes)[:persons]
    return household_id, head, household_size


def _names(rng: np.random.Generator, country: np.ndarray, female: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last names from each person's country's vocabulary."""
    first = np.empty(len(country), dtype=object)
    last = np.empty(len(country), dtype=object)
    for code in v.COUNTRIES:
        mask = country == code
        count = int(mask.sum())
        if not count:
            continue
        vocab = v.names(code)
        first[mask] = np.where(
            female[mask],
            vocab.female[rng.integers(0, len(vocab.female), count)],
            vocab.male[rng.integers(0, len(vocab.male), count)],
        )
        last[mask] = vocab.last[rng.integers(0, len(vocab.last), count)]
    return first, last


def _twins_and_namesakes(
    rng: np.random.Generator,
    head: np.ndarray,
    household_size: np.ndarray,
    household_id: np.ndarray,
    birth: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
) -> np.ndarray:
    """Make twins and namesakes in place; returns each twin's sibling by position (-1: none).

    Twins: the second member of some households shares the head's birth date (a few
    with names one letter apart). Namesakes: unrelated people who carry a common name
    of someone else."""
    persons = len(head)
    second = (np.arange(persons) == head + 1) & (household_size >= 2)
    twins = second & (rng.random(persons) < 0.25)
    twin_of = np.where(twins, head, -1)
    birth[twins] = birth[head[twins]]
    similar = twins & (rng.random(persons) < 0.4)
    pairs = rng.integers(0, len(v.SIMILAR_TWIN_NAMES), persons)
    for index in np.flatnonzero(similar):  # a few per thousand persons
        a, b = v.SIMILAR_TWIN_NAMES[pairs[index]]
        first[head[index]], first[index] = a, b
    namesakes = np.flatnonzero(rng.random(persons) < 0.03)
    donors = rng.integers(0, persons, len(namesakes))
    keep = household_id[namesakes] != household_id[donors]
    first[namesakes[keep]] = first[donors[keep]]
    last[namesakes[keep]] = last[donors[keep]]
    return twin_of


def _emails(
    rng: np.random.Generator,
    country: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    person_id: np.ndarray,
    head: np.ndarray,
    household_size: np.ndarray,
    household_id: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each person's own email, an older one, and the household's shared inbox (half of the
    households of two or more; None elsewhere), at the country's usual providers."""
    persons = len(country)
    domains = np.empty(persons, dtype=object)
    old_domains = np.empty(persons, dtype=object)
    for code in v.COUNTRIES:
        mask = country == code
        domains[mask] = pick(rng, v.EMAIL_DOMAINS[code], int(mask.sum()))
        old_domains[mask] = pick(rng, v.EMAIL_DOMAINS[code], int(mask.sum()))
    local = _ascii_lower(first) + "." + _ascii_lower(last) + person_id.astype(str).astype(object)
    email = local + "@" + domains
    old_email = _ascii_lower(first) + (rng.integers(10, 99, persons).astype(str).astype(object)) + "@" + old_domains
    # A mailbox has one owner: where a name with two digits is taken already, the provider
    # hands out a longer one (at a million people, thousands of Jans want jan39@).
    taken = pd.Series(old_email).duplicated().to_numpy()
    old_email[taken] = (
        _ascii_lower(first[taken]) + "." + person_id[taken].astype(str).astype(object) + "@" + old_domains[taken]
    )
    shared_inbox = (household_size >= 2) & (rng.random(persons) < 0.5)
    shared_inbox = shared_inbox[head]  # the whole household or nobody
    household_email = np.where(
        shared_inbox,
        "familie." + _ascii_lower(last) + household_id.astype(str).astype(object) + "@" + domains[head],
        None,
    )
    return email, old_email, household_email


def _birth_dates(extra: np.random.Generator, persons: int, rates: CorruptionRates) -> np.ndarray:
    """Uniform over the profile's years; a share born 1870-1899 (legacy records of the very old)."""
    start = np.datetime64(f"{rates.birth_year_from}-01-01")
    days = (np.datetime64(f"{rates.birth_year_to + 1}-01-01") - start).astype(int)
    birth = start + extra.integers(0, days, persons).astype("timedelta64[D]")
    old = extra.random(persons) < rates.born_before_1900
    old_start = np.datetime64("1870-01-01")
    birth[old] = old_start + extra.integers(0, 30 * 365, int(old.sum())).astype("timedelta64[D]")
    return birth


def _second_phones_and_birth_names(
    extra: np.random.Generator,
    rates: CorruptionRates,
    country: np.ndarray,
    female: np.ndarray,
    last: np.ndarray,
    head: np.ndarray,
    household_size: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each person's other phone number and birth surname, or None.

    In a shared home the other number is often the home's landline, the same
    for everyone living there; otherwise it is the person's own landline or an
    earlier mobile. A woman whose surname changed at marriage was born with
    another surname (drawn from her country's list, never her married one).
    """
    persons = len(country)
    none = np.full(persons, None, dtype=object)
    if not rates.active():
        return none, none.copy()
    second = none.copy()
    has_second = extra.random(persons) < rates.second_phone
    home_landline = _landline_numbers(extra, country)[head]  # one per home
    own = np.where(extra.random(persons) < 0.5, _landline_numbers(extra, country), _mobile_numbers(extra, country))
    shared = (household_size >= 2) & (extra.random(persons) < rates.household_landline)
    second[has_second] = np.where(shared, home_landline, own)[has_second]
    birth_last = none.copy()
    changed = female & (extra.random(persons) < rates.married_name_change)
    for code in v.COUNTRIES:
        rows = np.flatnonzero(changed & (country == code))
        if len(rows):
            vocab = v.names(code).last
            birth_last[rows] = vocab[extra.integers(0, len(vocab), len(rows))]
    birth_last[birth_last == last] = None
    return second, birth_last
