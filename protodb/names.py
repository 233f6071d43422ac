"""Canonical class names.

A class is its canonical text: Unicode NFC, whitespace collapsed, case kept for display and
compared case-insensitively (the *key* is the casefolded canonical text).
"""

from __future__ import annotations

import re
import unicodedata

from protodb.errors import ProtodbError

_WS = re.compile(r"\s+")
MAX_CLASS_LEN = 200
# characters a reader cannot see or that change how text around them shows (control, format
# such as bidi overrides and zero-width marks, lone surrogates): never part of a class name
UNSEEN = {"Cc": "control characters", "Cf": "format characters", "Cs": "surrogates"}


def canonical(name: str) -> str:
    """Return the display form of a class name: NFC, whitespace collapsed and stripped.

    Raises ProtodbError for an empty or over-long name, or one with control, format (bidi,
    zero-width) or surrogate characters.
    """
    text = _WS.sub(" ", unicodedata.normalize("NFC", str(name))).strip()
    if not text:
        raise ProtodbError(f"empty class name {name!r}: give a non-empty name such as 'red apple'")
    if len(text) > MAX_CLASS_LEN:
        raise ProtodbError(
            f"class name {text[:40]!r}... is {len(text)} characters long; "
            f"use at most {MAX_CLASS_LEN}"
        )
    bad = [c for c in text if unicodedata.category(c) in UNSEEN]
    if bad:
        what = sorted({UNSEEN[unicodedata.category(c)] for c in bad})
        raise ProtodbError(
            f"class name {text.encode('unicode_escape').decode()!r} contains {' and '.join(what)} "
            f"({', '.join(f'U+{ord(c):04X}' for c in bad[:4])}); remove them"
        )
    return text


def class_key(name: str) -> str:
    """Return the comparison key of a class name (canonical text, casefolded)."""
    return canonical(name).casefold()
