"""Which lines of a web or wiki page are the page's furniture, not its content?

Reference lists ("Jump up ^ ...", "Retrieved 2011-07-12."), "[edit]" headings, tables of
contents, navigation menus, category lists and licence footers ("Text is available under
the Creative Commons ...") share words with almost any question about the page, so
evidence selection picked them: for 12 of 25 Natural Questions over Wikipedia pages, the
evidence read included reference-list lines (issue 25). They are recognised here, by
line, in two ways:

- a line that is furniture wherever it stands (`is_boilerplate`): a back-link, a
  "Retrieved ..." citation, an "[edit]" heading, a licence or "last edited" footer, a
  numbered table-of-contents entry, a bare "Contents" or "Categories:" line;
- the lines of a trailing section that holds no prose ("References", "Notes", "See also",
  "External links", "Further reading", "Bibliography", "Sources", "Navigation menu"), up
  to the next heading of another kind.

`boilerplate_spans(text)` gives their character spans, so evidence selection can pass
over them while content sentences exist (recipes/evidence.py) and nothing is removed
from the text that citations quote. The HTML loader also drops MediaWiki's own chrome by
its markup (loaders.py); these rules are for what arrives as text.
"""

from __future__ import annotations

import re
from functools import lru_cache

_FURNITURE = re.compile(
    r"""^[\W\d]*(?:\^\s*)?(?:jump\s+up\b|\^\s*(?:jump|[a-z]\s+[a-z]\b))          # back-links of a reference list
    |\bretrieved\s+(?:on\s+)?(?:\d{4}-\d\d-\d\d|\d{1,2}\s+[a-z]+\s+\d{4}|[a-z]+\s+\d{1,2},?\s+\d{4})  # "Retrieved 2014-02-15", "Retrieved June 4, 2014"
    |\bretrieved\s+from\s+["“'`]*https?:
    |\barchived\s+from\s+the\s+original\b
    |\[\s*edit\s*\]\s*$
    |text\s+is\s+available\s+under\s+the\s+creative\s+commons
    |\badditional\s+terms\s+may\s+apply\b
    |\bthis\s+page\s+was\s+last\s+(?:edited|modified)\b
    |\bwikipedia®?\s+is\s+a\s+registered\s+trademark\b
    |^\W*from\s+wikipedia,\s+the\s+free\s+encyclopedia\W*$
    |^\W*jump\s+to:?\s*(?:navigation|search|content)
    |^\W*(?:contents|navigation\s+menu|personal\s+tools|hidden\s+categories|categories)\s*(?:\[\s*(?:hide|show)\s*\])?\s*:?\s*$
    |^\W*(?:hidden\s+)?categories\s*:
    |\bisbn(?:-1[03])?:?\s*[\d-]{9,}
    |\bdoi:\s*10\.\d
    """,
    re.IGNORECASE | re.VERBOSE,
)
# "1 History", "3.2 Firefox Mobile": a numbered heading alone on its line, as tables of contents list them.
_TOC_LINE = re.compile(r"^\s*\d+(?:\.\d+)*\s+[A-Z][^.!?]{0,60}$")
# Sections that hold apparatus, not prose.
_APPARATUS = re.compile(
    r"^\W*(?:references|notes|notes\s+and\s+references|footnotes|citations|see\s+also|external\s+links|further\s+reading|bibliography|sources|works\s+cited|navigation\s+menu)\W*(?:\[\s*edit\s*\])?\s*$",
    re.IGNORECASE,
)
# A heading: a short line without sentence punctuation at its end (or one marked "[edit]").
_HEADING = re.compile(r"^\s*(?:#{1,6}\s*)?[^\n.!?]{1,60}?(?:\[\s*edit\s*\])?\s*$")
# A line of prose: long enough, and ending like a sentence.
_PROSE = re.compile(r"[a-z].{60,}[.!?][\"”')\]]*\s*$")


def is_boilerplate(line: str) -> bool:
    """Is this line page furniture wherever it stands (a back-link, a "Retrieved" citation, a footer...)?"""
    return bool(_FURNITURE.search(line) or _TOC_LINE.match(line))


def boilerplate_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the lines of `text` that are furniture, merged, in order."""
    return list(_spans(text))


@lru_cache(maxsize=32)
def _spans(text: str) -> tuple[tuple[int, int], ...]:
    spans: list[tuple[int, int]] = []
    in_apparatus = False
    pos = 0
    for line in text.splitlines(keepends=True):
        start, end = pos, pos + len(line.rstrip("\n"))
        pos += len(line)
        body = line.strip()
        if not body:
            continue
        if _APPARATUS.match(body):
            in_apparatus = True
        elif in_apparatus and _HEADING.match(body) and not is_boilerplate(body) and _looks_like_section(body):
            in_apparatus = False
        # Inside an apparatus section, a line of prose that is not a list entry stays content (a
        # "Notes" section of a report may hold real notes); entries and short link lines do not.
        apparatus_line = in_apparatus and (_is_entry(body) or not _PROSE.search(body))
        if apparatus_line or is_boilerplate(body):
            if spans and text[spans[-1][1] : start].strip() == "":
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
    return tuple(spans)


def _looks_like_section(line: str) -> bool:
    """A heading that opens a content section again (marked "[edit]", or a markdown heading)."""
    return bool(re.search(r"\[\s*edit\s*\]\s*$", line) or line.lstrip().startswith("#"))


def _is_entry(line: str) -> bool:
    """A line of a reference or link list: a citation ("Author (2002). Title. Publisher."), or a
    link with a gloss ("BLEVE Demo on YouTube — video of ...")."""
    return bool(re.search(r"\(\d{4}\)|\b(?:pp?\.|vol\.|ed\.)\s*\d|\s[—–-]\s|\bon youtube\b|[\"“].+[\"”]\.", line, re.IGNORECASE))


def in_spans(start: int, end: int, spans: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> bool:
    """Does most of [start, end) lie inside the spans?"""
    inside = sum(max(0, min(end, b) - max(start, a)) for a, b in spans)
    return inside * 2 > max(1, end - start)
