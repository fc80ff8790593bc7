"""Closed classes of common words whose members exclude each other: colours, materials, occupations...

An answer that names "blue" where its only fact says "green" asserts something the fact
contradicts, though neither word is a name, number or date (issue 25). Words of such a
class are values of one attribute: a flag has one official colour, a person one trade
as the sentence states it, a bell is made of one metal. So when the answer names a
member of a class, and its facts name another member of that class but not it (nor a
word of the same group: "crimson" is a red, "timber" is wood, "physician" is a doctor),
the answer is contradicted (ctxagent.grounding rejects it).

Only the contradiction is judged, never mere absence: "a broken chime" for "the cracked
bell" names no class member and passes, and so does any word the facts do not place in
a class. A word may sit in several classes ("gold" is a colour and a metal).

The lists are hand-made on purpose: small, reviewable, and deterministic; WordNet would
be larger but needs a data download, and its sense inventory makes co-hyponyms of
synonyms often enough to reject right answers. Each group is a comma-separated list of
words that may stand for each other; groups in a class exclude each other.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CLASSES: dict[str, tuple[str, ...]] = {
    "colour": (
        "red, crimson, scarlet, vermilion, ruby, maroon, cherry, carmine, reddish",
        "blue, azure, navy, cobalt, sapphire, cerulean, indigo, bluish, sky-blue, royal blue",
        "green, emerald, olive, lime, jade, verdant, greenish",
        "yellow, golden, gold, lemon, amber, saffron, yellowish, mustard",
        "orange, tangerine, ochre, apricot",
        "purple, violet, lilac, lavender, mauve, magenta, plum, indigo",
        "pink, salmon, fuchsia",
        "brown, tan, beige, chestnut, chocolate, umber, bronze, brownish, khaki",
        "black, ebony, sable, blackish",
        "white, ivory, cream, snow-white, whitish",
        "grey, gray, silver, ash, slate, charcoal, greyish, grayish",
        "turquoise, teal, aqua, cyan",
    ),
    "material": (
        "wood, wooden, timber, oak, oaken, pine, birch, elm, maple, walnut, mahogany, cedar, beech, ash, teak",
        "stone, granite, marble, limestone, sandstone, slate, flint",
        "brick, bricks",
        "glass, crystal",
        "iron, cast-iron, wrought-iron",
        "steel",
        "bronze",
        "copper",
        "brass",
        "gold, golden",
        "silver",
        "tin, pewter",
        "aluminium, aluminum",
        "clay, ceramic, porcelain, terracotta, earthenware, pottery",
        "leather, suede",
        "silk, silken",
        "cotton",
        "wool, woollen, woolen",
        "linen",
        "paper, cardboard, parchment",
        "plastic",
        "concrete, cement",
        "rubber",
        "ivory, bone",
    ),
    "occupation": (
        "teacher, schoolteacher, schoolmaster, schoolmistress, tutor, instructor",
        "doctor, physician, surgeon, medic",
        "nurse",
        "farmer, ploughman, plowman, grower",
        "baker",
        "blacksmith, farrier",
        "carpenter, joiner, woodworker, cabinetmaker",
        "fisherman, fisher, fisherwoman",
        "sailor, seaman, mariner, seafarer",
        "soldier, trooper, infantryman",
        "lawyer, attorney, solicitor, barrister",
        "judge, magistrate",
        "priest, vicar, pastor, clergyman, rector, chaplain, parson, curate",
        "merchant, trader, dealer, shopkeeper",
        "miller",
        "weaver",
        "tailor, seamstress, dressmaker",
        "shepherd, shepherdess, herdsman",
        "innkeeper, landlord, publican, tavern-keeper",
        "engineer",
        "scientist, researcher, chemist, physicist, biologist",
        "painter, artist",
        "writer, author, novelist, poet, playwright, dramatist, essayist",
        "musician, composer, pianist, violinist, cellist, harpist, organist, guitarist",
        "actor, actress, performer",
        "singer, vocalist, soprano, tenor, baritone",
        "dancer, ballerina",
        "architect",
        "banker",
        "clerk, secretary, bookkeeper, accountant",
        "chef",
        "gardener",
        "hunter, huntsman, trapper",
        "mayor",
        "pilot, aviator",
        "driver, chauffeur, coachman",
        "mechanic",
        "plumber",
        "electrician",
        "journalist, reporter, correspondent, editor",
        "photographer",
        "librarian",
        "pharmacist, apothecary, druggist",
        "dentist",
        "veterinarian, vet",
        "policeman, policewoman, constable, detective, sheriff",
        "firefighter, fireman",
        "miner, collier",
        "butcher",
        "potter",
        "jeweller, jeweler, goldsmith, silversmith",
        "mason, stonemason, bricklayer",
        "servant, maid, butler, footman, housekeeper, valet",
        "governess, nanny",
        "lighthouse-keeper",
    ),
    "place": (
        "kitchen",
        "garden, yard, backyard",
        "library",
        "church, chapel, cathedral, abbey, kirk",
        "school, schoolhouse, schoolroom, classroom, academy",
        "hospital, infirmary, clinic",
        "market, marketplace, bazaar",
        "harbour, harbor, port, dock, docks, quay, wharf, pier",
        "lighthouse",
        "castle, fortress, fort",
        "palace",
        "tower",
        "mill",
        "barn, granary, stable, stables, shed",
        "farm, farmhouse, ranch",
        "forest, wood, woods, woodland",
        "river, stream, brook, creek",
        "lake, pond, loch, lagoon",
        "mountain, mountains, hill, hills, peak",
        "beach, shore, coast, seaside",
        "cellar, basement, vault",
        "attic, loft, garret",
        "station",
        "museum, gallery",
        "theatre, theater",
        "prison, jail, gaol",
        "inn, tavern, pub, alehouse",
        "bakery",
        "shop",
        "office",
        "factory, workshop",
        "bedroom",
        "cemetery, graveyard, churchyard",
        "island, isle",
        "desert",
        "meadow, pasture",
        "bridge",
    ),
    "animal": (
        "dog, hound, puppy, pup",
        "cat, kitten",
        "horse, pony, steed, mare, stallion, foal, colt",
        "sheep, lamb, ewe, ram",
        "cow, cattle, ox, oxen, bull, calf",
        "pig, hog, boar, sow, swine",
        "goat",
        "chicken, hen, rooster, cockerel",
        "duck",
        "goose",
        "rabbit, bunny, hare",
        "parrot",
        "owl",
        "eagle",
        "hawk, falcon",
        "tortoise, turtle",
        "ferret",
        "hedgehog",
        "peacock",
        "donkey, mule",
        "lizard",
        "snake, serpent",
        "mouse, mice, rat",
        "fox",
        "wolf",
        "deer, stag",
        "canary",
        "frog, toad",
    ),
    "weekday": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "season": ("spring", "summer", "autumn", "winter"),
    "direction": ("north, northern, northward", "south, southern, southward", "east, eastern, eastward", "west, western, westward"),
    "instrument": (
        "piano, pianoforte",
        "violin, fiddle",
        "viola",
        "cello, violoncello",
        "harp",
        "flute",
        "guitar",
        "drum, drums",
        "trumpet",
        "clarinet",
        "organ",
        "lute",
    ),
    "vehicle": (
        "car, automobile, motorcar",
        "bus",
        "train",
        "bicycle, bike",
        "boat, ship, vessel, yacht",
        "plane, aeroplane, airplane, aircraft",
        "carriage, coach, cart, wagon, waggon",
        "motorcycle",
        "tram, streetcar",
    ),
}
_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


@lru_cache(maxsize=1)
def _index() -> dict[str, list[tuple[str, int]]]:
    """word -> [(class, group number)]."""
    out: dict[str, list[tuple[str, int]]] = {}
    for name, groups in _CLASSES.items():
        for g, group in enumerate(groups):
            for word in group.split(","):
                word = word.strip().lower()
                if word:
                    out.setdefault(word, []).append((name, g))
    return out


def _forms(word: str) -> list[str]:
    """The word and its singular, for lookups ("lanterns" -> "lantern")."""
    word = word.lower()
    forms = [word]
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")
    elif word.endswith("es") and len(word) > 4:
        forms += [word[:-2], word[:-1]]
    elif word.endswith("s") and len(word) > 3:
        forms.append(word[:-1])
    return forms


def classes_of(word: str) -> list[tuple[str, int]]:
    """The (class, group) pairs a word belongs to; empty for most words."""
    index = _index()
    for form in _forms(word):
        if form in index:
            return index[form]
    return []


def class_words(text: str) -> list[tuple[str, int, int]]:
    """The words of `text` that belong to a class, as (word, start, end)."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text) if classes_of(m.group())]


def contradiction(word: str, facts: list[str]) -> str | None:
    """A word of the facts that contradicts `word`, or None.

    `word` is contradicted when, for one of its classes, the facts name a member of
    another group of that class and no member of any of the word's own groups: the facts
    give that attribute another value. Facts that name no member of the class say
    nothing against it.
    """
    mine = classes_of(word)
    if not mine:
        return None
    stated: list[tuple[str, list[tuple[str, int]]]] = []
    for fact in facts:
        for m in _WORD.finditer(fact):
            groups = classes_of(m.group())
            if groups:
                stated.append((m.group(), groups))
    own = set(mine)
    if any(own & set(groups) for _, groups in stated):
        return None
    for name, _ in mine:
        for other, groups in stated:
            if any(c == name for c, _ in groups):
                return other
    return None
