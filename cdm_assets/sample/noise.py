"""Corruptions real customer data has: typos, nicknames, case, spaces, accents,
missing values and phone formats. Each applies to a random share of a column;
only the chosen few values are touched one by one."""

from __future__ import annotations

import numpy as np
from unidecode import unidecode

from cdm_assets.sample import vocabulary as v


def chosen(rng: np.random.Generator, size: int, share: float) -> np.ndarray:
    return np.flatnonzero(rng.random(size) < share)


def typo(value: str, roll: float) -> str:
    if len(value) < 4:
        return value
    position = 1 + int(roll * (len(value) - 2))
    kind = int(roll * 1000) % 3
    if kind == 0:  # swap two neighbours
        return value[: position - 1] + value[position] + value[position - 1] + value[position + 1 :]
    if kind == 1:  # drop one
        return value[:position] + value[position + 1 :]
    return value[:position] + value[position] * 2 + value[position + 1 :]  # double one


def apply(values: np.ndarray, rng: np.random.Generator, share: float, change) -> np.ndarray:
    """A copy of `values` with `change(value, roll)` applied to a random `share`."""
    result = values.copy()
    rolls = rng.random(len(values))
    for index in chosen(rng, len(values), share):
        if result[index] is not None:
            result[index] = change(result[index], rolls[index])
    return result


def blank(values: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    result = values.copy()
    result[rng.random(len(values)) < share] = None
    return result


def names(
    values: np.ndarray, rng: np.random.Generator, *, typos=0.03, nicknames=0.0, case=0.04, accents=0.1
) -> np.ndarray:
    result = apply(values, rng, nicknames, lambda name, _: v.NICKNAMES.get(name, name))
    result = apply(result, rng, typos, typo)
    result = apply(result, rng, accents, lambda name, _: unidecode(name))
    return apply(
        result,
        rng,
        case,
        lambda name, roll: name.upper() if roll < 0.4 else (name.lower() if roll < 0.8 else f"  {name} "),
    )


def emails(values: np.ndarray, rng: np.random.Generator, case=0.05) -> np.ndarray:
    return apply(values, rng, case, lambda email, roll: email.upper() if roll < 0.5 else f" {email}")


def phones(nsn: np.ndarray, country: np.ndarray, rng: np.random.Generator, style: str) -> np.ndarray:
    """Phone numbers written as people write them.

    `style`: "any" (international or national), "international_unless_nl"
    (a source whose phone region is NL), "national" (no country code at all).
    """
    result = np.empty(len(nsn), dtype=object)
    roll = rng.random(len(nsn))
    for code in v.COUNTRIES:
        mask = country == code
        if not mask.any():
            continue
        digits = nsn[mask]
        cc = v.CALLING_CODES[code]
        trunk = "1" if code == "US" else "0"
        international = np.array(
            [f"+{cc} {d[:1]} {d[1:]}" if code != "US" else f"+1 ({d[:3]}) {d[3:6]}-{d[6:]}" for d in digits],
            dtype=object,
        )
        compact = np.array([f"00{cc}{d}" for d in digits], dtype=object)
        national = np.array(
            [f"{trunk}{d}" if code != "US" else f"({d[:3]}) {d[3:6]}-{d[6:]}" for d in digits], dtype=object
        )
        dashed = np.array(
            [f"{trunk}{d[:1]}-{d[1:]}" if code != "US" else f"{d[:3]}-{d[3:6]}-{d[6:]}" for d in digits], dtype=object
        )
        r = roll[mask]
        if style == "national":
            chosen_format = np.where(r < 0.5, national, digits)
        elif style == "international_unless_nl" and code != "NL":
            chosen_format = np.where(r < 0.7, international, compact)
        else:
            chosen_format = np.select([r < 0.35, r < 0.5, r < 0.8], [international, compact, national], dashed)
        result[mask] = chosen_format
    return result
