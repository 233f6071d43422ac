"""Prototype recipes: everything besides the support images and the extractor that changes a
prototype set, named by a recipe id that is part of the set's key.

A recipe is a canonical JSON object::

    {"mask_source": "otsu", "mask": {...the source's thresholds / proposals config...},
     "n": 32, "parts": 32, "levels": ["class", "instance", "part"]}

and its id is ``<mask source>-<first 12 hex digits of the sha256 of that JSON>`` (keys sorted,
no spaces), e.g. ``otsu-1a2b3c4d5e6f``. The full recipe is stored beside the set (``sets.recipe``)
and an id is checked against it on import (:func:`check_recipe`). ``add X`` and
``add X --mask-source maskcut`` (or another ``--n`` or ``--parts``) therefore build two sets, and
a vocabulary picks one per class (``vocab create --recipe``).

Mask configs are the constants the mask sources use today (REFERENCE 1.3); a change of one of
them makes a new recipe id, so sets built before and after such a change never mix silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from protodb.errors import ProtodbError

DEFAULT_N = 32  # the support-set size of a plain ``add`` (REFERENCE 1.1)
DEFAULT_PARTS = 32  # K of the part prototypes (REFERENCE 1.5); = prototypes.DEFAULT_PARTS
DEFAULT_MASK_SOURCE = "otsu"
LEVELS = ("class", "instance", "part")
MAX_PARTS = 1024
RECIPE_ID = re.compile(r"[a-z0-9_]{1,32}-[0-9a-f]{12}")


def mask_config(source: str) -> dict[str, Any]:
    """The thresholds / proposals config of a mask source (the constants it runs with)."""
    from protodb.synthesis.masks import BG_MAX, FALLBACK_THRESHOLDS, FG_MIN

    if source == "otsu":
        return {"classes": 3, "bins": 256, "fallback": list(FALLBACK_THRESHOLDS)}
    select = {"fg_min": FG_MIN, "bg_max": BG_MAX, "erosion": "cross"}
    if source == "maskcut":
        from protodb.segmenters import maskcut

        proposals = {
            "tau": maskcut.MASKCUT_TAU,
            "masks": maskcut.MASKCUT_MASKS,
            "input": maskcut.MASKCUT_INPUT,
        }
        return {"select": select, "proposals": proposals}
    if source == "sam":
        from protodb.segmenters import sam

        proposals = {"points": sam.SAM_POINTS, "iou": sam.SAM_IOU, "dedupe": sam.SAM_DEDUPE}
        return {"select": select, "proposals": proposals}
    return {"select": select, "proposals": {"segmenter": source}}


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


def canonical_json(config: dict) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def recipe_id(config: dict) -> str:
    """``<mask source>-<12 hex>`` of a recipe config (module docstring)."""
    digest = hashlib.sha256(canonical_json(config).encode()).hexdigest()[:12]
    return f"{config['mask_source']}-{digest}"


def make_recipe(
    mask_source: str = DEFAULT_MASK_SOURCE,
    n: int = DEFAULT_N,
    parts: int = DEFAULT_PARTS,
    levels: tuple[str, ...] = LEVELS,
) -> Recipe:
    """The recipe of a set built with these options."""
    config = {
        "mask_source": mask_source,
        "mask": mask_config(mask_source),
        "n": int(n),
        "parts": int(parts),
        "levels": list(levels),
    }
    return Recipe(recipe_id(config), config)


def default_recipe_id(n: int = DEFAULT_N) -> str:
    """The id of the recipe a plain ``add`` (otsu masks, K = 32, every level) uses at ``n``."""
    return make_recipe(n=n).id


def legacy_recipe(mask_source: str, n: int) -> Recipe:
    """The recipe of a set built before recipe ids (schema 2 and earlier): its stored mask
    source and n, K = 32 and every level, as ``add`` always built them then."""
    return make_recipe(mask_source or DEFAULT_MASK_SOURCE, int(n))


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
