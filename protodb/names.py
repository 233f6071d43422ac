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


def canonical(name: str) -> str:
    """Return the display form of a class name: NFC, whitespace collapsed and stripped.

    Raises ProtodbError for an empty or over-long name.
    """
    text = _WS.sub(" ", unicodedata.normalize("NFC", str(name))).strip()
    if not text:
        raise ProtodbError(f"empty class name {name!r}: give a non-empty name such as 'red apple'")
    if len(text) > MAX_CLASS_LEN:
        raise ProtodbError(
            f"class name {text[:40]!r}... is {len(text)} characters long; "
            f"use at most {MAX_CLASS_LEN}"
        )
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise ProtodbError(f"class name {text!r} contains control characters; remove them")
    return text


def class_key(name: str) -> str:
    """Return the comparison key of a class name (canonical text, casefolded)."""
    return canonical(name).casefold()
