"""Render the population as the customer sources, transactions and events."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdm_assets.sample import noise
from cdm_assets.sample import vocabulary as v
from cdm_assets.sample.corruption import OFF, Corruptor
from cdm_assets.sample.population import Population, pick

EPOCH = np.datetime64("2022-01-01T00:00:00")
SPAN_SECONDS = 3 * 365 * 24 * 3600


def members(population: Population, rng: np.random.Generator, share, duplicates: float = 0.0) -> np.ndarray:
    """Person ids included in a source (some twice: within-source duplicates)."""
    included = np.flatnonzero(rng.random(len(population)) < share)
    twice = included[rng.random(len(included)) < duplicates]
    return np.sort(np.concatenate([included, twice]), kind="stable")


def timestamps(rng: np.random.Generator, size: int) -> np.ndarray:
    return EPOCH + rng.integers(0, SPAN_SECONDS, size).astype("timedelta64[s]")


def iso(values: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(values, unit="s").astype(object)


def numbered(prefix: str, letter: str, digits: int, count: int, first: int = 1) -> np.ndarray:
    """Ids `<prefix><letter>0000001`, ...: a part's `prefix` keeps them apart from other parts' ids."""
    ids = (f"{prefix}{letter}{i:0{digits}d}" for i in range(first, first + count))
    return np.fromiter(ids, dtype=object, count=count)


def _email(p: Population, ids: np.ndarray, rng: np.random.Generator, old_share: float, c: Corruptor) -> np.ndarray:
    email = p.email[ids].copy()
    household = p.household_email[ids]
    uses_household = (household != None) & (rng.random(len(ids)) < 0.6)  # noqa: E711 (object array)
    email[uses_household] = household[uses_household]
    old = rng.random(len(ids)) < old_share
    email[old] = p.old_email[ids][old]
    placeholder = rng.random(len(ids)) < 0.004
    email[placeholder] = pick(rng, v.PLACEHOLDER_EMAILS, int(placeholder.sum()))
    email = noise.blank(noise.emails(email, rng), rng, 0.05)
    return c.blank(c.emails(email, p.old_email[ids]))


def _phone(p: Population, ids: np.ndarray, rng: np.random.Generator, style: str, c: Corruptor) -> np.ndarray:
    phone = noise.phones(c.phones(p.phone_nsn[ids], p.second_phone_nsn[ids]), p.country[ids], rng, style)
    placeholder = rng.random(len(ids)) < 0.003
    phone[placeholder] = pick(rng, v.PLACEHOLDER_PHONES, int(placeholder.sum()))
    return c.blank(noise.blank(phone, rng, 0.12))


def _address(p: Population, ids: np.ndarray, rng: np.random.Generator, moved_share: float, c: Corruptor):
    moved = rng.random(len(ids)) < moved_share  # an older record still has the previous address
    moved |= c.moved(len(ids))
    street = np.where(moved, p.old_street[ids], p.street[ids])
    postcode = np.where(moved, p.old_postcode[ids], p.postcode[ids])
    city = np.where(moved, p.old_city[ids], p.city[ids])
    street, postcode, city = (
        noise.blank(street, rng, 0.08),
        noise.blank(postcode, rng, 0.08),
        noise.blank(city, rng, 0.08),
    )
    return c.blank(street), c.blank(postcode), c.blank(city)


def _last_names(p: Population, ids: np.ndarray, c: Corruptor) -> np.ndarray:
    """The surname a record starts from: a married woman's birth surname now and then."""
    return c.last_names(p.last_name[ids], p.birth_last_name[ids])


def _birth_dates(p: Population, ids: np.ndarray, c: Corruptor) -> np.ndarray:
    return c.birth_dates(p.birth_date[ids])


def _swap_some(first: np.ndarray, last: np.ndarray, rng: np.random.Generator, share: float):
    swapped = rng.random(len(first)) < share
    return np.where(swapped, last, first), np.where(swapped, first, last)


def crm(
    p: Population, rng: np.random.Generator, prefix: str = "", c: Corruptor = Corruptor(OFF, None)
) -> tuple[pd.DataFrame, np.ndarray]:
    ids = members(p, rng, 0.6, duplicates=0.03)
    first, last = _swap_some(p.first_name[ids], _last_names(p, ids, c), rng, 0.01)
    street, postcode, city = _address(p, ids, rng, 0.06, c)
    country = p.country[ids].copy()
    spelled = rng.random(len(ids)) < 0.1
    names = np.array(
        [v.COUNTRY_NAMES[c][int(r * 2) % 2] for c, r in zip(country[spelled], rng.random(int(spelled.sum())))],
        dtype=object,
    )
    country[spelled] = names
    first = c.blank(c.first_names(noise.names(first, rng, nicknames=0.05)))
    last = c.blank(c.names(noise.names(last, rng)))
    first, last = c.swap_names(first, last)
    frame = pd.DataFrame(
        {
            "crm_id": numbered(prefix, "C", 7, len(ids)),
            "first_name": first,
            "last_name": last,
            "email": _email(p, ids, rng, 0.08, c),
            "phone": _phone(p, ids, rng, "any", c),
            "birth_date": c.blank(
                noise.blank(np.datetime_as_string(_birth_dates(p, ids, c), unit="D").astype(object), rng, 0.1)
            ),
            "street": street,
            "zip": postcode,
            "city": city,
            "country": noise.blank(country, rng, 0.05),
            "created_at": iso(timestamps(rng, len(ids))),
        }
    )
    return frame, ids


def webshop(
    p: Population, rng: np.random.Generator, prefix: str = "", c: Corruptor = Corruptor(OFF, None)
) -> tuple[pd.DataFrame, np.ndarray]:
    ids = members(p, rng, 0.5, duplicates=0.03)
    first = c.first_names(noise.names(p.first_name[ids], rng, nicknames=0.08))
    last = c.names(noise.names(_last_names(p, ids, c), rng))
    first, last = c.swap_names(first, last)
    comma = rng.random(len(ids)) < 0.1
    full = np.where(comma, last + ", " + first, first + " " + last)
    frame = pd.DataFrame(
        {
            "account_id": numbered(prefix, "W", 7, len(ids)),
            "full_name": c.blank(noise.blank(full, rng, 0.02)),
            "email_address": _email(p, ids, rng, 0.05, c),
            "mobile": _phone(p, ids, rng, "international_unless_nl", c),
            "created_at": iso(timestamps(rng, len(ids))),
            "loyalty_opt_in": pick(rng, ("yes", "no"), len(ids)),
        }
    )
    return frame, ids


def loyalty(
    p: Population, rng: np.random.Generator, prefix: str = "", c: Corruptor = Corruptor(OFF, None)
) -> tuple[pd.DataFrame, np.ndarray]:
    share = np.where(np.isin(p.country, ["NL", "BE"]), 0.55, 0.08)
    ids = np.flatnonzero(rng.random(len(p)) < share)
    street, postcode, city = _address(p, ids, rng, 0.04, c)
    birth = pd.to_datetime(_birth_dates(p, ids, c)).strftime("%d/%m/%Y").to_numpy(dtype=object)
    first = c.blank(c.first_names(noise.names(p.first_name[ids], rng, nicknames=0.05)))
    last = c.blank(c.names(noise.names(_last_names(p, ids, c), rng)))
    first, last = c.swap_names(first, last)
    frame = pd.DataFrame(
        {
            "kaartnummer": numbered(prefix, "L", 8, len(ids)),
            "voornaam": first,
            "achternaam": last,
            "geboortedatum": c.blank(noise.blank(birth, rng, 0.05)),
            "telefoon": _phone(p, ids, rng, "international_unless_nl", c),
            "postcode": postcode,
            "straat": street,
            "woonplaats": city,
            "e_mail": _email(p, ids, rng, 0.05, c),
        }
    )
    return frame, ids


def newsletter(
    p: Population, rng: np.random.Generator, prefix: str = "", c: Corruptor = Corruptor(OFF, None)
) -> tuple[pd.DataFrame, np.ndarray]:
    ids = members(p, rng, 0.3)
    email = _email(p, ids, rng, 0.1, c)
    frame = pd.DataFrame(
        {
            "subscriber_id": numbered(prefix, "N", 7, len(ids)),
            "email": email,
            "first_name": c.first_names(noise.blank(noise.names(p.first_name[ids], rng, nicknames=0.1), rng, 0.2)),
            "subscribed_at": iso(timestamps(rng, len(ids))),
        }
    )
    keep = frame["email"].notna().to_numpy()  # a newsletter without an address is no subscriber
    return frame[keep].reset_index(drop=True), ids[keep]


def support(
    p: Population, rng: np.random.Generator, prefix: str = "", c: Corruptor = Corruptor(OFF, None)
) -> tuple[pd.DataFrame, np.ndarray]:
    ids = members(p, rng, 0.2)
    last = c.names(noise.names(_last_names(p, ids, c), rng))
    name = last + ", " + c.first_names(noise.names(p.first_name[ids], rng, nicknames=0.05))
    frame = pd.DataFrame(
        {
            "contact_id": numbered(prefix, "S", 7, len(ids)),
            "name": name,
            "email": _email(p, ids, rng, 0.05, c),
            "phone": _phone(p, ids, rng, "national", c),
            "last_ticket_at": iso(timestamps(rng, len(ids))),
        }
    )
    return frame, ids


def _amounts(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.round(rng.lognormal(3.5, 0.8, size), 2)


def webshop_orders(
    country: np.ndarray, account_ids: np.ndarray, account_people: np.ndarray, rng: np.random.Generator, prefix: str = ""
):
    """Orders and returns of webshop accounts; `country` (by person) gives the currency."""
    counts = rng.poisson(2.0, len(account_ids))
    rows = np.repeat(np.arange(len(account_ids)), counts)
    n = len(rows)
    people = account_people[rows]
    kind = np.where(rng.random(n) < 0.08, "return", "order").astype(object)
    frame = pd.DataFrame(
        {
            "order_id": numbered(prefix, "O", 8, n),
            "account_id": account_ids[rows],
            "amount": _amounts(rng, n),
            "currency": np.array([v.CURRENCIES[c] for c in country[people]], dtype=object),
            "kind": kind,
            "ts": iso(timestamps(rng, n)),
        }
    )
    return _with_bad_rows(frame, people, rng, "account_id", "W9999999")


def store_sales(
    country: np.ndarray, customers: dict[str, tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, prefix: str = ""
):
    """Sales at the till, each referring to a record of a customer source.

    `customers`: source name: (record ids, their persons); `country` (by person) gives the currency.
    """
    parts = []
    for source, (ids, people) in customers.items():
        counts = rng.poisson(0.8, len(ids))
        rows = np.repeat(np.arange(len(ids)), counts)
        parts.append((source, ids[rows], people[rows]))
    source = np.concatenate([np.full(len(r), s, dtype=object) for s, r, _ in parts])
    refs = np.concatenate([r for _, r, _ in parts])
    people = np.concatenate([pp for _, _, pp in parts])
    order = rng.permutation(len(refs))
    source, refs, people = source[order], refs[order], people[order]
    n = len(refs)
    frame = pd.DataFrame(
        {
            "sale_id": numbered(prefix, "S", 8, n),
            "customer_source": source,
            "customer_ref": refs,
            "amount": np.char.mod("%.2f", _amounts(rng, n)).astype(object),
            "currency": np.array([v.CURRENCIES[c] for c in country[people]], dtype=object),
            "type": np.where(rng.random(n) < 0.06, "return", "order").astype(object),
            "ts": iso(timestamps(rng, n)),
        }
    )
    return _with_bad_rows(frame, people, rng, "customer_ref", "C9999999")


def _with_bad_rows(frame: pd.DataFrame, people: np.ndarray, rng: np.random.Generator, ref_column: str, orphan_ref: str):
    """Inject a few rows the transactions mart must quarantine, and orphans it must keep."""
    n = len(frame)
    defect = np.full(n, None, dtype=object)
    person = people.astype(float)
    if n >= 10:
        count = max(1, n // 2000)
        picks = rng.choice(n, size=min(n, 4 * count), replace=False)
        negative, bad_ts, bad_currency, orphan = np.array_split(picks, 4)
        amount = frame["amount"].to_numpy().copy()
        if amount.dtype == object:
            amount[negative] = np.char.add("-", amount[negative].astype(str)).astype(object)
        else:
            amount[negative] = -amount[negative]
        frame["amount"] = amount
        frame.loc[bad_ts, "ts"] = "not-a-date"
        frame.loc[bad_currency, "currency"] = "XYZ"
        frame.loc[orphan, ref_column] = orphan_ref
        defect[negative], defect[bad_ts], defect[bad_currency], defect[orphan] = (
            "negative amount",
            "unparseable timestamp",
            "unknown currency",
            "orphan",
        )
        person[orphan] = np.nan
    return frame, person, defect


def clickstream(
    email: np.ndarray, account_ids: np.ndarray, account_people: np.ndarray, rng: np.random.Generator, prefix: str = ""
):
    """Cookies of account holders (logging in at some point, or never) and of strangers.

    `email` (by person) is what a login by email address carries.
    """
    first_account = pd.Series(np.arange(len(account_ids))).groupby(account_people).first()
    holder_people = first_account.index.to_numpy()
    cookies_per = rng.integers(1, 3, len(holder_people))
    cookie_person = np.repeat(holder_people, cookies_per)
    cookie_account = np.repeat(first_account.to_numpy(), cookies_per)
    strangers = max(1, len(email) // 10)
    n_cookies = len(cookie_person) + strangers
    cookie_person = np.concatenate([cookie_person, np.full(strangers, -1)])
    cookie_account = np.concatenate([cookie_account, np.full(strangers, -1)])
    logs_in = (cookie_person >= 0) & (rng.random(n_cookies) < 0.7)

    events_per = 1 + rng.poisson(2.2, n_cookies)
    cookie = np.repeat(np.arange(n_cookies), events_per)
    position = np.arange(len(cookie)) - np.repeat(np.cumsum(events_per) - events_per, events_per)
    login_at = rng.integers(0, events_per)[cookie]
    n = len(cookie)
    start = timestamps(rng, n_cookies)[cookie]
    ts = start + (position * rng.integers(20, 600, n)).astype("timedelta64[s]")
    is_login = logs_in[cookie] & (position == login_at)
    after = logs_in[cookie] & (position > login_at) & (rng.random(n) < 0.5)
    known = is_login | after
    person = cookie_person[cookie]
    user = np.full(n, None, dtype=object)
    by_email = known & (rng.random(n) < 0.2)
    user[known & ~by_email] = account_ids[cookie_account[cookie][known & ~by_email]]
    user[by_email] = email[person[by_email]]
    name = pick(rng, ("page_view", "page_view", "product_view", "add_to_cart", "search", "purchase"), n)
    name[is_login] = "login"
    frame = pd.DataFrame(
        {
            "event_id": numbered(prefix, "E", 9, n),
            "anon_id": numbered(prefix, "ck_", 9, n_cookies, first=0)[cookie],  # one string per cookie, not per event
            "user_id": user,
            "name": name,
            "ts": iso(ts),
        }
    )
    truth = pd.DataFrame(
        {
            "event_id": frame["event_id"],
            "anon_id": frame["anon_id"],
            "person_id": np.where(person >= 0, person, np.nan),
            "identifiable": logs_in[cookie],
        }
    )
    return frame, truth
