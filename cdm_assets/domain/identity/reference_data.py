"""Reference data for standardising customer records: titles, name particles,
nicknames, placeholder emails and postcode formats.

Plain Python constants, reviewed by people who know the names of a market;
`source_lookup` turns them into small tables or SQL literals once per build.
Country names come from `countries.py`, phone metadata from `phone_numbers.py`.
"""

from __future__ import annotations

# Salutations and titles in front of a name (lower-case, without the dot).
# Single letters are left out on purpose: "M. Dupont" may as well be an initial.
NAME_TITLES: tuple[str, ...] = (
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "rev",
    "dhr", "mevr", "mw", "mej", "ir", "drs", "ing", "mr.drs",
    "herr", "frau", "hr", "fr",
    "mme", "mlle", "mons",
)

# Words that start a surname in Dutch, German, French, Italian, Spanish and
# Portuguese names. They stay part of the last name ("van der Berg") and are
# dropped only for `last_name_core`, so "Berg" and "van der Berg" can meet.
NAME_PARTICLES: tuple[str, ...] = (
    "van", "von", "vom", "de", "der", "den", "des", "del", "della", "di", "da", "do", "dos", "das",
    "du", "le", "la", "les", "lo", "ten", "ter", "te", "het", "in", "op", "zu", "zum", "zur",
)
# Particles written lower-case after a first name ("Jan van der Berg", "Ludwig
# von Mises"). French and Italian articles usually keep their capital
# ("Le Pen", "Di Maio"), so only these are lowered when re-casing.
LOWER_CASE_PARTICLES: tuple[str, ...] = (
    "van", "von", "vom", "de", "der", "den", "des", "del", "della", "ten", "ter", "te", "het", "zu",
    "zum", "zur", "du", "dos", "das", "do", "y", "op", "in", "'t",
)
# Elided particles glued to the name: d'Artagnan, l'Oréal, 't Hart.
ELIDED_PARTICLES: tuple[str, ...] = ("d'", "l'", "'t")

# Root name → its nicknames and spelling variants across English, Dutch,
# German and French. A nickname shared by a male and a female name (Chris,
# Alex, Sam, Jo, Pat, Toni) is left out: rooting it would merge siblings who
# share an address. Roots are folded keys (lower-case ASCII letters).
NICKNAMES: dict[str, tuple[str, ...]] = {
    "johannes": ("jan", "hans", "johan", "johann", "hannes", "john", "johnny", "jack", "jantje", "jannes"),
    "robert": ("bob", "bobby", "rob", "robbie", "robby", "robbert", "roberto"),
    "elizabeth": (
        "elisabeth", "liz", "lizzy", "lizzie", "beth", "betty", "bettie", "betsy", "eliza", "els", "lies",
        "liesbeth", "lisbeth", "elsbeth", "babette",
    ),
    "william": (
        "bill", "billy", "will", "willy", "willie", "liam", "willem", "wim", "wilhelm", "willi", "guillaume",
        "wilhelmus",
    ),
    "richard": ("rick", "ricky", "rich", "richie", "dick", "dickie", "ricardo"),
    "margaret": (
        "margaretha", "margarethe", "margriet", "margreet", "greet", "greetje", "maggie", "meg", "peggy",
        "margie", "marge", "grete", "gretchen", "marguerite",
    ),
    "catherine": (
        "katherine", "kathryn", "catharina", "katharina", "katrien", "katrin", "kate", "katie", "katy",
        "cathy", "kathy", "kaat", "cato", "trijntje", "katja",
    ),
    "james": ("jim", "jimmy", "jamie", "jacques"),
    "jacob": ("jakob", "jacobus", "jaap", "koos", "kobus", "jake", "jacco"),
    "joseph": ("joe", "joey", "josef", "jozef", "jos", "sjef", "sepp", "josephus"),
    "thomas": ("tom", "tommy", "tommie", "thom", "tomas"),
    "michael": ("mike", "mikey", "mick", "micky", "michiel", "michel", "michal"),
    "daniel": ("dan", "danny", "daan"),
    "david": ("dave", "davy", "davey"),
    "edward": ("ed", "eddie", "eddy", "ted", "teddy", "ned", "eduard", "edouard"),
    "anthony": ("tony", "anton", "antonius", "toon", "teun", "antoine", "antonio"),
    "benjamin": ("ben", "benny", "benji"),
    "charles": ("charlie", "chuck", "karel", "karl", "carl", "carlos", "charly"),
    "nicholas": (
        "nicolas", "nick", "nicky", "nico", "niek", "klaas", "nicolaas", "niklas", "nikolaus", "claus",
        "klaus",
    ),
    "alexander": ("sander", "alexandre", "xander"),
    "andrew": ("andy", "drew", "andreas", "andre", "andries", "dries"),
    "stephen": ("steve", "stevie", "steven", "stefan", "stephan", "stephane"),
    "stephanie": ("steffi", "steffie", "stefanie", "stephany"),
    "matthew": ("matt", "matty", "matthias", "mattias", "matthijs", "thijs", "mathieu", "mathias"),
    "peter": ("pete", "piet", "pieter", "petrus", "pierre", "peer"),
    "gerard": ("gerrit", "gert", "geert", "gerhard", "gerardus", "ger"),
    "hendrik": ("henk", "henry", "harry", "hank", "heinrich", "heinz", "henri", "hein", "henrik", "rik"),
    "cornelis": ("kees", "cornelius", "cor", "corne"),
    "frederik": ("frederick", "frederic", "fred", "freddy", "freddie", "frits", "fritz", "friedrich", "freek"),
    "wolfgang": ("wolf", "wolfi"),
    "franziska": ("franzi", "francesca", "francoise"),
    "lodewijk": ("louis", "ludwig", "lewis", "ludo"),
    "franciscus": ("francis", "frans", "franz", "frank", "francois", "francesco", "franky"),
    "sebastian": ("sebastiaan", "sebastien", "bas", "bastiaan", "basti", "seb"),
    "maximilian": ("maximiliaan", "max", "maxi"),
    "wouter": ("walter", "wout", "walther"),
    "bartholomeus": ("bart", "bartel", "bartholomew", "barthelemy"),
    "adrianus": ("adriaan", "arie", "adrian", "adrien", "ad"),
    "gijsbert": ("gijs", "gijsbertus", "gijsje"),
    "arnold": ("arnoud", "arnout", "noud", "arend", "arno"),
    "lawrence": ("larry", "laurens", "lorenz", "laurent", "lars"),
    "leonard": ("len", "lenny", "leonardus", "leendert"),
    "theodore": ("theo", "theodoor", "theodor", "theodorus"),
    "gregory": ("greg", "gregor", "gregoire"),
    "timothy": ("tim", "timmy", "timo", "timotheus"),
    "albert": ("albertus", "appie"),
    "maria": ("marie", "mary", "mia", "ria", "mieke", "mies", "miep", "marije", "maaike", "marja"),
    "johanna": ("joke", "hanneke", "janneke", "joanna", "jeanne", "jannie"),
    "anna": ("annie", "ann", "anneke", "anja", "ans", "anke"),
    "christina": ("christine", "kristina", "kristine", "christiane", "tineke", "stien"),
    "susan": ("susanne", "suzanne", "susanna", "suzan", "sue", "susie", "suzy", "suus"),
    "jennifer": ("jen", "jenny", "jennie"),
    "rebecca": ("becky", "becca", "rebekka"),
    "deborah": ("deb", "debbie", "debby", "debora"),
    "patricia": ("patty", "tricia", "trish", "patsy"),
    "victoria": ("vicky", "vicki", "tori", "viktoria"),
    "barbara": ("barb", "babs", "barbie"),
    "josephine": ("josie", "fien", "fientje", "josefine", "josefien"),
    "dorothea": ("dorothy", "dot", "dottie", "dolly", "doortje", "dora"),
    "isabella": ("isabel", "isabelle", "bella", "izzy"),
    "abigail": ("abby", "abbie", "gail"),
    "wilhelmina": ("mien", "wilma", "willemijn", "helmi"),
    "petronella": ("petra", "pietje"),
    "geertruida": ("truus", "trudy", "gertrude", "gertrud", "trudie"),
    "cornelia": ("corrie", "nelly", "nellie", "cora", "neeltje"),
    "helena": ("helen", "heleen", "lena", "leni", "leny", "ellen", "helene"),
    "alida": ("aaltje", "alie", "aleida"),
    "jacoba": ("coby", "cobie", "jacobine"),
    "francisca": ("francien", "francine", "cis"),
}

# Placeholder emails people type when a form insists: such a value links
# strangers, so it never becomes a match key (the display email is kept).
PLACEHOLDER_EMAIL_LOCAL_PARTS: tuple[str, ...] = (
    "noemail", "no-email", "no_email", "no.email", "nomail", "no-mail", "no.mail", "no", "none", "null",
    "nil", "na", "n.a", "unknown", "onbekend", "geen", "geenemail", "geen-email", "geen.email", "keine",
    "keine.email", "aucun", "test", "testing", "dummy", "fake", "invalid", "nobody", "noreply",
    "no-reply", "donotreply", "do-not-reply", "do.not.reply", "asdf", "qwerty",
)
# "noemail123@", "geen-email@", "no_mail_given@": any local part starting so.
PLACEHOLDER_EMAIL_LOCAL_PATTERN = r"^(?:no|geen|keine|sans)[-._]?e?[-._]?mail"
PLACEHOLDER_EMAIL_DOMAINS: tuple[str, ...] = (
    "example.com", "example.org", "example.net", "test.com", "test.nl", "test.de", "domain.com",
    "email.invalid", "noemail.com", "nomail.com", "none.com", "mailinator.com", "unknown.com",
)
# Reserved top-level names (RFC 2606/6761) never deliver mail.
PLACEHOLDER_EMAIL_TLDS: tuple[str, ...] = ("invalid", "test", "example", "localhost", "local")

# Canonical spacing of postcodes, by ISO country: a pattern over the compact
# form (upper-case letters and digits only), how many trailing characters form
# the second part, and the separator. Countries not listed keep the postcode as
# typed (upper-cased).
POSTCODE_FORMATS: dict[str, tuple[str, int, str]] = {
    "NL": (r"[1-9][0-9]{3}[A-Z]{2}", 2, " "),
    "GB": (r"[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}", 3, " "),
    "IE": (r"(?:[AC-FHKNPRTV-Y][0-9]{2}|D6W)[0-9AC-FHKNPRTV-Y]{4}", 4, " "),
    "CA": (r"[A-Z][0-9][A-Z][0-9][A-Z][0-9]", 3, " "),
    "SE": (r"[0-9]{5}", 2, " "),
    "CZ": (r"[0-9]{5}", 2, " "),
    "SK": (r"[0-9]{5}", 2, " "),
    "GR": (r"[0-9]{5}", 2, " "),
    "PL": (r"[0-9]{5}", 3, "-"),
    "PT": (r"[0-9]{7}", 3, "-"),
    "US": (r"[0-9]{9}", 4, "-"),
    "BR": (r"[0-9]{8}", 3, "-"),
    "JP": (r"[0-9]{7}", 4, "-"),
}
# Formats no other country shares: applied when a record has no country, so
# "1234ab" still displays as "1234 AB" (the match key ignores spacing anyway).
UNAMBIGUOUS_POSTCODE_FORMATS: tuple[str, ...] = ("NL", "GB")


def nickname_roots() -> list[tuple[str, str]]:
    """(name, root) pairs: every nickname and the root itself, each name once."""
    pairs: dict[str, str] = {}
    for root, names in NICKNAMES.items():
        for name in (root, *names):
            if pairs.setdefault(name, root) != root:
                raise ValueError(f"nickname {name!r} has two roots: {pairs[name]!r} and {root!r}")
    return sorted(pairs.items())
