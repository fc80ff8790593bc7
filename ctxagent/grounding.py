"""Does an answer assert anything its facts do not support?

An answer may derive (yes/no, a number computed from two facts, a date, a choice), but
every *specific* it asserts must come from the facts it cites: a number, a date or a
name is supported when the facts state it (after normalisation: "26,400,000",
"26.4 million" and "twenty-six point..." are one value; "12 June 1886" is "June 12,
1886"; a name of two or more words must stand as that name in one fact, never gathered
from several), or when it is computed from numbers the facts or the question state (a sum, a
difference such as a gap between years, a product, a ratio or percentage, a count of
the facts for a "how many" question, or arithmetic the answer shows, which is checked).
A computation the answer does not show counts only where the question asks for a quantity
("how many", "how long", "when", a yes/no question, options): five facts hold enough
numbers that two or three of them add up to almost any small integer, so elsewhere such a
match is chance, not support ("composed of 75 members", where 75 = 17 + 3 + 55 from an
article number, a clause number and a percentage, issue 25).

Words of the question are the user's, not new assertions, so a specific the answer
only repeats from the question needs no support -- except when the answer *affirms*
the question ("Yes", "True") or picks one of its options: then the question's (or the
chosen option's) specifics are what the answer asserts, and the facts must support them.

Deterministic and cheap (regular expressions and a few thousand float comparisons), so
every answer step runs it without another engine call. Rules are written for what any
answer may say, not for one model's habits; see docs/recipes.md, "Grounded answers".
"""

from __future__ import annotations

import ast
import operator
import os
import re
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Literal, Sequence

from ctxagent.word_classes import class_words, classes_of, contradiction

Kind = Literal["number", "date", "name", "word"]
DateParts = tuple[int | None, int | None, int | None]  # (year, month, day)

# -- vocabulary -----------------------------------------------------------------------------
_MONTHS = {
    name: i
    for i, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
         ("december", "dec")],  # fmt: skip
        start=1,
    )
    for name in names
}
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}  # fmt: skip
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_SCALES = {"hundred": 100.0, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_SHORT_SCALES = {"k": 1e3, "m": 1e6, "mn": 1e6, "b": 1e9, "bn": 1e9}
# Capitalised words that are not names: sentence openers, verdicts, pronouns, function words.
_COMMON = frozenset(
    "a an and are as at be but by did do does for from had has have he her his how i if in is it its me my no not "
    "of on or our she so that the their them then there these they this those to was we were what when where "
    "which who whom why will with yes you your true false correct incorrect right wrong none nothing found answer "
    "answers option options choice question document text fact facts according based however also both each "
    "every all some many most here after before during since while because therefore thus although note "
    "unknown ok okay".split()
)
_HONORIFICS = frozenset("mr mrs ms miss dr sir lady lord captain capt admiral colonel col general gen prof professor st saint rev".split())
_NAME_JOINERS = frozenset("of de da di van von der den del du la le y and &".split())
# Constants an answer may use in the arithmetic it shows (unit conversions), besides the facts' numbers.
CONVERSION_CONSTANTS = (2.0, 3.0, 4.0, 7.0, 10.0, 12.0, 24.0, 52.0, 60.0, 100.0, 365.0, 1000.0)

# -- patterns -------------------------------------------------------------------------------
_MONTH_RE = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DAY_RE = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR_RE = r"(?:1\d{3}|2\d{3})"
_DATE = re.compile(
    rf"\b(?:(?P<y1>{_YEAR_RE})-(?P<m1>0?[1-9]|1[0-2])-(?P<d1>[12]\d|3[01]|0?[1-9])"
    rf"|(?P<m2>{_MONTH_RE})\s+(?P<d2>{_DAY_RE})(?:,?\s+(?P<y2>{_YEAR_RE}))?"
    rf"|(?P<d3>{_DAY_RE})\s+(?:of\s+)?(?P<m3>{_MONTH_RE}),?(?:\s+(?P<y3>{_YEAR_RE}))?"
    rf"|(?P<m4>{_MONTH_RE}),?\s+(?P<y4>{_YEAR_RE}))(?![\w-])",
    re.IGNORECASE,
)
_NUM_CORE = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_NUMBER = re.compile(
    rf"(?<![\w.,])(?P<cur>[$€£¥])?\s?(?P<num>{_NUM_CORE})"
    r"(?:(?P<short>bn|mn|[kKmMbB])(?![A-Za-z])|(?P<ord>st|nd|rd|th|s)(?![A-Za-z]))?"
    r"(?:\s?(?P<pct>%|percent\b|per\s?cent\b))?"
    r"(?:\s(?P<scale>thousand|million|billion|trillion)\b)?"
    r"(?![\w])",
    re.IGNORECASE,
)
_CODE = re.compile(r"(?<![\w])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[-/.][A-Za-z0-9]+)*(?![\w])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*(?:-[A-Za-z][A-Za-z'’]*)*")
_ARITH_NUM = rf"[$€£¥]?(?:{_NUM_CORE})(?:\s?%)?(?:\s(?:thousand|million|billion|trillion)\b)?"
_ARITHMETIC = re.compile(
    rf"(?P<expr>{_ARITH_NUM}(?:\s*(?:[-+*/×÷−–]|\sx\s)\s*{_ARITH_NUM})+)\s*(?:=|equals|is)\s*(?P<result>{_ARITH_NUM})",
    re.IGNORECASE,
)
_VERDICT = re.compile(r"^\W*(?P<word>yes|no|true|false|correct|incorrect|right|wrong)\b", re.IGNORECASE)
# A verdict stated after the answer's sentence ("The boat is painted black. The answer is yes.").
_LATE_VERDICT = re.compile(r"\b(?:the\s+)?answer\s+is\s*:?\W*(?P<word>yes|no|true|false)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|none|false|incorrect|wrong)\b|n't\b", re.IGNORECASE)
_YES_NO = re.compile(
    r"^\W*(?:is|was|are|were|do|does|did|has|have|had|can|could|will|would|should|may|might|must|shall|isn't|wasn't|doesn't|didn't)\b|\btrue or false\b",
    re.IGNORECASE,
)
_AFFIRM = frozenset("yes true correct right".split())
_OPTION = re.compile(r"(?:^|(?<=[\s(\[]))\(?(?P<letter>[A-H])[).:]\s+(?P<text>.+?)(?=\s+\(?[A-H][).:]\s|\n|$)", re.MULTILINE)
_CHOICE = re.compile(
    r"^\W*(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*:?\s*)?\(?(?P<letter>[A-H])(?:[).:,]|\s*$|\s+[-—–])",
)
_SENTENCE_OPENER = re.compile(r"(?:^|[.!?:;\n\"“(\[]|\s[-—–]|^\s*(?:[-*•]|\d+[.)]))\s*$")


# -- data -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Specific:
    """One thing an answer asserts: a number (value and the tolerance its written precision allows),
    a date (the parts it states), a name (the words that must be found), or a word of a closed
    class such as a colour or a trade (ctxagent.word_classes), which its facts must not contradict."""

    kind: Kind
    text: str
    start: int
    end: int
    value: float | None = None
    mantissa: float | None = None  # the number as written, before a scale word ("26.4" of "26.4 million")
    scaled: bool = False
    tolerance: float = 0.5
    rounded: float = 0.5  # the tolerance if trailing zeros are read as rounding ("125,000"): for computed values only
    percent: bool = False
    year: bool = False  # a plain four-digit integer 1000-2999, or a date's year
    date: DateParts | None = None
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Support:
    """Why a specific is supported (`how`, empty when it is not) and which facts say so (indexes)."""

    specific: Specific
    how: str
    facts: tuple[int, ...] = ()
    against: str = ""  # for a contradicted word: the facts' word of the same class ("green" against "blue")

    @property
    def ok(self) -> bool:
        return bool(self.how)


@dataclass
class Grounding:
    """The verdict on one answer: every specific with its support, and the derived-answer kind."""

    supports: list[Support] = field(default_factory=list)
    derived: str = ""  # "yes" / "no" / "choice B" / "" for a plain answer

    @property
    def supported(self) -> bool:
        return all(s.ok for s in self.supports)

    @property
    def unsupported(self) -> list[str]:
        return list(dict.fromkeys(s.specific.text for s in self.supports if not s.ok))

    @property
    def contradicted(self) -> dict[str, str]:
        """Words of the answer that its facts contradict, each with the facts' word ("blue" -> "green")."""
        return {s.specific.text: s.against for s in self.supports if s.against}

    @property
    def facts_used(self) -> list[int]:
        return sorted({i for s in self.supports if s.ok for i in s.facts if i >= 0})


@dataclass(frozen=True)
class _Number:
    value: float
    mantissa: float
    fact: int  # index of the fact it came from; -1 for the question, -2 for a constant or a result of shown arithmetic, -3 for the count of the facts
    year: bool = False
    percent: bool = False
    day: bool = False  # a date's day of the month ("March 1, 1760" states 1 only as a day)


# -- finding specifics ----------------------------------------------------------------------
def _date_parts(m: re.Match[str]) -> DateParts:
    g = m.groupdict()
    year = next((g[k] for k in ("y1", "y2", "y3", "y4") if g[k]), None)
    month = next((g[k] for k in ("m1", "m2", "m3", "m4") if g[k]), None)
    day = next((g[k] for k in ("d1", "d2", "d3") if g[k]), None)
    month_no = int(month) if month and month.isdigit() else _MONTHS.get((month or "").lower().rstrip("."))
    day_no = int(re.sub(r"\D", "", day)) if day else None
    return (int(year) if year else None, month_no, day_no)


def _dates(text: str) -> list[Specific]:
    out = []
    for m in _DATE.finditer(text):
        parts = _date_parts(m)
        if parts[1] is None:
            continue
        out.append(Specific("date", m.group(), m.start(), m.end(), date=parts))
    return out


def _number_from_match(m: re.Match[str]) -> Specific:
    raw = m.group("num").replace(",", "")
    mantissa = float(raw)
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    scale = 1.0
    if m.group("scale"):
        scale = _SCALES[m.group("scale").lower()]
    elif m.group("short"):
        scale = _SHORT_SCALES[m.group("short").lower()]
    tolerance = 0.5 * 10**-decimals * scale
    zeros = len(raw) - len(raw.rstrip("0")) if decimals == 0 else 0
    if zeros < 2 or (scale == 1.0 and re.fullmatch(_YEAR_RE, raw)):  # "30" is exact; so is a year such as "1900"
        zeros = 0
    return Specific(
        "number", m.group().strip(), m.start(), m.end(), value=mantissa * scale, mantissa=mantissa, scaled=scale != 1.0,
        tolerance=tolerance, rounded=tolerance * 10**zeros, percent=bool(m.group("pct")),
        year=scale == 1.0 and not m.group("cur") and bool(re.fullmatch(_YEAR_RE, raw)),
    )  # fmt: skip


def _word_numbers(text: str) -> list[Specific]:
    """Runs of number words ("twelve", "twenty-one", "three hundred and five", "two million")."""
    out: list[Specific] = []
    run: list[tuple[str, int, int]] = []

    def flush() -> None:
        while run and run[-1][0] == "and":
            run.pop()
        if run:
            total, current = 0.0, 0.0
            for word, _, _ in run:
                for part in word.split("-"):
                    if part in _UNITS:
                        current += _UNITS[part]
                    elif part in _TENS:
                        current += _TENS[part]
                    elif part == "hundred":
                        current = max(current, 1.0) * 100
                    elif part in _SCALES:
                        total += max(current, 1.0) * _SCALES[part]
                        current = 0.0
            value = total + current
            start, end = run[0][1], run[-1][2]
            out.append(Specific("number", text[start:end], start, end, value=value, mantissa=value, tolerance=0.5))
        run.clear()

    for m in _WORD.finditer(text):
        word = m.group().lower()
        parts = word.split("-")
        if all(p in _UNITS or p in _TENS or p in _SCALES for p in parts):
            run.append((word, m.start(), m.end()))
        elif word == "and" and run:
            run.append((word, m.start(), m.end()))
        else:
            flush()
    flush()
    return out


def _overlaps(start: int, end: int, taken: Sequence[Specific]) -> bool:
    return any(start < s.end and s.start < end for s in taken)


def _numbers(text: str, taken: Sequence[Specific]) -> list[Specific]:
    found = [_number_from_match(m) for m in _NUMBER.finditer(text) if not _overlaps(m.start(), m.end(), taken)]
    found += [s for s in _word_numbers(text) if not _overlaps(s.start, s.end, [*taken, *found])]
    return found


def _at_sentence_start(text: str, start: int) -> bool:
    return bool(_SENTENCE_OPENER.search(text[max(0, start - 12) : start]))


def _name_word(word: str) -> str:
    """One word as a name is read: lower-cased, a possessive's "'s" dropped; "" for a word a name may
    carry or leave out (an honorific, a joiner such as "of" or "de")."""
    word = re.sub(r"['’]s?$", "", word).lower()
    return "" if word in _HONORIFICS or word in _NAME_JOINERS else word


def _name_words(phrase: str) -> tuple[str, ...]:
    return tuple(w for w in map(_name_word, re.split(r"[\s-]+", phrase)) if w)


# An answer of this many words or fewer is a phrase, not a sentence: its capitals are names.
_PHRASE_WORDS = 3


def _names(text: str, taken: Sequence[Specific]) -> list[Specific]:
    """Capitalised words and phrases ("Anne Elliot", "World's Fair", "NASA"), and codes mixing letters
    and digits ("Q3", "B-52"). A capitalised word opening a sentence counts only inside a longer
    phrase that is not led by a common word, since any sentence starts with a capital; but a short
    answer ("Paris.", "Lake Geneva") is a phrase, whose capital is the name it gives."""
    out: list[Specific] = []
    phrase = len(text.split()) <= _PHRASE_WORDS
    for m in _CODE.finditer(text):
        if not _overlaps(m.start(), m.end(), taken):
            out.append(Specific("name", m.group(), m.start(), m.end(), words=(m.group().lower(),)))
    taken = [*taken, *out]
    tokens = [m for m in _WORD.finditer(text) if not _overlaps(m.start(), m.end(), taken)]
    i = 0
    while i < len(tokens):
        if not tokens[i].group()[0].isupper():
            i += 1
            continue
        j = i + 1
        while j < len(tokens):
            gap = text[tokens[j - 1].end() : tokens[j].start()]
            joined = tokens[j].group().lower() in _NAME_JOINERS and j + 1 < len(tokens) and tokens[j + 1].group()[0].isupper()
            if gap.strip() or not (tokens[j].group()[0].isupper() or joined):
                break
            j += 2 if joined and not tokens[j].group()[0].isupper() else 1
        run = tokens[i:j]
        i = j
        # a phrase's capital is a name, but its lone word of a closed class ("Blue.") is judged as a class word
        named_by_phrase = phrase and not (len(run) == 1 and classes_of(run[0].group()))
        if _at_sentence_start(text, run[0].start()) and not named_by_phrase:
            if len(run) == 1 or run[0].group().lower() in _COMMON:
                run = run[1:]
        while run and run[0].group().lower() in _COMMON | _NAME_JOINERS:
            run = run[1:]
        while run and run[-1].group().lower() in _NAME_JOINERS:
            run = run[:-1]
        if not run or all(t.group().lower() in _COMMON for t in run):
            continue
        start, end = run[0].start(), run[-1].end()
        words = _name_words(text[start:end])
        if words:
            out.append(Specific("name", text[start:end], start, end, words=words))
    return out


_LIST_ITEM = re.compile(r"(?m)^\s*\d{1,2}[.)](?:\s|$)")


def _enumerator(text: str, n: Specific) -> bool:
    """A list item's number, which counts items and asserts nothing: a number opening a line or
    following a sentence's end, then "." or ")" and the item's text ("1. Bastian Crewe fled ...",
    "... Pellow. 2. Saskia Pellow ..." where a model lists the facts it was shown), or opening a
    line of a text with two or more such lines. A one-line answer "42." stays a number."""
    before = text[max(0, n.start - 3) : n.start]
    line_start = text.rfind("\n", 0, n.start) + 1
    opens = not text[line_start : n.start].strip() or bool(re.search(r"[.!?]\s+$", before))
    if not opens or not re.match(r"[.)](?:\s|$)", text[n.end : n.end + 2]):
        return False
    return bool(re.match(r"[.)]\s+[A-Z\"“]", text[n.end : n.end + 4])) or len(_LIST_ITEM.findall(text)) >= 2


# "one" as a pronoun, not a count: "only one more", "one of them", "no one", "the one who".
_ONE_BEFORE = re.compile(r"\b(?:no|any|every|some|the|this|that|each|which|such|a|an|little|last|next|another)\s+$", re.IGNORECASE)
_ONE_AFTER = re.compile(
    r"^(?:['’]s\b|\s*(?:[^\w\s]|$)|\s+(?:of|more|another|or|and|but|who|whom|whose|that|which|must|can|could|would|should|may|might|will|shall"
    r"|is|was|has|had|does|did|ought|cannot|after|by|to|in|at|on|with|for)\b)",
    re.IGNORECASE,
)


def _pronoun_one(text: str, n: Specific) -> bool:
    """A fact's "one" that counts nothing: "Only one more, papa" states no 1 for an answer to rest
    on (a count of daughters was once "stated" by it). "one daughter", "one day" still count."""
    return n.text.lower() == "one" and bool(_ONE_AFTER.match(text[n.end : n.end + 12]) or _ONE_BEFORE.search(text[max(0, n.start - 12) : n.start]))


def find_specifics(text: str) -> list[Specific]:
    """The numbers, dates and names `text` asserts, in order (words of closed classes, such as
    colours, are judged separately: see `_class_word_supports`). "one" alone is not a number
    (it is far more often a pronoun), and a single capital letter is not a name."""
    dates = _dates(text)
    numbers = [n for n in _numbers(text, dates) if not (n.text.lower() == "one") and not _enumerator(text, n)]
    names = [n for n in _names(text, [*dates, *numbers]) if len(n.text) > 1]
    return sorted([*dates, *numbers, *names], key=lambda s: s.start)


# -- the facts' side ------------------------------------------------------------------------
def _words_of(text: str) -> set[str]:
    words = set()
    for m in re.finditer(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?(?:[-/.][A-Za-z0-9]+)*", text):
        word = re.sub(r"['’]s$", "", m.group().lower())
        words.add(word)
        words.update(re.split(r"[-/]", word))
    return words


def name_sequence(text: str) -> tuple[str, ...]:
    """The words of `text` in order, read as `_name_words` reads a name (lowercase, a possessive's "'s"
    dropped, hyphenated words split), without the words a name may carry or leave out: honorifics,
    joiners ("of", "de") and initials ("John F. Kennedy" names "John Kennedy")."""
    return tuple(w for m in _WORD.finditer(text) for w in map(_name_word, m.group().split("-")) if len(w) > 1)


def _same_word(a: str, b: str) -> bool:
    a, b = a.replace("’", "'"), b.replace("’", "'")
    return a == b or plain_word(a) == plain_word(b)


def name_in(words: Sequence[str], sequence: Sequence[str]) -> bool:
    """Whether the name whose words are `words` (`Specific.words`, two or more) stands in `sequence`
    (`name_sequence` of one text) as that name: its words together and in that order, a plural or
    possessive matching its stem ("European Council" is not stated by "the European Commission ...
    the Council"). Initials are left out on both sides, as `name_sequence` leaves them."""
    words = [w for w in words if len(w) > 1]
    n = len(words)
    return n > 0 and any(all(_same_word(a, b) for a, b in zip(words, sequence[i : i + n])) for i in range(len(sequence) - n + 1))


def loose_names(text: str) -> set[str]:
    """Capitalised words that are not common words, wherever they stand (lower-cased): a loose
    reading of the names a text may give, sentence openers included ("Edgar was her brother."),
    for asking whether an answer names anyone at all, not for support."""
    words = (_name_word(m.group()) for m in re.finditer(r"\b[A-Z][A-Za-z'’]*", text))
    return {w for w in words if w and w not in _COMMON}


def is_phrase_name(words: Sequence[str]) -> bool:
    """A name of two or more words (initials aside), which `name_in` must find together in one text."""
    return sum(1 for w in words if len(w) > 1) >= 2


def negated(text: str) -> bool:
    """Whether `text` holds a negation ("not", "never", "n't", "no", ...)."""
    return bool(_NEGATION.search(text))


def plain_word(word: str) -> str:
    """A word without a plural's (or a verb's) final s, for matching "Normans" with "Norman"."""
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


@dataclass
class _Source:
    """What a set of texts states: numbers, dates and words, each with the index of its text."""

    numbers: list[_Number] = field(default_factory=list)
    dates: list[tuple[DateParts, int]] = field(default_factory=list)
    words: list[set[str]] = field(default_factory=list)
    sequences: list[tuple[str, ...]] = field(default_factory=list)  # each text's words in order (`name_sequence`)

    @classmethod
    def of(cls, texts: Sequence[str], index_base: int = 0) -> "_Source":
        src = cls()
        for i, text in enumerate(texts):
            index = index_base if index_base < 0 else i
            dates = _dates(text)
            for d in dates:
                src.dates.append((d.date, index))  # type: ignore[arg-type]
                year, _, day = d.date  # type: ignore[misc]
                if year is not None:
                    src.numbers.append(_Number(float(year), float(year), index, year=True))
                if day is not None:
                    src.numbers.append(_Number(float(day), float(day), index, day=True))
            src.numbers += [_Number(n.value, n.mantissa, index, year=n.year, percent=n.percent) for n in _numbers(text, dates) if not _pronoun_one(text, n)]  # type: ignore[arg-type]
            words = _words_of(text)
            src.words.append(words | {plain_word(w) for w in words})
            src.sequences.append(name_sequence(text))
        return src


_COUNT_OF_FACTS = -3  # `_Number.fact` of the count a count question may be answered with


def _close(value: float, target: float, tolerance: float) -> bool:
    return abs(value - target) <= tolerance + 1e-9 * max(1.0, abs(value))


def _literal(spec: Specific, numbers: Sequence[_Number]) -> list[int]:
    """Indexes of the texts stating the number, equal at the precision it is written in (or equal as
    written, when the answer drops the scale word: "26.4" for "26.4 million")."""
    assert spec.value is not None
    hits = [n.fact for n in numbers if _close(n.value, spec.value, spec.tolerance)]
    if not spec.scaled:
        hits += [n.fact for n in numbers if _close(n.mantissa, spec.value, spec.tolerance)]
    return list(dict.fromkeys(hits))


def _computed(spec: Specific, numbers: Sequence[_Number], most: int = 3) -> tuple[str, tuple[int, ...]] | None:
    """A sum, difference, product, ratio or percentage of two of the numbers (or a sum of three, when
    `most` is 3; nothing when it is 0) that equals the specific at its written precision. Years only
    add and subtract (a year gap, "two years later"), and only a number written as a percentage is a
    percentage of two others: a year's ratio to anything, or an unmarked percentage, matches small
    integers by chance. A percentage and a plain number never add or subtract (55% + 20 is no quantity)."""
    assert spec.value is not None
    if most < 2:
        return None
    # Rounding a computed value to the written precision (trailing zeros count as rounding: "about
    # 125,000") is allowed only within 1% of it, so a small integer is not "computed" by some ratio of
    # two unrelated numbers that happens to round to it.
    target, tol = spec.value, min(max(spec.tolerance, spec.rounded), 0.01 * abs(spec.value))
    # The count of the facts is an answer in itself, not a quantity to add to the facts' numbers.
    pool = list({(n.value, n.fact): n for n in numbers if n.fact != _COUNT_OF_FACTS}.values())[:60]
    for a, b in combinations(pool, 2):
        x, y = a.value, b.value
        candidates = [(x + y, "sum"), (abs(x - y), "difference")] if a.percent == b.percent else []
        if not (a.year or b.year):
            candidates.append((x * y, "product"))
            for num, den in ((x, y), (y, x)):
                if not den:
                    continue
                if spec.percent:
                    candidates += [(100 * num / den, "percentage"), (100 * abs(num - den) / abs(den), "percentage change")]
                else:
                    candidates.append((num / den, "ratio"))
        for value, what in candidates:
            if _close(value, target, tol):
                return f"{what} of {_fmt(x)} and {_fmt(y)}", tuple(sorted({a.fact, b.fact}))
    if most >= 3 and len(pool) <= 15:
        for trio in combinations([n for n in pool if not n.year and not n.percent], 3):
            if _close(sum(n.value for n in trio), target, tol):
                return "sum of " + ", ".join(_fmt(n.value) for n in trio), tuple(sorted({n.fact for n in trio}))
    return None


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e15 else str(value)


# -- shown arithmetic -----------------------------------------------------------------------
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not arithmetic")


@dataclass(frozen=True)
class _Equation:
    start: int
    end: int
    operands: list[Specific]
    result: Specific
    holds: bool
    shown: str


def _equations(answer: str) -> list[_Equation]:
    out = []
    for m in _ARITHMETIC.finditer(answer):
        expr = m.group("expr")
        operands = [n for n in _numbers(expr, []) if n.value is not None]
        ops = re.findall(r"(?<=[\d%a-z\s])\s*([-+*/×÷−–]|\sx\s)\s*(?=[$€£¥\d.])", expr)
        result = _numbers(m.group("result"), [])
        if len(operands) < 2 or len(ops) != len(operands) - 1 or not result:
            continue
        symbols = {"×": "*", "x": "*", "÷": "/", "−": "-", "–": "-"}
        source = " ".join(f"{_fmt(o.value)} {symbols.get(op.strip(), op.strip())}" for o, op in zip(operands, ops)) + f" {_fmt(operands[-1].value)}"  # type: ignore[arg-type]
        try:
            value = _evaluate(ast.parse(source, mode="eval"))
        except (ValueError, SyntaxError, ZeroDivisionError):
            continue
        res = result[0]
        res = Specific("number", res.text, m.start("result") + res.start, m.start("result") + res.end, value=res.value, mantissa=res.mantissa, scaled=res.scaled, tolerance=res.tolerance)
        shifted = [Specific("number", o.text, m.start() + o.start, m.start() + o.end, value=o.value, mantissa=o.mantissa, scaled=o.scaled, tolerance=o.tolerance) for o in operands]
        holds = _close(value, res.value, res.tolerance)  # type: ignore[arg-type]
        out.append(_Equation(m.start(), m.end(), shifted, res, holds, m.group()))
    return out


# -- derived answers ------------------------------------------------------------------------
def question_options(question: str) -> dict[str, str]:
    """Options of a multiple-choice question ("A) Osaka  B) Lyon", one per line or inline), by letter."""
    options = {m.group("letter"): m.group("text").strip() for m in _OPTION.finditer(question)}
    letters = sorted(options)
    if len(letters) < 2 or letters[0] != "A":
        return {}
    return options


def chosen_option(answer: str, options: dict[str, str]) -> str | None:
    """The option letter an answer picks ("B", "(B) Lyon", "The answer is B."), if the question has options."""
    if not options:
        return None
    m = _CHOICE.search(answer.strip())
    if m and m.group("letter") in options:
        return m.group("letter")
    m = re.search(r"\b(?:answer|option|choice)\s+(?:is\s+)?\(?([A-H])\)?(?![\w])", answer, re.IGNORECASE)
    if m and m.group(1).upper() in options:
        return m.group(1).upper()
    return None


def _is_count_question(question: str) -> bool:
    return bool(re.search(r"\bhow many\b|\bnumber of\b|\bcount\b", question, re.IGNORECASE))


# Questions whose answer is a quantity, a date or a verdict on one: only they may be answered with a
# number computed from the facts without the arithmetic shown.
_ASKS_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|old|far|big|large|small|tall|high|low|deep|wide|heavy|often|fast|soon|late|early)\b|\bwhen\b"
    r"|\b(?:what|which)\s+(?:year|years|date|day|month|century|decade|age|time|period)\b"
    r"|\b(?:number|numbers|total|sum|difference|percentage|percent|proportion|share|ratio|rate|per|amount|count|average|distance|duration|gap|age"
    r"|population|cost|price|value|size|height|length|width|weight|speed|temperature|budget|revenue|income|salary|score)\b",
    re.IGNORECASE,
)
# A question a date's day of the month may answer as a bare number ("On what day of June ...? The 12th").
_ASKS_DAY = re.compile(r"\bwhen\b|\bdays?\b|\bdates?\b|\bon what\b", re.IGNORECASE)
# A question asking for a total ("together", "in all"): only its answer may add three numbers unshown.
TOTAL = re.compile(r"\b(?:together|in total|altogether|combined|in all|total|sum of|both)\b", re.IGNORECASE)


def _derivation(question: str, options: dict[str, str]) -> int:
    """How many of the facts' numbers an unshown computation may combine for this question: 0 when
    it asks for no quantity (a stated number is then the only support), 2 when it does (a sum,
    difference, product, ratio or percentage of two), 3 when it asks for a total."""
    if not (_ASKS_QUANTITY.search(question) or _YES_NO.search(question) or options):
        return 0
    return 3 if TOTAL.search(question) else 2


# -- the rule -------------------------------------------------------------------------------
def check_answer(answer: str, facts: Sequence[str], question: str = "") -> Grounding:
    """Every specific the answer asserts, each with how the facts support it (or not).

    facts: the texts the answer may rest on (the facts it used, or the sentences it read);
    `Support.facts` indexes into this list. question: the user's question, whose words
    are echoes rather than assertions unless the answer affirms it or picks one of its options.
    """
    source = _Source.of(facts)
    if question and not (_ASKS_DAY.search(question) or _YES_NO.search(question)):
        source.numbers = [n for n in source.numbers if not n.day]  # "How old was she? 1", from "born March 1, 1760"
    question_source = _Source.of([question], index_base=-1)
    options = question_options(question)
    verdict = _VERDICT.match(answer) or _LATE_VERDICT.search(answer)
    choice = chosen_option(answer, options)
    affirms = bool(verdict and verdict.group("word").lower() in _AFFIRM)
    derived = f"choice {choice}" if choice else (verdict.group("word").lower() if verdict else "")

    # What the question lends the answer as mere echo, and what it makes the answer assert.
    echo_text = question
    carried: list[Specific] = []
    if choice:
        echo_text = question.replace(options[choice], " ")
        carried = find_specifics(f"of {options[choice]}")  # an option's first word opens no sentence
    if affirms:
        echo_text = ""
        carried = find_specifics(re.sub(r"\(?\b[A-H][).:]\s", " ", question))
    echo = _Source.of([echo_text], index_base=-1)

    operands = [*source.numbers, *question_source.numbers]
    derive = _derivation(question, options)
    if _is_count_question(question) and facts:
        operands.append(_Number(float(len(facts)), float(len(facts)), _COUNT_OF_FACTS))

    text = answer
    if choice:  # the letter itself is not a name
        text = re.sub(rf"^\W*(?:[^()]*?\b)?\(?{choice}[).:,]?", lambda m: " " * len(m.group()), answer, count=1)
    supports: list[Support] = []
    equations = _equations(text)
    in_equation = [(e.start, e.end) for e in equations]
    for eq in equations:
        usable = [*operands, *(_Number(c, c, -2) for c in CONVERSION_CONSTANTS)]
        facts_used: set[int] = set()
        operands_ok = True
        for op in eq.operands:
            hit = _literal(op, usable)
            computed = None if hit else _computed(op, operands, derive)
            if hit:
                facts_used.update(hit[:1])
                supports.append(Support(op, "stated" if hit[0] >= 0 else ("question" if hit[0] == -1 else "constant"), tuple(h for h in hit[:1] if h >= 0)))
            elif computed:
                facts_used.update(computed[1])
                supports.append(Support(op, computed[0], tuple(i for i in computed[1] if i >= 0)))
            else:
                operands_ok = False
                supports.append(Support(op, ""))
        if eq.holds and operands_ok:
            supports.append(Support(eq.result, f"arithmetic shown: {eq.shown}", tuple(sorted(i for i in facts_used if i >= 0))))
            operands.append(_Number(eq.result.value, eq.result.value, -2))  # type: ignore[arg-type]
        else:
            supports.append(Support(eq.result, ""))
    for spec in find_specifics(text):
        if any(spec.start < e and s < spec.end for s, e in in_equation):
            continue
        supports.append(_support(spec, source, echo, operands, derive))
    for spec in carried:
        supports.append(_support(spec, source, _Source(), operands, derive, echo_allowed=False))
    supports = [_name_against(s, facts) for s in supports]
    supports = _ages_kept(supports, text, facts)
    supports = _topical_numbers(supports, source, question, in_equation)
    taken = [s.specific for s in supports] + [Specific("number", "", a, b) for a, b in in_equation]
    supports += _class_word_supports(text, facts, question, taken, affirms=affirms)
    if choice:
        supports += _class_word_supports(f"of {options[choice]}", facts, "", [], affirms=True, where=len(text))
    elif affirms:
        asked = re.sub(r"\(?\b[A-H][).:]\s", " ", question)
        supports += _class_word_supports(asked, facts, "", [], affirms=True, where=len(text))
    return Grounding(supports=supports, derived=derived)


# Words of a question that say what kind of answer it wants, not what it is about.
_FRAME_WORDS = frozenset(
    "a an and are as at be by did do does for from had has have how i in is it its of on or that the their there this to was were "
    "what when where which who whom whose why will with you your many much year years date day time first last".split()
)


def _topical_numbers(supports: list[Support], source: "_Source", question: str, in_equation: Sequence[tuple[int, int]] = ()) -> list[Support]:
    """A number or date the answer states is supported only by a fact that shares a word with the
    question (an inflection aside): one stated only in a fact about something else was taken from
    the wrong sentence. Qwen 0.5B on SQuAD: "Honda, Toyota and Nissan opened US assembly plants in
    1985", the 1985 from "By 1985, the average American vehicle moved 17.4 miles per gallon", and
    "The Second Polish Republic was established in 1806" from Napoleon's liberation of Warsaw.
    Operands of shown arithmetic are exempt: a derivation may rest on a fact in other words
    (revenue per employee from "Staff numbers rose to 212")."""
    judged = [
        i for i, s in enumerate(supports)
        if s.how == "stated" and s.specific.kind in ("number", "date") and not any(a <= s.specific.start < b for a, b in in_equation)
    ]
    asked = {w for w in _words_of(question) if w not in _FRAME_WORDS}
    if not judged or not asked:  # most answers state no number: no word of the facts is compared
        return supports
    topical = {i for i, words in enumerate(source.words) if any(same_stem(w, q) for w in words for q in asked)}
    out = list(supports)
    for i in judged:
        if not _stating(supports[i].specific, source) & topical:
            out[i] = Support(supports[i].specific, "")
    return out


def same_stem(a: str, b: str) -> bool:
    """"boats"/"boat", "holds"/"hold", "build"/"built", "north"/"northern", "opened"/"open": an
    inflection apart; not "hold"/"held", nor "blue"/"blueprint"."""
    if plain_word(a) == plain_word(b):
        return True
    return abs(len(a) - len(b)) <= 3 and len(os.path.commonprefix([a, b])) >= max(4, min(len(a), len(b)) - 1)


def _date_agrees(spec: Specific, parts: tuple) -> bool:
    year, month, day = spec.date  # type: ignore[misc]
    f_year, f_month, f_day = parts
    return f_month == month and (day is None or f_day == day) and (year is None or f_year == year)


def _stating(spec: Specific, source: "_Source") -> set[int]:
    """Every fact that states the number or date `spec` (not only the first)."""
    if spec.kind == "date":
        return {i for parts, i in source.dates if _date_agrees(spec, parts)}
    return {i for i in _literal(spec, source.numbers) if i >= 0}


# A number given as someone's age: "sixteen years old", "a 16-year-old", "aged 16", "at the age of 16".
_AGE = re.compile(
    r"\b(?P<before>[\w-]+(?:[\s-]+[\w-]+)?)[\s-]+years?[\s-]+old\b|\b(?:aged|age of)\s+(?P<after>[\w-]+(?:[\s-]+[\w-]+)?)",
    re.IGNORECASE,
)


def _ages(text: str) -> list[tuple[float, int, int]]:
    """Each age `text` states: its value and the span of its number."""
    out = []
    for m in _AGE.finditer(text):
        group = "before" if m.group("before") else "after"
        numbers = _numbers(m.group(group), [])
        if numbers:
            n = numbers[-1] if group == "before" else numbers[0]
            out.append((float(n.value), m.start(group) + n.start, m.start(group) + n.end))  # type: ignore[arg-type]
    return out


def _ages_kept(supports: list[Support], answer: str, facts: Sequence[str]) -> list[Support]:
    """A number the answer gives as an age is stated only by a fact that gives it as an age: "Sixteen
    years had Miss Taylor been in the family" does not make her "sixteen years old" (the embedded
    model's answer on Emma). A computed age (a gap between two years) and an echo of the question stand."""
    asked = _ages(answer)
    if not asked:
        return supports
    stated = {value for f in facts for value, _, _ in _ages(f)}
    out = []
    for s in supports:
        spec = s.specific
        if s.how == "stated" and spec.kind == "number" and any(a <= spec.start < b for _, a, b in asked):
            if not any(_close(v, spec.value, spec.tolerance) for v in stated):  # type: ignore[arg-type]
                s = Support(spec, "")
        out.append(s)
    return out


def _name_against(support: Support, facts: Sequence[str]) -> Support:
    """An unsupported one-word name of a closed class ("Saturday" where the facts say "Thursday"),
    marked with the facts' word that contradicts it."""
    if support.ok or support.specific.kind != "name" or len(support.specific.words) != 1:
        return support
    against = contradiction(support.specific.words[0], list(facts))
    return replace(support, against=against) if against else support


def _class_word_supports(text: str, facts: Sequence[str], question: str, taken: Sequence[Specific], *, affirms: bool, where: int = 0) -> list[Support]:
    """Words of closed classes (colours, materials, trades, places, animals...) in `text`: each is
    checked for a contradiction by the facts (ctxagent.word_classes). A word the answer only echoes
    from the question is the user's, unless the answer affirms the question (a yes/no question
    answered without a negation), or the question offers it as one of several of its class ("blue
    or green?"). A word the facts state is recorded with them; one the facts neither state nor
    contradict is not judged (a paraphrase may name what the facts describe). Capitalised words
    inside a sentence belong to names ("Mr Green"), judged as names."""
    asked = {w.lower(): classes_of(w) for w, _, _ in class_words(question)}
    affirming = affirms or (bool(_YES_NO.search(question)) and not _NEGATION.search(text))
    out: list[Support] = []
    fact_words = [_words_of(f) for f in facts]
    for word, start, end in class_words(text):
        if _overlaps(start, end, taken) or (word[0].isupper() and not _at_sentence_start(text, start)):
            continue
        low = word.lower()
        if low in asked and not affirming:
            rivals = sum(1 for w, groups in asked.items() if w != low and {c for c, _ in groups} & {c for c, _ in asked[low]})
            if not rivals:
                continue
        spec = Specific("word", word, where + start, where + end, words=(low,))
        stated = [i for i, words in enumerate(fact_words) if low in words or plain_word(low) in words]
        if stated:
            out.append(Support(spec, "stated", tuple(stated[:1])))
            continue
        against = contradiction(word, list(facts))
        if against:
            out.append(Support(spec, "", against=against))
    return out


def _support(spec: Specific, source: _Source, echo: _Source, operands: Sequence[_Number], derive: int, echo_allowed: bool = True) -> Support:
    """How `source` (the facts) supports one specific; `echo` is the question text it may merely repeat;
    `derive`: how many numbers an unshown computation may combine (`_derivation`)."""
    if spec.kind == "number":
        hits = [i for i in _literal(spec, source.numbers) if i >= 0]
        if hits:
            return Support(spec, "stated", tuple(hits[:1]))
        if echo_allowed and _literal(spec, echo.numbers):
            return Support(spec, "question")
        computed = _computed(spec, operands, derive)
        if computed:
            return Support(spec, computed[0], tuple(i for i in computed[1] if i >= 0))
        hits = [n.fact for n in operands if n.fact in (-2, _COUNT_OF_FACTS) and _close(n.value, spec.value, spec.tolerance)]  # type: ignore[arg-type]
        if _COUNT_OF_FACTS in hits:
            return Support(spec, "count of the facts", tuple(range(len(source.words))))
        if hits:
            return Support(spec, "a result of the arithmetic shown")
        return Support(spec, "")
    if spec.kind == "date":
        return _date_support(spec, source, echo if echo_allowed else _Source(), operands, derive)
    # A name of two or more words is stated only as that name, its words together and in order, in one
    # fact (or in the question, a name the user gave): words spread over the facts ("European" in one,
    # "Council" in another, where the facts name the "European Commission") name nothing (issue 25).
    if is_phrase_name(spec.words):
        for i, sequence in enumerate(source.sequences):
            if name_in(spec.words, sequence):
                return Support(spec, "stated", (i,))
        if echo_allowed and echo.sequences and name_in(spec.words, echo.sequences[0]):
            return Support(spec, "question")
        return Support(spec, "")
    for i, words in enumerate(source.words):
        if all(w in words or plain_word(w) in words for w in spec.words):
            return Support(spec, "stated", (i,))
    if echo_allowed and echo.words and all(w in echo.words[0] or plain_word(w) in echo.words[0] for w in spec.words):
        return Support(spec, "question")
    return Support(spec, "")


def _date_support(spec: Specific, source: _Source, echo: _Source, operands: Sequence[_Number], derive: int) -> Support:
    year, month, day = spec.date  # type: ignore[misc]
    for where, dates in (("stated", source.dates), ("question", echo.dates)):
        for (f_year, f_month, f_day), index in dates:
            if f_month != month or (day is not None and f_day != day):
                continue
            if year is None or f_year == year:
                return Support(spec, where, (index,) if index >= 0 else ())
            year_spec = Specific("number", str(year), spec.start, spec.end, value=float(year), mantissa=float(year))
            stated = [i for i in _literal(year_spec, source.numbers) if i >= 0]
            if f_year is None and stated:
                return Support(spec, where, tuple(i for i in (index, stated[0]) if i >= 0))
            computed = _computed(year_spec, operands, derive)
            if computed:
                return Support(spec, f"date with its year as the {computed[0]}", tuple(i for i in (index, *computed[1]) if i >= 0))
    return Support(spec, "")
