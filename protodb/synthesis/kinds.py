"""Stuff or thing: the kind of a class, decided once and stored with its source.

Order (REFERENCE 1.8; no chat model needed): the user's flag (``--stuff`` / ``--thing``, source
"user"), else the shipped lexicon ``schemas/stuff_thing.json`` (COCO-Stuff, PASCAL Context and
ADE20K stuff names, COCO and VOC thing names; source "lexicon"), else an automatic guess from
the support set's foreground masks (source "auto"):

    area   = mean over images of the fg fraction of the image
    border = mean over images of the fraction of border pixels that are fg
    stuff  if area >= 0.45 and border >= 0.5, else thing

Stuff (sky, grass, road) fills the frame and runs off its edges; things sit inside it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

from protodb.errors import ProtodbError
from protodb.names import class_key

KINDS = ("stuff", "thing")
AUTO_AREA = 0.45
AUTO_BORDER = 0.5


@dataclass(frozen=True)
class KindDecision:
    """kind: "stuff" | "thing"; source: "user" | "lexicon" | "auto"; detail: why (for humans)."""

    kind: str
    source: str
    detail: str = ""


def _variants(name: str) -> list[str]:
    """Lookup keys of a lexicon name: as published, without -other/-stuff, dash as space."""
    key = class_key(name.replace("_", " "))
    out = [key]
    base = key.removesuffix("-other").removesuffix("-stuff")
    out.append(base)
    if "-" in base:
        head, _, tail = base.partition("-")
        out += [f"{tail} {head}", f"{head} {tail}", head]
    return list(dict.fromkeys(out))


@functools.lru_cache(maxsize=1)
def lexicon() -> dict[str, tuple[str, str]]:
    """class key -> (kind, list name) from ``schemas/stuff_thing.json``; stuff wins over thing,
    and within a kind the first list that names it is the one recorded."""
    text = resources.files("protodb.schemas").joinpath("stuff_thing.json").read_text("utf-8")
    data = json.loads(text)
    table: dict[str, tuple[str, str]] = {}
    for kind in ("thing", "stuff"):  # stuff last: it overrides
        for source, names in data[kind].items():
            for name in names:
                for v in _variants(name):
                    if v not in table or (kind == "stuff" and table[v][0] == "thing"):
                        table[v] = (kind, source)
    return table


def lexicon_kind(name: str) -> tuple[str, str] | None:
    """(kind, list name) for a class name: the whole name, else its last word ("red apple" ->
    "apple"), or None if the lexicon does not know it."""
    table = lexicon()
    key = class_key(name)
    if key in table:
        return table[key]
    last = key.split()[-1] if key.split() else key
    return table.get(last)


def guess_kind(fg: np.ndarray) -> KindDecision:
    """The automatic guess from fg masks bool [N, H, W] (see the module docstring)."""
    fg = np.asarray(fg, bool)
    if fg.ndim != 3 or not fg.size:
        raise ProtodbError(f"fg masks must be bool [N, H, W] with N >= 1, got shape {fg.shape}")
    area = float(fg.mean())
    border = np.concatenate(
        [fg[:, 0, :], fg[:, -1, :], fg[:, 1:-1, 0], fg[:, 1:-1, -1]], axis=1
    ).mean()
    kind = "stuff" if area >= AUTO_AREA and border >= AUTO_BORDER else "thing"
    return KindDecision(kind, "auto", f"fg area {area:.2f}, border contact {float(border):.2f}")


def decide_kind(name: str, user: str | None = None, fg: np.ndarray | None = None) -> KindDecision:
    """User flag > lexicon > automatic guess from ``fg`` (bool [N, H, W]); "unknown"/"none" when
    none applies (no flag, not in the lexicon, no masks)."""
    if user is not None:
        if user not in KINDS:
            raise ProtodbError(f"kind {user!r} is not one of stuff, thing")
        return KindDecision(user, "user")
    found = lexicon_kind(name)
    if found is not None:
        return KindDecision(found[0], "lexicon", found[1])
    if fg is not None:
        return guess_kind(fg)
    return KindDecision("unknown", "none")
