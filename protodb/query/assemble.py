"""Assemble a pinned vocabulary into prototype tensors for matching.

fg rows per class, a background class made of the union of the classes' bg rows, and the stuff
filter (REFERENCE 1.8): stuff classes give no bg rows, and a thing's bg row too close to a stuff
class's fg rows is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protodb.bank.store import Bank
from protodb.bank.vocab import VocabExtractor, Vocabulary, class_kinds

LEVEL_ORDER = {"class": 0, "instance": 1, "part": 2}


@dataclass
class ExtractorPrototypes:
    """One extractor's prototypes of a vocabulary, ready for matching.

    vectors: float32 [P, D], L2-normalised; owner: int64 [P], the label each row votes for
    (0 = background, i = i-th class); rows: per-row metadata (class_key, polarity, level, part,
    support) for explanations; source: int64 [P], the class a row came from (a bg row's class;
    None: ``owner``, i.e. bg rows of no class); stuff: bool [1 + C], which labels are stuff
    classes (None: none; index 0, the background, is never stuff).
    """

    extractor: VocabExtractor
    vectors: np.ndarray
    owner: np.ndarray
    rows: list[dict] = field(default_factory=list)
    source: np.ndarray | None = None
    stuff: np.ndarray | None = None

    def take(self, keep: np.ndarray | list[int]) -> ExtractorPrototypes:
        """The rows ``keep`` (indices, in order), metadata included."""
        keep = np.asarray(keep, dtype=np.int64)
        return ExtractorPrototypes(
            self.extractor,
            self.vectors[keep],
            self.owner[keep],
            [self.rows[i] for i in keep] if self.rows else [],
            None if self.source is None else self.source[keep],
            self.stuff,
        )


def assemble(bank: Bank, vocab: Vocabulary) -> list[ExtractorPrototypes]:
    """Load the vocabulary's pinned prototypes: fg rows per class, and a background class made
    of the union of the bg rows of all its classes (each bg row remembers its class in
    ``source``, so a segmentation can keep only the bg rows of the classes it kept). Row order
    is deterministic. Class kinds are the vocabulary's pinned kinds (:func:`class_stuff`); a
    kind other than "stuff" ("thing" or "unknown") counts as a thing. The query-time selection
    (levels, background, stuff filtering) is :func:`protodb.query.segment.select_rows`."""
    keys = {c.class_key: i + 1 for i, c in enumerate(vocab.classes)}
    pinned = {(c.class_key, c.generator_id, c.seed) for c in vocab.classes}
    stuff = class_stuff(bank, vocab)
    out = []
    for ext in vocab.extractors:
        vectors, meta_table = bank.load_prototypes(
            ext.prototype_table,
            ext.extractor_id,
            [c.set_key() for c in vocab.classes],
            vocab.versions.get(ext.prototype_table),
            sets_version=vocab.versions.get("sets"),
        )
        vectors = vectors.astype(np.float32)
        meta = meta_table.to_pylist()
        order = [
            i
            for i in sorted(
                range(len(meta)),
                key=lambda i: (
                    meta[i]["polarity"] != "bg",
                    keys[meta[i]["class_key"]],
                    LEVEL_ORDER[meta[i]["level"]],
                    meta[i]["part"],
                    meta[i]["support"],
                ),
            )
            if (meta[i]["class_key"], meta[i]["generator_id"], meta[i]["seed"]) in pinned
        ]
        vectors = vectors[order]
        rows = [meta[i] for i in order]
        owner = np.array(
            [0 if r["polarity"] == "bg" else keys[r["class_key"]] for r in rows], dtype=np.int64
        )
        source = np.array([keys[r["class_key"]] for r in rows], dtype=np.int64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
        out.append(ExtractorPrototypes(ext, vectors.astype(np.float32), owner, rows, source, stuff))
    return out


def class_stuff(bank: Bank, vocab: Vocabulary) -> np.ndarray:
    """bool [1 + C]: label i is a stuff class, by the kinds the vocabulary pinned
    (protodb.bank.vocab.class_kinds: a vocabulary made before kinds were pinned reads the
    classes table at its pinned version; "thing" and "unknown" are things). Index 0 is False."""
    return np.array([False] + [kind == "stuff" for kind, _ in class_kinds(bank, vocab)])


def filter_stuff(p: ExtractorPrototypes, threshold: float = 0.85) -> ExtractorPrototypes:
    """Stuff / thing filtering of one extractor's rows (REFERENCE 1.8).

    Stuff classes give no bg rows; a thing class's bg row whose cosine to any stuff class's fg
    row exceeds ``threshold`` is dropped, unless the class has <= 1 bg row. Needs ``source``
    and ``stuff``; without stuff classes the rows are returned unchanged.
    """
    if p.stuff is None or not p.stuff.any() or p.source is None:
        return p
    bg = p.owner == 0
    stuff_row = p.stuff[p.source]
    drop = bg & stuff_row
    stuff_fg = ~bg & stuff_row
    counts = np.bincount(p.source[bg], minlength=len(p.stuff))
    candidates = bg & ~stuff_row & (counts[p.source] > 1)
    if stuff_fg.any() and candidates.any():
        sims = p.vectors[candidates] @ p.vectors[stuff_fg].T
        close = np.zeros(len(p.owner), dtype=bool)
        close[np.flatnonzero(candidates)] = (sims > threshold).any(axis=1)
        drop |= close
    if not drop.any():
        return p
    return p.take(np.flatnonzero(~drop))
