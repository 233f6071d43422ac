"""The class list a bank holds, as ``protodb ls`` and ``protodb show`` print it.

Reads only: :func:`class_infos` takes a :class:`protodb.bank.store.Bank` or the quick
:class:`protodb.bank.readonly.BankReader` (both have ``classes()`` and ``sets()``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from protodb.errors import NotFoundError
from protodb.extractors.base import ExtractorConfig, known_issue
from protodb.names import canonical, class_key

#: the columns of a ``sets`` row that a ClassInfo's set dict carries as they are
SET_KEYS = (
    "generator_id",
    "seed",
    "extractor_id",
    "recipe_id",
    "n",
    "n_used",
    "n_fg",
    "n_bg",
    "dim",
    "mask_source",
    "thresholds",
)


@dataclass
class ClassInfo:
    """A class in the bank with its completed prototype sets (one dict per set: generator_id,
    seed, extractor_id, recipe_id, recipe (its config, a dict: mask_source, mask, n, parts,
    levels), n, n_used, n_fg, n_bg, dim, mask_source, thresholds, and known_issue:
    why the set's features are known to be wrong, e.g. CLIP built before the QuickGELU fix, or
    None)."""

    name: str
    class_key: str
    kind: str
    kind_source: str
    sets: list[dict] = field(default_factory=list)


def class_infos(bank) -> list[ClassInfo]:
    """The classes of a bank (a Bank or a BankReader), by class key, with their sets."""
    sets = bank.sets().to_pylist()
    out = []
    for row in sorted(bank.classes().to_pylist(), key=lambda r: r["class_key"]):
        mine = [set_dict(s) for s in sets if s["class_key"] == row["class_key"]]
        out.append(ClassInfo(row["name"], row["class_key"], row["kind"], row["kind_source"], mine))
    return out


def find_class(infos: list[ClassInfo], name: str) -> ClassInfo:
    """The ClassInfo of class ``name`` (any spelling of its key) among ``infos``."""
    key = class_key(name)
    for info in infos:
        if info.class_key == key:
            return info
    raise NotFoundError(
        f"class {canonical(name)!r} is not in the bank; add it: protodb add {canonical(name)!r}"
    )


def set_dict(row: dict) -> dict:
    """One ``sets`` row as ClassInfo.sets lists it: SET_KEYS, the recipe parsed, known_issue."""
    out = {k: row[k] for k in SET_KEYS}
    out["recipe"] = json.loads(row["recipe"]) if row.get("recipe") else None
    out["known_issue"] = known_issue(ExtractorConfig.from_json(row["extractor_config"]))
    return out
