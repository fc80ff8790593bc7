"""RULER-style long-context tasks on real text, deterministic with a seed.

Each task is one document (filler prose with needles between its paragraphs),
one question and the reference answers. Task kinds, after RULER (Hsieh et al.,
2024) and needle-in-a-haystack tests:

- `niah_single`: one key -> number fact; ask for it.
- `niah_multikey`: four such facts with different keys; ask for one (three distractors).
- `niah_multivalue`: four numbers for the same key; ask for all of them.
- `niah_multiquery`: four keys; ask for the numbers of all four at once.
- `variable_tracking`: a chain of assignments `VAR B = VAR A`; ask for every name holding the value.
- `common_words`: keyword lines scattered through the text, some repeated; ask for the most frequent (aggregation).
- `qa`: a real passage of a novel with a hand-written question, hidden in text from the other novels.

Harder kinds, where finding a sentence that repeats the question's words is not enough:

- `niah_paraphrase`: the needle and the question share no content word (synonyms only); the answer is a name.
- `niah_latent`: one step of common knowledge, after NoLiMa (Modarressi et al., 2025): the needle
  says a character lives next to the Louvre, the question asks who has been to Paris.
- `two_hop`: fact A names a person, fact B elsewhere tells something of that person; the question
  goes through A to B. Either fact may come first in the text.
- `arithmetic`: two needles state two numbers; the answer (sum or difference) is stated nowhere.
- `yes_no`: a needle states a fact; the question asks whether it holds (half yes, half no).
- `multiple_choice`: four options in the question; the answer is a letter or the option's text.
- `aggregation`: several needles of one kind; list every item, or count them.
- `quality`: a real multiple-choice question over a whole short story from QuALITY (see quality.py).
- `squad`: a real SQuAD 2.0 question over its whole Wikipedia article, among other articles
  when the length allows, else a slice of the article around the gold paragraph (see squad.py).

Every needle of a task is gold evidence: recipes are judged on whether what they read and cited
covers all of them (evidence recall, report.py).

`depth` places the first needle (the one asked about) at that fraction of the
document's tokens; the other needles of multi-needle tasks go at random depths
(after the first one for variable tracking, so assignments stay in order).
`common_words` spreads its needles uniformly and has no depth.

Tasks are saved as JSONL (optionally .gz), so one task file can be reused across
runs, recipes and machines: the text is stored, not regenerated.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from pydantic import BaseModel, Field

from ctxagent.errors import InputError
from ctxagent.evaluation.haystack import HAYSTACKS, SEPARATOR, CountTokens, filler, qa_pairs

log = logging.getLogger(__name__)

TASK_KINDS = (
    "niah_single",
    "niah_multikey",
    "niah_multivalue",
    "niah_multiquery",
    "variable_tracking",
    "common_words",
    "qa",
    "niah_paraphrase",
    "niah_latent",
    "two_hop",
    "arithmetic",
    "yes_no",
    "multiple_choice",
    "aggregation",
    "quality",
    "squad",
)
DEPTHLESS_KINDS = frozenset({"common_words", "quality", "squad"})
HARD_KINDS = ("niah_paraphrase", "niah_latent", "two_hop", "arithmetic", "yes_no", "multiple_choice", "aggregation", "quality", "squad")
REAL_QA_KINDS = ("quality", "squad")  # questions people wrote over real documents (no planted needles)
Scoring = Literal["text", "number", "yes_no", "choice"]
N_NEEDLES = 4  # needles of the multi-needle tasks
VT_HOPS = 4  # assignments after the first in a variable-tracking chain
CW_COMMON, CW_REPEATS, CW_RARE = 3, 5, 6  # common-words: 3 words x5, 6 words x1

# Small fixed word lists make keys readable and reproducible across Python versions.
ADJECTIVES = (
    "amber brisk calm dusty eager faint gentle hollow icy jolly keen lofty mellow nimble olive "
    "plain quiet rustic silver tidy upright vivid wooden young zesty bold crisp damp early frosty"
).split()
NOUNS = (
    "anchor basket candle dolphin engine feather garden harbor island jacket kettle lantern meadow "
    "needle orchard pepper quarry ribbon saddle teapot umbrella valley window yard zipper bridge "
    "castle drum falcon glacier"
).split()
KEYWORDS = (
    "apricot barley cobalt dahlia ember fennel granite hazel indigo juniper kelp lilac marble "
    "nutmeg onyx parsley quince rosemary saffron thistle umber violet walnut yarrow"
).split()


class Needle(BaseModel):
    """A sentence placed in the document: `context[start:start+len(text)] == text`."""

    text: str
    start: int = Field(ge=0)
    depth: float = Field(ge=0.0, le=1.0, description="share of the document's tokens before it")


class Task(BaseModel):
    id: str
    kind: str
    context: str = Field(description="the document text the recipe reads")
    question: str
    answers: list[str] = Field(min_length=1)
    metric: Literal["all", "any"] = Field(
        default="all", description="all: score is the share of answers found; any: finding one answer suffices"
    )
    scoring: Scoring = Field(
        default="text",
        description="text: answers found in the reply; number: judged by value; yes_no: the reply's yes or no; choice: its option letter or text",
    )
    options: list[str] = Field(default_factory=list, description="the options of a choice question, in letter order")
    length: int = Field(ge=0, description="requested length in tokens (0 for a user's own document)")
    tokens: int = Field(ge=0, description="measured length of the context in the engine's tokens")
    depth: float | None = Field(default=None, description="requested depth of the first needle; None when spread")
    needles: list[Needle] = Field(default_factory=list)
    seed: int = 0
    source: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


# -- needles -------------------------------------------------------------------------


@dataclass
class Spec:
    """What a generator decided: needles (text, requested depth) and the question."""

    needles: list[tuple[str, float]]
    question: str
    answers: list[str]
    metric: Literal["all", "any"] = "all"
    sources: Sequence[str] = HAYSTACKS
    metadata: dict[str, Any] | None = None
    scoring: Scoring = "text"
    options: Sequence[str] = ()


def _key(rng: random.Random, taken: set[str]) -> str:
    while True:
        key = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
        if key not in taken:
            taken.add(key)
            return key


def _number(rng: random.Random, taken: set[str]) -> str:
    while True:
        value = str(rng.randrange(1_000_000, 10_000_000))
        if value not in taken:
            taken.add(value)
            return value


def _magic(key: str, value: str) -> str:
    return f"One of the special magic numbers for {key} is: {value}."


def _spec_niah_single(rng: random.Random, depth: float) -> Spec:
    key, value = _key(rng, set()), _number(rng, set())
    return Spec([(_magic(key, value), depth)], f"What is the special magic number for {key} mentioned in the text?", [value])


def _spec_niah_multikey(rng: random.Random, depth: float) -> Spec:
    keys, values = set(), set()
    pairs = [(_key(rng, keys), _number(rng, values)) for _ in range(N_NEEDLES)]
    depths = [depth] + [rng.random() for _ in pairs[1:]]
    needles = [(_magic(k, v), d) for (k, v), d in zip(pairs, depths)]
    key, value = pairs[0]
    return Spec(needles, f"What is the special magic number for {key} mentioned in the text?", [value], metadata={"distractors": [v for _, v in pairs[1:]]})


def _spec_niah_multivalue(rng: random.Random, depth: float) -> Spec:
    key, values = _key(rng, set()), set()
    numbers = [_number(rng, values) for _ in range(N_NEEDLES)]
    depths = [depth] + [rng.random() for _ in numbers[1:]]
    needles = [(_magic(key, v), d) for v, d in zip(numbers, depths)]
    return Spec(needles, f"What are all the special magic numbers for {key} mentioned in the text?", numbers)


def _spec_niah_multiquery(rng: random.Random, depth: float) -> Spec:
    keys, values = set(), set()
    pairs = [(_key(rng, keys), _number(rng, values)) for _ in range(N_NEEDLES)]
    depths = [depth] + [rng.random() for _ in pairs[1:]]
    needles = [(_magic(k, v), d) for (k, v), d in zip(pairs, depths)]
    names = ", ".join(k for k, _ in pairs[:-1]) + f" and {pairs[-1][0]}"
    return Spec(needles, f"What are the special magic numbers for {names} mentioned in the text?", [v for _, v in pairs])


def _var_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(5))
        if name not in taken:
            taken.add(name)
            return name


def _spec_variable_tracking(rng: random.Random, depth: float) -> Spec:
    taken: set[str] = set()
    names = [_var_name(rng, taken) for _ in range(VT_HOPS + 1)]
    value = str(rng.randrange(10_000, 100_000))
    texts = [f"VAR {names[0]} = {value}."] + [f"VAR {b} = VAR {a}." for a, b in zip(names, names[1:])]
    later = sorted(rng.uniform(depth, 1.0) for _ in texts[1:])
    return Spec(
        list(zip(texts, [depth] + later)),
        f"Find all variables that are assigned the value {value} in the text, directly or through other variables.",
        names,
        metadata={"value": value},
    )


def _spec_common_words(rng: random.Random, depth: float) -> Spec:
    words = rng.sample(KEYWORDS, CW_COMMON + CW_RARE)
    common, rare = words[:CW_COMMON], words[CW_COMMON:]
    lines = [f"Keyword: {w}." for w in common for _ in range(CW_REPEATS)] + [f"Keyword: {w}." for w in rare]
    question = f"Lines of the form 'Keyword: WORD.' are scattered through the text. Which {CW_COMMON} keywords appear most often?"
    return Spec([(line, rng.random()) for line in lines], question, common, metadata={"rare": rare, "repeats": CW_REPEATS})


def _spec_qa(rng: random.Random, depth: float) -> Spec:
    pair = rng.choice(qa_pairs())
    others = [h for h in HAYSTACKS if h != pair["source"]]
    return Spec([(pair["passage"], depth)], pair["question"], list(pair["answers"]), metric="any", sources=others, metadata={"qa_id": pair["id"], "qa_source": pair["source"]})


# -- harder kinds: paraphrase, latent, two hops, arithmetic, yes/no, choice, aggregation ------------

# Invented names and places, so that no haystack sentence and no model's memory holds the answer.
PEOPLE = (
    "Oswin Thackery", "Marisol Quenby", "Tobias Wrenfield", "Ilse Dunmore", "Caspar Velloway",
    "Nadia Orrick", "Fenwick Hale", "Rosalind Ashgrove", "Emrys Calloway", "Greta Stolberg",
    "Jasper Mireau", "Odile Penhallow", "Bastian Crewe", "Lucia Fairweather", "Anselm Brackley",
    "Theda Marchbanks", "Corwin Ellery", "Mirela Voss", "Alaric Dunstan", "Saskia Pellow",
    "Ivo Marchetti", "Yuki Tanabe", "Dario Okafor", "Petra Lindqvist",
)
VILLAGES = (
    "Marrowby", "Quillstead", "Ebbingford", "Thornwick", "Calderbrook", "Pellmoor", "Ashcombe",
    "Wrexley", "Dunhollow", "Fernwold", "Greyhithe", "Oakmere",
)

# (needle with {name}, question): the two share no content word; the question describes the needle in synonyms.
PARAPHRASES = (
    ("{name} once mended the cracked bell of the old harbour chapel.", "Who repaired a damaged chime at a seaside church?"),
    ("{name} fled the burning granary carrying two frightened lambs.", "Who escaped a blazing barn holding a pair of scared sheep?"),
    ("{name} wrote a lengthy poem about the frozen lake every winter.", "Who composed long verses on an icy pond each cold season?"),
    ("{name} taught the miller's daughter to play the harp.", "Who instructed a flour grinder's girl on a stringed instrument?"),
    ("{name} lost a silver ring while swimming in the river.", "Who misplaced a precious band during a dip in a stream?"),
    ("{name} painted the doors of the schoolhouse bright yellow.", "Who coloured the entrances of a classroom building a vivid golden shade?"),
    ("{name} sold three horses to buy a telescope.", "Who traded some steeds for an instrument to view distant stars?"),
)

# (landmark, the place it implies): one step of common knowledge, NoLiMa-style.
LANDMARKS = (
    ("Louvre", "Paris"), ("Colosseum", "Rome"), ("Brandenburg Gate", "Berlin"), ("Sagrada Familia", "Barcelona"),
    ("Kremlin", "Moscow"), ("Acropolis", "Athens"), ("Golden Gate Bridge", "San Francisco"), ("Sydney Opera House", "Sydney"),
    ("Taj Mahal", "Agra"), ("Rijksmuseum", "Amsterdam"), ("Hagia Sophia", "Istanbul"), ("Space Needle", "Seattle"),
)

# (fact A linking a thing to {name}, fact B about {name} and {village}, question through A to B).
# The question shares no content word with fact B (only the bridge name joins them, and the
# question never says it): finding B takes searching for the person A names, not the question's words.
TWO_HOPS = (
    ("The {colour} lighthouse on the point is kept by {name}.", "{name} grew up in {village}.", "Where did the keeper of the {colour} lighthouse spend their childhood?"),
    ("The {colour} carriage in the square belongs to {name}.", "{name} was born in {village}.", "What is the birthplace of the owner of the {colour} carriage?"),
    ("The {colour} bookshop by the bridge is run by {name}.", "{name} spends every summer in {village}.", "Where does the keeper of the {colour} bookshop pass the warm months of the year?"),
)
COLOURS = ("crimson", "emerald", "violet", "scarlet", "turquoise", "ochre", "indigo", "saffron")

# (things, needle with {name} and {n}): quantities for the arithmetic tasks.
QUANTITIES = (
    ("beehives", "{name} keeps {n} beehives behind the orchard."),
    ("sheep", "{name} owns a flock of {n} sheep."),
    ("lanterns", "{name} lit {n} lanterns for the midsummer fair."),
    ("barrels of cider", "{name} stored {n} barrels of cider in the cellar."),
)

BOATS = ("green", "blue", "yellow", "red", "white", "black", "orange", "purple")
PETS = ("tortoise", "parrot", "ferret", "goat", "hedgehog", "peacock", "donkey", "rabbit", "owl", "lizard")
PET_NAMES = ("Biscuit", "Pippin", "Clover", "Juniper", "Marmalade", "Sprocket", "Thimble", "Nutmeg")
FRUITS = ("kumquats", "lychees", "persimmons", "papayas", "mangoes", "pomegranates", "figs", "guavas", "passion fruit", "starfruit")
N_AGGREGATE = (3, 4, 5)
LETTERS = "ABCD"


def _people(rng: random.Random, n: int) -> list[str]:
    return rng.sample(PEOPLE, n)


def _surname(name: str) -> str:
    return name.split()[-1]


def _spec_niah_paraphrase(rng: random.Random, depth: float) -> Spec:
    (name,) = _people(rng, 1)
    needle, question = rng.choice(PARAPHRASES)
    return Spec([(needle.format(name=name), depth)], question, [name, _surname(name)], metric="any")


def _spec_niah_latent(rng: random.Random, depth: float) -> Spec:
    (name,) = _people(rng, 1)
    landmark, place = rng.choice(LANDMARKS)
    needle = f"Actually, {name} lives next to the {landmark}."
    return Spec([(needle, depth)], f"Which character has been to {place}?", [name, _surname(name)], metric="any", metadata={"landmark": landmark, "place": place})


def _spec_two_hop(rng: random.Random, depth: float) -> Spec:
    (name,) = _people(rng, 1)
    first, second, question = rng.choice(TWO_HOPS)
    colour, village = rng.choice(COLOURS), rng.choice(VILLAGES)
    fact_a = first.format(colour=colour, name=name)
    fact_b = second.format(name=name, village=village)
    # The question's first hop sits at `depth`; the second anywhere, before or after it.
    return Spec([(fact_a, depth), (fact_b, rng.random())], question.format(colour=colour), [village], metadata={"bridge": name})


def _spec_arithmetic(rng: random.Random, depth: float) -> Spec:
    first, second = _people(rng, 2)
    things, template = rng.choice(QUANTITIES)
    a, b = rng.sample(range(12, 99), 2)
    while a == 2 * b or b == 2 * a:  # a difference equal to a stated number would be stated
        a, b = rng.sample(range(12, 99), 2)
    if rng.random() < 0.5:
        value, question = a + b, f"How many {things} do {first} and {second} have together?"
        op = "sum"
    else:
        a, b = max(a, b), min(a, b)
        value, question = a - b, f"How many more {things} does {first} have than {second}?"
        op = "difference"
    needles = [(template.format(name=first, n=a), depth), (template.format(name=second, n=b), rng.random())]
    return Spec(needles, question, [str(value)], scoring="number", metadata={"operation": op, "operands": [a, b]})


def _spec_yes_no(rng: random.Random, depth: float) -> Spec:
    (name,) = _people(rng, 1)
    colour, other = rng.sample(BOATS, 2)
    truth = rng.random() < 0.5
    asked = colour if truth else other
    needle = f"The rowing boat of {name} is painted {colour}."
    question = f"Is the rowing boat of {name} painted {asked}? Answer yes or no."
    return Spec([(needle, depth)], question, ["yes" if truth else "no"], scoring="yes_no", metadata={"colour": colour, "asked": asked})


def _spec_multiple_choice(rng: random.Random, depth: float) -> Spec:
    (name,) = _people(rng, 1)
    options = rng.sample(PETS, 4)
    gold = rng.randrange(4)
    needle = f"{name} keeps a pet {options[gold]} named {rng.choice(PET_NAMES)}."
    listed = " ".join(f"({letter}) a {pet}" for letter, pet in zip(LETTERS, options))
    question = f"What kind of pet does {name} keep? {listed}. Answer with the letter of the right option."
    texts = [f"a {pet}" for pet in options]
    return Spec([(needle, depth)], question, [LETTERS[gold], texts[gold]], metric="any", scoring="choice", options=texts)


def _spec_aggregation(rng: random.Random, depth: float) -> Spec:
    n = rng.choice(N_AGGREGATE)
    sellers, fruits = _people(rng, n), rng.sample(FRUITS, n)
    needles = [(f"At the spring market, {s} sold a crate of {f}.", d) for s, f, d in zip(sellers, fruits, [depth] + [rng.random() for _ in range(n - 1)])]
    if rng.random() < 0.5:
        return Spec(needles, "Which fruits were sold at the spring market? List every one of them.", fruits, metadata={"variant": "list"})
    return Spec(needles, "How many people sold fruit at the spring market?", [str(n)], scoring="number", metadata={"variant": "count", "items": fruits})


GENERATORS = {
    "niah_single": _spec_niah_single,
    "niah_multikey": _spec_niah_multikey,
    "niah_multivalue": _spec_niah_multivalue,
    "niah_multiquery": _spec_niah_multiquery,
    "variable_tracking": _spec_variable_tracking,
    "common_words": _spec_common_words,
    "qa": _spec_qa,
    "niah_paraphrase": _spec_niah_paraphrase,
    "niah_latent": _spec_niah_latent,
    "two_hop": _spec_two_hop,
    "arithmetic": _spec_arithmetic,
    "yes_no": _spec_yes_no,
    "multiple_choice": _spec_multiple_choice,
    "aggregation": _spec_aggregation,
}


# -- assembly ------------------------------------------------------------------------


def _assemble(
    paragraphs: list[list[str]], counts: list[list[int]], needles: list[tuple[str, float]], needle_tokens: list[int]
) -> tuple[list[str], list[int]]:
    """Put each needle at the sentence boundary nearest its requested token depth, as a paragraph of its own.

    Returns the document's paragraphs and, per needle, the index of its paragraph.
    Needles asking for the same boundary keep their given order.
    """
    units = [(text, n, p) for p, (texts, ns) in enumerate(zip(paragraphs, counts)) for text, n in zip(texts, ns)]
    total = max(1, sum(n for _, n, _ in units))
    bounds = [0]
    for _, n, _ in units:
        bounds.append(bounds[-1] + n)
    # Depth is measured in the finished document, needles included: a needle at depth d has
    # d * (filler + needles) tokens before it, of which the needles placed earlier take their share.
    whole = total + sum(needle_tokens)
    slots = [0] * len(needles)
    before = floor = 0
    for i in sorted(range(len(needles)), key=lambda i: (needles[i][1], i)):
        want = needles[i][1] * whole - before
        # never before a needle asked to come earlier (a variable-tracking chain stays in order)
        slots[i] = floor = max(floor, min(range(len(bounds)), key=lambda b: abs(bounds[b] - want)))
        before += needle_tokens[i]
    order = sorted(range(len(needles)), key=lambda i: (slots[i], i))
    out: list[str] = []
    where = [0] * len(needles)
    current: list[str] = []
    k = 0
    for b in range(len(units) + 1):
        if k < len(order) and slots[order[k]] == b:
            if current:
                out.append(" ".join(current))
                current = []
            while k < len(order) and slots[order[k]] == b:
                where[order[k]] = len(out)
                out.append(needles[order[k]][0])
                k += 1
        if b < len(units):
            if current and units[b][2] != units[b - 1][2]:
                out.append(" ".join(current))
                current = []
            current.append(units[b][0])
    if current:
        out.append(" ".join(current))
    return out, where


def build_task(kind: str, length: int, depth: float | None, count_tokens: CountTokens, *, seed: int = 0, sample: int = 0) -> Task:
    """One task of `kind`, at most `length` tokens long, with its first needle at `depth`."""
    if kind not in TASK_KINDS:
        raise InputError(f"unknown task kind {kind!r}; known: {', '.join(TASK_KINDS)}")
    if depth is not None and not 0.0 <= depth <= 1.0:
        raise InputError(f"depth {depth} is outside [0, 1]: 0 puts the needle at the start, 1 at the end")
    tag = "spread" if depth is None else f"{depth:.2f}"
    rng_seed = f"{seed}/{kind}/{length}/{tag}/{sample}"
    if kind == "quality":
        return _quality_task(length, count_tokens, rng_seed, f"{kind}-{length}-{tag}-{seed}-{sample}", seed)
    if kind == "squad":
        return _squad_task(length, count_tokens, rng_seed, f"{kind}-{length}-{tag}-{seed}-{sample}", seed, sample)
    spec = GENERATORS[kind](random.Random(rng_seed), 0.5 if depth is None else depth)
    each = [count_tokens(text) + 1 for text, _ in spec.needles]
    needle_tokens = sum(each)
    if needle_tokens * 2 > length:
        raise InputError(f"length {length} is too short for a {kind} task whose needles alone take {needle_tokens} tokens; use at least {2 * needle_tokens}")
    target = length - needle_tokens
    for _ in range(6):  # joins cost a token or so each: measure, and shrink the filler until it fits
        rng = random.Random(rng_seed + "/filler")
        paras, counts, source = filler(count_tokens, target, rng, spec.sources)
        placed, where = _assemble(paras, counts, spec.needles, each)
        context = SEPARATOR.join(placed)
        total = count_tokens(context)
        if total <= length:
            break
        target -= total - length + 2
    starts = [0]
    for p in placed[:-1]:
        starts.append(starts[-1] + len(p) + len(SEPARATOR))
    needles = []
    for (text, _), i in zip(spec.needles, where):
        start = starts[i]
        needles.append(Needle(text=text, start=start, depth=round(min(1.0, count_tokens(context[:start]) / max(1, total)), 4)))
    return Task(
        id=f"{kind}-{length}-{tag}-{seed}-{sample}",
        kind=kind,
        context=context,
        question=spec.question,
        answers=spec.answers,
        metric=spec.metric,
        scoring=spec.scoring,
        options=list(spec.options),
        length=length,
        tokens=total,
        depth=depth,
        needles=needles,
        seed=seed,
        source=source,
        metadata=spec.metadata or {},
    )


def _quality_task(length: int, count_tokens: CountTokens, rng_seed: str, task_id: str, seed: int) -> Task:
    from ctxagent.evaluation.quality import LETTERS, SOURCE, quality_document, question_text

    pick = quality_document(length, count_tokens, random.Random(rng_seed))
    gold = pick.question.options[pick.question.gold]
    return Task(
        id=task_id,
        kind="quality",
        context=pick.context,
        question=question_text(pick.question),
        answers=[LETTERS[pick.question.gold], gold],
        metric="any",
        scoring="choice",
        options=list(pick.question.options),
        length=length,
        tokens=pick.tokens,
        depth=None,
        seed=seed,
        source=SOURCE,
        metadata={"story": pick.story.id, "title": pick.story.title, "article_start": pick.article_start, "article_chars": len(pick.story.article)},
    )


def _squad_task(length: int, count_tokens: CountTokens, rng_seed: str, task_id: str, seed: int, sample: int) -> Task:
    from ctxagent.evaluation.squad import SOURCE, question_for, squad_document

    article, question = question_for(seed, sample)
    pick = squad_document(length, count_tokens, random.Random(rng_seed), article, question)
    shift = pick.offset - pick.cut  # article offset -> context offset
    start = question.answer_starts[0] + shift
    answer = question.answers[0]
    assert pick.context[start : start + len(answer)] == answer, task_id
    depth = round(min(1.0, count_tokens(pick.context[:start]) / max(1, pick.tokens)), 4)
    return Task(
        id=task_id,
        kind="squad",
        context=pick.context,
        question=question.question,
        answers=list(question.answers),
        metric="any",
        length=length,
        tokens=pick.tokens,
        depth=None,
        needles=[Needle(text=answer, start=start, depth=depth)],
        seed=seed,
        source=SOURCE,
        metadata={
            "squad_id": question.id,
            "title": article.title,
            "paragraph": [question.paragraph[0] + shift, question.paragraph[1] + shift],
            "article_start": pick.offset,
            "whole_article": pick.cut == 0 and article.text in pick.context,
        },
    )


def generate_tasks(
    count_tokens: CountTokens,
    *,
    kinds: Sequence[str] = TASK_KINDS,
    lengths: Sequence[int] = (1024, 2048, 4096),
    depths: Sequence[float] = (0.1, 0.5, 0.9),
    samples: int = 1,
    seed: int = 0,
    tokenizer: str = "",
) -> list[Task]:
    """Every kind x length x depth x sample (depthless kinds once per length x sample).

    The same seed and tokenizer give the same tasks, byte for byte.
    """
    unknown = [k for k in kinds if k not in TASK_KINDS]
    if unknown:
        raise InputError(f"unknown task kind(s) {', '.join(unknown)}; known: {', '.join(TASK_KINDS)}")
    if samples < 1:
        raise InputError(f"samples must be at least 1, got {samples}")
    # Ordered sample, depth, length, kind, so that a run cut short has covered every length
    # and kind at some depth rather than one kind at every length.
    plan: list[tuple[str, int, float | None, int]] = []
    for s in range(samples):
        for i, d in enumerate(depths):
            for length in lengths:
                for kind in kinds:
                    if kind not in DEPTHLESS_KINDS:
                        plan.append((kind, length, d, s))
                    elif i == 0:
                        plan.append((kind, length, None, s))
    tasks = []
    for kind, length, d, s in plan:
        if kind == "quality" and not _quality_fits(length, count_tokens):
            log.warning("no quality task at %d tokens: every bundled QuALITY story is longer", length)
            continue
        task = build_task(kind, length, d, count_tokens, seed=seed, sample=s)
        if tokenizer:
            task.metadata["tokenizer"] = tokenizer
        tasks.append(task)
    return tasks


def _quality_fits(length: int, count_tokens: CountTokens) -> bool:
    from ctxagent.evaluation.quality import quality_stories, story_tokens

    return any(story_tokens(s, count_tokens) + 16 <= length for s in quality_stories())


# -- a user's own documents ------------------------------------------------------------


def user_tasks(documents: Sequence[Any], qa_file: str | Path, count_tokens: CountTokens | None = None) -> list[Task]:
    """Tasks from the user's documents and a JSONL of questions with reference answers.

    Each line: {"question": ..., "answer": "..." or "answers": [...], "document": id or file name}.
    "document" may be left out when there is one document. `documents` are paths or Documents.
    """
    from ctxagent.agent import load_sources

    docs = load_sources(list(documents))
    by_name: dict[str, Any] = {}
    for doc in docs:
        by_name[doc.id] = doc
        by_name.setdefault(Path(doc.id).name, doc)
        for key in ("source", "path"):
            if doc.metadata.get(key):
                by_name.setdefault(str(doc.metadata[key]), doc)
                by_name.setdefault(Path(str(doc.metadata[key])).name, doc)
    tasks = []
    for n, row in enumerate(_read_jsonl(Path(qa_file)), 1):
        where = f"{qa_file} line {n}"
        question = str(row.get("question", "")).strip()
        if not question:
            raise InputError(f"{where}: no \"question\"")
        answers = row.get("answers", row.get("answer"))
        answers = [answers] if isinstance(answers, str) else list(answers or [])
        if not answers:
            raise InputError(f"{where}: no \"answer\" or \"answers\" to score against")
        name = row.get("document")
        if name is None:
            if len(docs) != 1:
                raise InputError(f"{where}: name the \"document\" the question is about (there are {len(docs)})")
            doc = docs[0]
        elif str(name) in by_name:
            doc = by_name[str(name)]
        else:
            raise InputError(f"{where}: no document named {name!r}; given: {', '.join(d.id for d in docs)}")
        tokens = count_tokens(doc.text) if count_tokens else 0
        tasks.append(
            Task(
                id=str(row.get("id", f"user-{n}")),
                kind="user",
                context=doc.text,
                question=question,
                answers=[str(a) for a in answers],
                metric="any",
                length=0,
                tokens=tokens,
                source=doc.id,
            )
        )
    return tasks


# -- files ---------------------------------------------------------------------------------


def _open(path: Path, mode: str):
    return gzip.open(path, mode + "t", encoding="utf-8") if path.suffix == ".gz" else open(path, mode, encoding="utf-8")


def _read_jsonl(path: Path) -> Iterable[dict]:
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    with _open(path, "r") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {n} is not valid JSON: {exc}") from None


def save_tasks(tasks: Sequence[Task], path: str | Path) -> Path:
    """Write tasks as JSONL (gzip-compressed when the name ends in .gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, "w") as fh:
        for task in tasks:
            fh.write(task.model_dump_json() + "\n")
    return path


def load_tasks(path: str | Path) -> list[Task]:
    return [Task.model_validate(row) for row in _read_jsonl(Path(path))]
