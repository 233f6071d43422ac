"""Prototype recipes: the record and id that make the fifth part of a prototype set's key.

A recipe is everything besides the support images and the extractor that changes a prototype
set, as a canonical JSON object::

    {"mask_source": "otsu", "mask": {...the source's thresholds / proposals config...},
     "n": 32, "parts": 32, "levels": ["class", "instance", "part"]}

and its id is ``<mask source>-<first 12 hex digits of the sha256 of that JSON>`` (keys sorted,
no spaces), e.g. ``otsu-1a2b3c4d5e6f``. The full recipe is stored beside the set (``sets.recipe``)
and an id is checked against it on import (:func:`check_recipe`).

The bank holds the record, the id and the recipes of sets built before recipe ids
(:func:`legacy_recipe`); the recipe of a set being built now, with the mask constants the mask
sources run with, is made by the write path (its ``make_recipe``).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from protodb.errors import ProtodbError

# What a set built before recipe ids was built with, and what a plain ``add`` still builds
# (tests/synthesis/test_recipe.py checks that protodb.synthesis.request's defaults agree).
# History, not settings: add's defaults live in protodb.synthesis.request.
LEGACY_PARTS = 32
PLAIN_MASK_SOURCE = "otsu"
LEVELS = ("class", "instance", "part")
RECIPE_ID = re.compile(r"[a-z0-9_]{1,32}-[0-9a-f]{12}")

# The mask configs ``add`` ran with when recipe ids came (schema 3), the constants of
# REFERENCE 1.3: a set built before recipe ids was built with these, so its recipe records
# them. History, not settings: they never change (tests check that a plain ``add`` today still
# makes these recipes).
_LEGACY_SELECT = {"fg_min": 0.5, "bg_max": 0.2, "erosion": "cross"}
LEGACY_MASK_CONFIGS: dict[str, dict[str, Any]] = {
    "otsu": {"classes": 3, "bins": 256, "fallback": [0.2, 0.5]},
    "maskcut": {"select": _LEGACY_SELECT, "proposals": {"tau": 0.15, "masks": 3, "input": 480}},
    "sam": {"select": _LEGACY_SELECT, "proposals": {"points": 16, "iou": 0.88, "dedupe": 0.7}},
}


@dataclass(frozen=True)
class Recipe:
    """A prototype recipe (module docstring). config: the canonical dict; id: its recipe id."""

    id: str
    config: dict

    @property
    def mask_source(self) -> str:
        return self.config["mask_source"]

    def to_json(self) -> str:
        return canonical_json(self.config)

    @classmethod
    def of(
        cls,
        mask_source: str,
        mask: dict[str, Any],
        n: int,
        parts: int = LEGACY_PARTS,
        levels: tuple[str, ...] = LEVELS,
    ) -> Recipe:
        """The recipe of a set built with mask source ``mask_source`` run with config ``mask``
        (its thresholds / proposals), ``n`` support images, K = ``parts`` and ``levels``."""
        config = {
            "mask_source": mask_source,
            "mask": mask,
            "n": int(n),
            "parts": int(parts),
            "levels": list(levels),
        }
        return cls(recipe_id(config), config)


def canonical_json(config: dict) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def recipe_id(config: dict) -> str:
    """``<mask source>-<12 hex>`` of a recipe config (module docstring)."""
    import hashlib  # here, not above: `protodb add --help` reads this module's defaults

    digest = hashlib.sha256(canonical_json(config).encode()).hexdigest()[:12]
    return f"{config['mask_source']}-{digest}"


def legacy_recipe(mask_source: str, n: int) -> Recipe:
    """The recipe of a set built before recipe ids (schema 2 and earlier): its stored mask
    source and n, K = 32 (LEGACY_PARTS) and every level, as ``add`` always built them then."""
    source = mask_source or PLAIN_MASK_SOURCE
    mask = LEGACY_MASK_CONFIGS.get(source)
    if mask is None:  # a segmenter's proposals, selected as maskcut's are
        mask = {"select": _LEGACY_SELECT, "proposals": {"segmenter": source}}
    return Recipe.of(source, copy.deepcopy(mask), int(n))


def plain_recipe_id(n: int) -> str:
    """The id of the recipe a plain ``add`` (otsu masks, K = 32, every level) makes at ``n``:
    the legacy otsu recipe, since a plain ``add`` has built sets the same way since then."""
    return legacy_recipe(PLAIN_MASK_SOURCE, n).id


def check_recipe(rid: object, recipe: object) -> str | None:
    """Why a stored (recipe id, recipe JSON) pair is not well-formed, or None when it is: the
    id matches ``<source>-<12 hex>``, the JSON is a recipe object, and the id is its hash."""
    if not isinstance(rid, str) or not RECIPE_ID.fullmatch(rid):
        return f"recipe id {rid!r} is not of the form <mask source>-<12 hex digits>"
    try:
        config = json.loads(recipe) if isinstance(recipe, str) else None
    except json.JSONDecodeError:
        config = None
    if not isinstance(config, dict) or not isinstance(config.get("mask_source"), str):
        return f"recipe {rid} has no readable recipe config"
    if recipe_id(config) != rid:
        return f"recipe id {rid} does not match its stored recipe config"
    return None


def parse_recipe_choices(values: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """``--recipe`` values -> (recipe ids for every class, {class name: recipe id}); ``ID`` or
    ``CLASS=ID`` each. A malformed id is one line."""
    from protodb.names import class_key

    everywhere: list[str] = []
    per_class: dict[str, str] = {}
    for raw in values or []:
        name, sep, rid = str(raw).rpartition("=")
        rid = rid.strip()
        if not RECIPE_ID.fullmatch(rid):
            raise ProtodbError(
                f"--recipe {raw!r}: {rid!r} is not a recipe id (<mask source>-<12 hex digits>, "
                "as `protodb show CLASS` lists them); use --recipe ID or --recipe CLASS=ID"
            )
        if sep:
            if not name.strip():
                raise ProtodbError(f"--recipe {raw!r} names no class; use --recipe CLASS=ID")
            per_class[class_key(name)] = rid
        else:
            everywhere.append(rid)
    return everywhere, per_class
