"""What to draw: prompts and their named entities.

A :class:`Composition` is a prompt with the character span of every vocabulary class it names.
From a vocabulary (:func:`sample_compositions`): for each class, ``per_class`` compositions that
contain it, each of one to three things on a stuff class (a thing anchor gets zero to two other
things and one stuff class; a stuff anchor gets one to three things), drawn by a generator
seeded by (anchor class, seed, index) only. The prompt is ``"a red disc and a yellow star on
grass"`` (things joined by " and ", each with an article, then " on <stuff>"): the caption form
the learned test world was trained on. A vocabulary without stuff gives things alone, one
without things gives the stuff class alone.

Prompts given directly (:func:`parse_prompt`): every vocabulary class named in the text (whole
words, case-insensitive, the longest name first where names overlap) is an entity.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from protodb.errors import ProtodbError
from protodb.names import class_key

MAX_THINGS = 3


@dataclass(frozen=True)
class Entity:
    """A vocabulary class named in a prompt: ``label`` is its 1-based vocabulary label;
    ``spans`` the (start, stop) character spans where the prompt names it (a class named twice
    is one entity with two spans)."""

    name: str
    label: int
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Composition:
    """One prompt to draw. ``slot``: what keys its images (the anchor class key and index for
    sampled compositions, ``"prompt"`` for given prompts); ``index``: the image's index in that
    slot."""

    prompt: str
    entities: tuple[Entity, ...]
    slot: str
    index: int
    anchor: str | None = None
    kinds: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


def build_prompt(things: Sequence[str], stuff: str | None, labels: dict[str, int]) -> tuple:
    """(prompt, entities) for ``things`` on ``stuff`` (see the module docstring)."""
    text, spans = "", {}
    for i, name in enumerate(things):
        if i:
            text += " and "
        text += article(name) + " "
        spans[name] = ((len(text), len(text) + len(name)),)
        text += name
    if stuff is not None:
        if text:
            text += " on "
        spans[stuff] = ((len(text), len(text) + len(stuff)),)
        text += stuff
    entities = tuple(
        Entity(n, labels[class_key(n)], spans[n])
        for n in (*things, *([stuff] if stuff is not None else []))
    )
    return text, entities


def _rng(anchor_key: str, seed: int, index: int) -> np.random.Generator:
    digest = hashlib.sha256(f"synth-compose\x1f{anchor_key}\x1f{seed}\x1f{index}".encode())
    return np.random.default_rng(int.from_bytes(digest.digest()[:8], "little"))


def sample_compositions(
    classes: Sequence[str], kinds: Sequence[str], per_class: int, seed: int = 0
) -> list[Composition]:
    """``per_class`` compositions per class of ``classes`` (vocabulary order, label i + 1),
    each containing that class (see the module docstring). ``kinds``: "thing" or "stuff" per
    class. The composition of (class, index) depends only on the class list, kinds, seed and
    index, never on ``per_class``: growing ``per_class`` keeps the images already made."""
    if per_class < 1:
        raise ProtodbError(f"--per-class {per_class} must be >= 1")
    labels = {class_key(c): i + 1 for i, c in enumerate(classes)}
    things = [c for c, k in zip(classes, kinds, strict=True) if k != "stuff"]
    stuffs = [c for c, k in zip(classes, kinds, strict=True) if k == "stuff"]
    out = []
    for anchor, kind in zip(classes, kinds, strict=True):
        for i in range(per_class):
            rng = _rng(class_key(anchor), seed, i)
            if kind == "stuff":
                n = int(rng.integers(1, MAX_THINGS + 1)) if things else 0
                picked = [things[j] for j in rng.permutation(len(things))[:n]]
                stuff = anchor
            else:
                others = [t for t in things if t != anchor]
                n = int(rng.integers(0, MAX_THINGS))
                picked = [anchor, *(others[j] for j in rng.permutation(len(others))[:n])]
                picked = [picked[j] for j in rng.permutation(len(picked))]
                stuff = stuffs[int(rng.integers(len(stuffs)))] if stuffs else None
            prompt, entities = build_prompt(picked, stuff, labels)
            out.append(Composition(prompt, entities, f"class:{class_key(anchor)}", i, anchor))
    return out


def parse_prompt(prompt: str, classes: Sequence[str], *, index: int = 0) -> Composition:
    """The entities of a prompt given by the user: every class of ``classes`` it names."""
    text = " ".join(str(prompt).split())
    if not text:
        raise ProtodbError(
            "--prompt is empty; give a prompt naming vocabulary classes, "
            "e.g. --prompt 'a red disc on grass'"
        )
    taken = np.zeros(len(text), bool)
    found: dict[str, list[tuple[int, int]]] = {}
    for name in sorted(classes, key=len, reverse=True):
        pattern = r"(?<![\w])" + re.escape(name) + r"(?![\w])"
        for m in re.finditer(pattern, text, flags=re.IGNORECASE):
            if taken[m.start() : m.end()].any():
                continue
            taken[m.start() : m.end()] = True
            found.setdefault(name, []).append((m.start(), m.end()))
    if not found:
        raise ProtodbError(
            f"prompt {text!r} names no class of the vocabulary ({', '.join(classes)}); "
            "name at least one of them"
        )
    labels = {c: i + 1 for i, c in enumerate(classes)}
    entities = tuple(
        Entity(n, labels[n], tuple(sorted(found[n])))
        for n in sorted(found, key=lambda n: min(found[n]))
    )
    return Composition(text, entities, "prompt", index)


def read_prompts(path) -> list[str]:
    """The prompts of a text file: one a line, blank lines and lines starting with # skipped."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ProtodbError(f"--from {str(p)!r} is not a file; give a text file, one prompt a line")
    lines = [ln.strip() for ln in p.read_text("utf-8").splitlines()]
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise ProtodbError(f"--from {str(p)!r} holds no prompt; write one prompt a line")
    return prompts
