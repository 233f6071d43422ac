"""The subject of a referring expression: its head noun, the word whose cross-attention is read.

Ref-Diff takes the first token whose spaCy dependency label is ROOT or contains "subj"
(REFERENCE 2). protodb finds it without a download:

- ``rules``: a rule-based head-noun finder over the lower-cased words. The head phrase ends at
  the first preposition, relative word, conjunction or post-nominal verb ("on", "with", "that",
  "holding", "sitting", ...) once a noun has been seen; within it, determiners, numbers,
  ordinals, colours and size / position / other adjectives are skipped, and the last remaining
  word is the head ("the far left tennis player" -> "player"). A partitive head followed by "of"
  gives way to the noun after it ("a slice of pizza" -> "pizza", where a parser says "slice"),
  and a possessive ("woman's bag") is a modifier. With no noun at all ("left", "far right") the
  last content word is the subject, else the whole expression.
- ``spacy``: the reference's rule on a spaCy parse, used when ``spacy`` and an English model
  (``en_core_web_sm``, ``_md``, ``_lg`` or ``_trf``) import; never downloaded.
- ``override``: a word of the expression the caller names (``--subject``).

:func:`find_subject` says which was used in ``Subject.method``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from protodb.errors import ProtodbError

METHODS = ("auto", "rules", "spacy")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


SPACY_MODELS = ("en_core_web_sm", "en_core_web_md", "en_core_web_lg", "en_core_web_trf")

DETERMINERS = _words(
    "the a an this that these those his her its their my your our some any each every all both "
    "another other others no"
)
NUMBERS = _words(
    "two three four five six seven eight nine ten first second third fourth fifth sixth last "
    "1st 2nd 3rd 4th 5th 6th 1 2 3 4 5 6 7 8 9 10 only single double"
)
COLOURS = _words(
    "red blue green yellow white black brown grey gray orange pink purple violet dark light "
    "tan beige silver gold golden navy maroon teal cyan turquoise bright pale colorful colourful "
    "striped plaid spotted checkered blond blonde"
)
ADJECTIVES = _words(
    "left right leftmost rightmost top bottom middle center centre central front back far near "
    "closest nearest closer nearer farthest furthest big bigger biggest large larger largest "
    "small smaller smallest little tiny huge giant tall taller tallest short shorter shortest "
    "long longer old older oldest young younger youngest upper lower empty full whole half "
    "partial blurry cut visible hidden new round square wooden metal plastic glass open closed "
    "hot cold wet dry fat thin skinny happy sad other same different lone single pretty ugly "
    "lit clear dirty clean main entire"
)
# words that end the head phrase once a noun was seen
BOUNDARIES = _words(
    "in on with at by near next behind beside besides under underneath below beneath above "
    "over from to that who which whose where when while and or but between against across "
    "inside outside into onto toward towards without has have having is are was were "
    "facing like than along around through via for"
)
PARTITIVES = _words(
    "piece pieces slice slices half bunch group pile stack side part top bottom front back "
    "corner edge end row pair plate bowl cup glass box bag bottle"
)
# nouns that end in -ing / -ed (not verbs)
ING_NOUNS = _words(
    "building buildings ceiling painting paintings clothing thing things king ring rings wing "
    "wings string evening sibling siblings pudding stocking stockings ping icing railing "
    "railings awning frosting topping toppings filling sling swing swings dumpling "
    "dumplings sapling earring earrings"
)

_WORD = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*")


@dataclass(frozen=True)
class Subject:
    """The subject word, where it is in the expression (``expression[start:end] == word``, as
    written) and how it was found: "rules", "rules (no noun)", "expression", "spacy:<model>" or
    "override"."""

    word: str
    start: int
    end: int
    method: str


def _modifier(w: str) -> bool:
    return (
        w in DETERMINERS
        or w in NUMBERS
        or w in COLOURS
        or w in ADJECTIVES
        or w.endswith(("'s", "’s"))
        or bool(re.fullmatch(r"\d+(st|nd|rd|th)?", w))
    )


def _verbish(w: str) -> bool:
    return w not in ING_NOUNS and len(w) > 4 and w.endswith(("ing", "ed"))


def rule_subject(expression: str) -> Subject:
    """The head noun by the rules of the module docstring."""
    words = [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(expression)]
    head: tuple[str, int, int] | None = None
    fallback: tuple[str, int, int] | None = None
    for word, start, end in words:
        w = word.lower()
        if w == "of":
            if head is not None and head[0].lower() in PARTITIVES:
                head = None  # "slice of pizza": the head is after "of"
                continue
            if head is not None:
                break
            continue
        if w in BOUNDARIES:
            if head is not None:
                break
            continue
        if _verbish(w):
            if head is not None:
                break
            continue  # "sitting woman": a modifier before the noun
        if _modifier(w):
            if w not in DETERMINERS:
                fallback = (word, start, end)
            continue
        head = (word, start, end)
    if head is not None:
        return Subject(head[0], head[1], head[2], "rules")
    if fallback is not None:
        return Subject(fallback[0], fallback[1], fallback[2], "rules (no noun)")
    text = expression.strip()
    start = expression.index(text) if text else 0
    return Subject(text, start, start + len(text), "expression")


@functools.lru_cache(maxsize=1)
def spacy_model():
    """A loaded spaCy English pipeline and its name, or None when spaCy or every English model
    is missing (nothing is downloaded)."""
    try:
        import spacy
    except ImportError:
        return None
    for name in SPACY_MODELS:
        try:
            return spacy.load(name), name
        except (OSError, ImportError):
            continue
    return None


def spacy_subject(expression: str) -> Subject | None:
    """The reference's rule on a spaCy parse: the first token whose dependency label is ROOT or
    contains "subj"; None when spaCy is unavailable."""
    loaded = spacy_model()
    if loaded is None:
        return None
    nlp, name = loaded
    for tok in nlp(expression):
        if tok.dep_ == "ROOT" or "subj" in tok.dep_:
            return Subject(tok.text, tok.idx, tok.idx + len(tok.text), f"spacy:{name}")
    text = expression.strip()
    start = expression.index(text) if text else 0
    return Subject(text, start, start + len(text), "expression")


def find_subject(expression: str, *, method: str = "auto", override: str | None = None) -> Subject:
    """The subject of ``expression``.

    ``override``: a word (or words) of the expression to use as is; its first whole-word
    occurrence (case-insensitive) is taken. ``method``: "auto" (spaCy when an English model is
    installed, else the rules), "rules" or "spacy" (an error when spaCy is unavailable).
    """
    if not expression.strip():
        raise ProtodbError("the expression is empty; pass the words that describe the region")
    if override is not None:
        word = override.strip()
        m = re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", expression, re.IGNORECASE)
        if not word or m is None:
            raise ProtodbError(
                f"--subject {override!r} is not a word of the expression {expression!r}; name "
                "one of its words (its attention is read from the expression's tokens)"
            )
        return Subject(m.group(0), m.start(), m.end(), "override")
    if method not in METHODS:
        raise ProtodbError(f"subject method {method!r} is unknown; use one of {', '.join(METHODS)}")
    if method in ("auto", "spacy"):
        found = spacy_subject(expression)
        if found is not None:
            return found
        if method == "spacy":
            raise ProtodbError(
                "subject method 'spacy' needs spaCy and an English model (pip install spacy; "
                "python -m spacy download en_core_web_sm); or use the rules (--subject-method "
                "rules)"
            )
    return rule_subject(expression)
