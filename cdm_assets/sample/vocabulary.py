"""Names, streets, cities and phone formats per country, read once from Faker's lists."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

import numpy as np

COUNTRIES = ("NL", "BE", "DE", "GB", "FR", "US")
COUNTRY_SHARE = (0.45, 0.15, 0.15, 0.10, 0.10, 0.05)
LOCALES = {"NL": "nl_NL", "BE": "nl_BE", "DE": "de_DE", "GB": "en_GB", "FR": "fr_FR", "US": "en_US"}
COUNTRY_NAMES = {
    "NL": ("Netherlands", "Nederland"),
    "BE": ("Belgium", "België"),
    "DE": ("Germany", "Deutschland"),
    "GB": ("United Kingdom", "UK"),
    "FR": ("France", "France"),
    "US": ("United States", "USA"),
}
CALLING_CODES = {"NL": "31", "BE": "32", "DE": "49", "GB": "44", "FR": "33", "US": "1"}
CURRENCIES = {"NL": "EUR", "BE": "EUR", "DE": "EUR", "GB": "GBP", "FR": "EUR", "US": "USD"}
EMAIL_DOMAINS = {
    "NL": ("gmail.com", "hotmail.nl", "ziggo.nl", "kpnmail.nl", "outlook.com"),
    "BE": ("gmail.com", "telenet.be", "skynet.be", "hotmail.be"),
    "DE": ("gmail.com", "web.de", "gmx.de", "t-online.de"),
    "GB": ("gmail.com", "btinternet.com", "yahoo.co.uk", "hotmail.co.uk"),
    "FR": ("gmail.com", "orange.fr", "free.fr", "laposte.net"),
    "US": ("gmail.com", "yahoo.com", "outlook.com", "aol.com"),
}
STREET_WORDS = {
    "NL": (
        "Dorpsstraat",
        "Kerkstraat",
        "Molenweg",
        "Schoolstraat",
        "Julianalaan",
        "Beatrixstraat",
        "Stationsweg",
        "Lindenlaan",
        "Eikenlaan",
        "Prinses Irenestraat",
        "Van Goghstraat",
        "Marktplein",
        "Nieuwstraat",
    ),
    "BE": ("Kerkstraat", "Stationsstraat", "Dorpstraat", "Rue de la Gare", "Nieuwstraat", "Molenstraat", "Kapelstraat"),
    "DE": ("Hauptstraße", "Schulstraße", "Gartenstraße", "Bahnhofstraße", "Dorfstraße", "Bergstraße", "Lindenstraße"),
    "GB": ("High Street", "Station Road", "Church Lane", "Victoria Road", "Green Lane", "Manor Road", "Park Avenue"),
    "FR": (
        "Rue de la Paix",
        "Rue Victor Hugo",
        "Avenue Jean Jaurès",
        "Rue Pasteur",
        "Place de l'Église",
        "Rue du Moulin",
    ),
    "US": ("Main Street", "Oak Avenue", "Maple Drive", "Park Avenue", "Cedar Lane", "Elm Street", "Washington Blvd"),
}
CITIES = {
    "NL": (
        "Amsterdam",
        "Rotterdam",
        "Utrecht",
        "Den Haag",
        "Eindhoven",
        "Groningen",
        "Zwolle",
        "Leiden",
        "Haarlem",
        "Breda",
    ),
    "BE": ("Antwerpen", "Gent", "Brugge", "Leuven", "Brussel", "Hasselt", "Mechelen"),
    "DE": ("Berlin", "München", "Köln", "Hamburg", "Düsseldorf", "Münster", "Leipzig"),
    "GB": ("London", "Manchester", "Bristol", "Leeds", "Oxford", "York", "Brighton"),
    "FR": ("Paris", "Lyon", "Lille", "Nantes", "Bordeaux", "Toulouse", "Nice"),
    "US": ("New York", "Boston", "Chicago", "Seattle", "Austin", "Denver", "Miami"),
}
US_AREA_CODES = ("212", "415", "312", "617", "305", "206", "512", "720", "646", "303")
NICKNAMES = {
    "Robert": "Bob",
    "William": "Bill",
    "Elizabeth": "Liz",
    "Katherine": "Kate",
    "Margaret": "Maggie",
    "Richard": "Rick",
    "James": "Jim",
    "Thomas": "Tom",
    "Michael": "Mike",
    "Alexander": "Alex",
    "Christopher": "Chris",
    "Johannes": "Jan",
    "Jan": "Jan",
    "Hendrik": "Henk",
    "Cornelis": "Kees",
    "Wilhelmus": "Wim",
    "Jacobus": "Koos",
    "Gerardus": "Gerard",
    "Katharina": "Katja",
    "Johanna": "Anja",
    "Wilhelmina": "Mien",
    "Margaretha": "Greet",
    "Elisabeth": "Lies",
    "Maria": "Mia",
    "Daniel": "Dan",
    "Samuel": "Sam",
    "Benjamin": "Ben",
    "Nicholas": "Nick",
    "Jonathan": "Jon",
    "Matthew": "Matt",
    "Anthony": "Tony",
    "Joseph": "Joe",
    "Patricia": "Pat",
    "Jennifer": "Jenny",
    "Stephanie": "Steffi",
    "Friedrich": "Fritz",
    "Wolfgang": "Wolf",
    "Franziska": "Franzi",
    "Nicolas": "Nico",
    "Frédéric": "Fred",
}
SIMILAR_TWIN_NAMES = (("Anna", "Anne"), ("Lisa", "Lise"), ("Tom", "Tim"), ("Sara", "Sarah"), ("Jan", "Jaan"))
PLACEHOLDER_EMAILS = ("test@test.com", "noemail@example.com", "no@email.com", "none@none.com")
PLACEHOLDER_PHONES = ("0000000000", "1234567890", "0612345678")


@dataclass(frozen=True)
class CountryNames:
    male: np.ndarray
    female: np.ndarray
    last: np.ndarray


@cache
def names(country: str) -> CountryNames:
    provider = importlib.import_module(f"faker.providers.person.{LOCALES[country]}").Provider
    male = list(dict.fromkeys(getattr(provider, "first_names_male", provider.first_names)))
    female = list(dict.fromkeys(getattr(provider, "first_names_female", provider.first_names)))
    last = list(dict.fromkeys(provider.last_names))
    if country in ("NL", "BE"):  # particles are part of Dutch surnames
        last += ["van der Berg", "de Vries", "van Dijk", "van den Bosch", "de Jong", "van Leeuwen", "ter Horst"]
    return CountryNames(np.array(male, dtype=object), np.array(female, dtype=object), np.array(last, dtype=object))
