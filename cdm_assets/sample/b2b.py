"""B2B sample data: companies (accounts) and the people who work there (contacts).

    python -m cdm_assets.sample --b2b --accounts 500 --out data/b2b

Read by `examples/b2b/cdm.yaml`. Two account sources (the CRM, which holds
some companies twice, and billing, under other ids and legal names), two
contact sources (CRM contacts pointing at their CRM account record, and
webinar sign-ups that don't) and invoices per contact. The truth under
`truth/` names the company of every account record and the person of every
contact record. The same accounts and seed give byte-identical files.
"""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from cdm_assets.sample import vocabulary as v
from cdm_assets.sample.generator import GenerationSummary, write_csv, write_jsonl
from cdm_assets.sample.population import make_population, pick
from cdm_assets.sample.sources import iso, timestamps

SECTORS = ("Logistics", "Consulting", "Techniek", "Foods", "Bouw", "Media", "Systems", "Trading", "Energy", "Care")
LEGAL_FORMS = {"NL": "B.V.", "BE": "NV", "DE": "GmbH", "GB": "Ltd", "FR": "SARL", "US": "Inc."}
TLDS = {"NL": "nl", "BE": "be", "DE": "de", "GB": "co.uk", "FR": "fr", "US": "com"}
INDUSTRIES = ("retail", "manufacturing", "services", "public sector", "healthcare", "technology")
JOB_TITLES = ("CEO", "CFO", "Buyer", "Office manager", "IT manager", "Marketing lead", "Sales director")
# Share of CRM companies entered twice, of contacts naming an account that does not exist.
CRM_DUPLICATES = 0.06
DANGLING_ACCOUNTS = 0.02


def _some(rng: np.random.Generator, size: int, share: float) -> np.ndarray:
    """A mask picking about `share` of `size` rows."""
    return rng.random(size) < share


def _slug(values: np.ndarray) -> np.ndarray:
    """Lower-case ASCII letters and digits only, as in a domain or a mailbox name."""
    folded = (unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode() for value in values)
    return np.array(["".join(ch for ch in text.lower() if ch.isalnum()) for text in folded], dtype=object)


def _vat_numbers(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    """Plausible VAT numbers per country; US companies have none."""
    digits = rng.integers(10**8, 10**9, len(country)).astype(str).astype(object)
    vat = country + digits
    vat = np.where(country == "NL", vat + "B01", vat)
    return np.where(country == "US", None, vat)


def make_companies(accounts: int, rng: np.random.Generator) -> pd.DataFrame:
    founders = make_population(accounts, rng)  # a surname, an address and a phone number per company
    sector = pick(rng, SECTORS, accounts)
    base = founders.last_name + " " + sector
    legal = np.array([LEGAL_FORMS[c] for c in founders.country], dtype=object)
    tld = np.array([TLDS[c] for c in founders.country], dtype=object)
    company = np.arange(accounts)
    return pd.DataFrame(
        {
            "company": company,
            "country": founders.country,
            "name": base + " " + legal,
            "domain": _slug(founders.last_name) + "-" + _slug(sector) + company.astype(str).astype(object) + "." + tld,
            "vat": _vat_numbers(rng, founders.country),
            "phone": "+" + np.array([v.CALLING_CODES[c] for c in founders.country], dtype=object) + founders.phone_nsn,
            "street": founders.street,
            "postcode": founders.postcode,
            "city": founders.city,
            "industry": pick(rng, INDUSTRIES, accounts),
        }
    )


def crm_accounts(companies: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Every company once, some twice: a second record under a new id, sometimes without VAT number."""
    twice = companies[_some(rng, len(companies), CRM_DUPLICATES)]
    rows = pd.concat([companies, twice], ignore_index=True)
    rows["account_id"] = [f"ACC-{i + 1:06d}" for i in range(len(rows))]
    second = np.arange(len(rows)) >= len(companies)
    rows.loc[second & _some(rng, len(rows), 0.3), "vat"] = None
    rows.loc[second, "name"] = rows.loc[second, "name"].str.upper()
    rows["website"] = np.where(_some(rng, len(rows), 0.5), "https://www." + rows["domain"] + "/", rows["domain"])
    rows["created_at"] = iso(timestamps(rng, len(rows)))
    return rows


def billing_accounts(companies: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Three in four companies, under billing ids and their legal name; some without VAT number."""
    rows = companies[_some(rng, len(companies), 0.75)].reset_index(drop=True)
    rows["billing_id"] = [f"BIL{i + 1:07d}" for i in range(len(rows))]
    rows.loc[_some(rng, len(rows), 0.1), "vat"] = None
    rows["legal_name"] = rows["name"].str.replace(r"\s+", " ", regex=True)
    rows["updated_at"] = iso(timestamps(rng, len(rows)))
    return rows


def contacts(companies: pd.DataFrame, crm: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One to four people per company, each with a work email at the company's domain."""
    per_company = rng.choice([1, 2, 3, 4], size=len(companies), p=[0.4, 0.3, 0.2, 0.1])
    company = np.repeat(companies["company"].to_numpy(), per_company)
    people = make_population(len(company), rng)
    domain = companies["domain"].to_numpy()[company]
    local = _slug(people.first_name) + "." + _slug(people.last_name)
    # The CRM record of each contact's company; for a company held twice, either record.
    records = crm.groupby("company")["account_id"].agg(list)
    account_ref = np.array([records[c][rng.integers(0, len(records[c]))] for c in company], dtype=object)
    dangling = _some(rng, len(company), DANGLING_ACCOUNTS)
    account_ref[dangling] = [f"ACC-9{i:05d}" for i in range(int(dangling.sum()))]
    return pd.DataFrame(
        {
            "person": np.arange(len(company)),
            "company": company,
            "first_name": people.first_name,
            "last_name": people.last_name,
            "email": local + "@" + domain,
            "phone": "+" + np.array([v.CALLING_CODES[c] for c in people.country], dtype=object) + people.phone_nsn,
            "account_ref": account_ref,
            "job_title": pick(rng, JOB_TITLES, len(company)),
        }
    )


CRM_ACCOUNT_COLUMNS = [
    "account_id", "name", "vat", "website", "phone", "street", "postcode", "city", "country", "industry", "created_at",
]  # fmt: skip
BILLING_COLUMNS = ["billing_id", "legal_name", "vat", "phone", "street", "postcode", "city", "country", "updated_at"]
CONTACT_COLUMNS = ["contact_id", "account_ref", "first_name", "last_name", "email", "phone", "job_title"]


def generate_b2b(accounts: int, seed: int, out: Path) -> GenerationSummary:
    """Write the B2B landing files under `out/landing` and the truth under `out/truth`."""
    started = time.perf_counter()
    out = Path(out)
    rng = np.random.default_rng(seed)
    companies = make_companies(accounts, rng)
    crm = crm_accounts(companies, rng)
    billing = billing_accounts(companies, rng)
    people = contacts(companies, crm, rng)
    crm_contacts = people.assign(contact_id=[f"CON-{i + 1:06d}" for i in range(len(people))])
    webinar = _webinar_leads(people, rng)
    invoices = _invoices(companies, crm_contacts, accounts, seed, rng)
    landing, truth = out / "landing", out / "truth"
    files = {
        "crm_accounts": (crm[CRM_ACCOUNT_COLUMNS], landing / "crm_accounts" / "accounts.csv"),
        "billing_accounts": (billing[BILLING_COLUMNS], landing / "billing_accounts" / "accounts.csv"),
        "crm_contacts": (crm_contacts[CONTACT_COLUMNS], landing / "crm_contacts" / "contacts.csv"),
        "invoices": (invoices, landing / "invoices" / "invoices.csv"),
    }
    summary = GenerationSummary(persons=len(people), seed=seed, out=out)
    for name, (frame, path) in files.items():
        write_csv(frame, path)
        summary.rows[name] = len(frame)
    write_jsonl(webinar[["lead_id", "full_name", "email", "registered_at"]], landing / "webinar_leads" / "leads.jsonl")
    summary.rows["webinar_leads"] = len(webinar)
    _write_truth(truth, crm, billing, crm_contacts, webinar)
    summary.seconds = time.perf_counter() - started
    return summary


def _webinar_leads(people: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Four in ten contacts sign up for a webinar: one full name, an email in capitals one time in five."""
    webinar = people[_some(rng, len(people), 0.4)].reset_index(drop=True)
    return webinar.assign(
        lead_id=[f"L{i + 1:06d}" for i in range(len(webinar))],
        full_name=webinar["first_name"] + " " + webinar["last_name"],
        email=webinar["email"].str.upper().where(_some(rng, len(webinar), 0.2), webinar["email"]),
        registered_at=iso(timestamps(rng, len(webinar))),
    )


def _invoices(
    companies: pd.DataFrame, crm_contacts: pd.DataFrame, accounts: int, seed: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Three invoices per account on average, each billed to a CRM contact; one in twenty a credit."""
    buyers = crm_contacts.sample(n=3 * accounts, replace=True, random_state=seed)
    return pd.DataFrame(
        {
            "invoice_id": [f"INV-{i + 1:07d}" for i in range(len(buyers))],
            "contact_id": buyers["contact_id"].to_numpy(),
            "amount": np.round(rng.gamma(2.0, 400.0, len(buyers)), 2),
            "currency": np.where(companies["country"].to_numpy()[buyers["company"].to_numpy()] == "GB", "GBP", "EUR"),
            "kind": np.where(rng.random(len(buyers)) < 0.05, "credit", "invoice"),
            "invoiced_at": iso(timestamps(rng, len(buyers))),
        }
    )


def _write_truth(
    truth: Path, crm: pd.DataFrame, billing: pd.DataFrame, crm_contacts: pd.DataFrame, webinar: pd.DataFrame
) -> None:
    """Which company each account record is, and which person (and company) each contact record is."""
    truth.mkdir(parents=True, exist_ok=True)
    pd.concat(
        [
            pd.DataFrame({"source": "crm_accounts", "record_id": crm["account_id"], "company": crm["company"]}),
            pd.DataFrame(
                {"source": "billing_accounts", "record_id": billing["billing_id"], "company": billing["company"]}
            ),
        ]
    ).to_parquet(truth / "accounts.parquet", index=False)
    contacts_truth = [
        pd.DataFrame(
            {"source": source, "record_id": frame[id_column], "person": frame["person"], "company": frame["company"]}
        )
        for source, frame, id_column in (
            ("crm_contacts", crm_contacts, "contact_id"),
            ("webinar_leads", webinar, "lead_id"),
        )
    ]
    pd.concat(contacts_truth).to_parquet(truth / "contacts.parquet", index=False)
