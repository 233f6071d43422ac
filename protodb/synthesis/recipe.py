"""The recipe of a set being built: its mask source's config (the constants that source runs
with) in the recipe record of :mod:`protodb.bank.recipe`.

``add X`` and ``add X --mask-source maskcut`` (or another ``--n`` or ``--parts``) therefore
build two sets, and a vocabulary picks one per class (``vocab create --recipe``). Mask configs
are the constants the mask sources use today (REFERENCE 1.3); a change of one of them makes a
new recipe id, so sets built before and after such a change never mix silently.
"""

from __future__ import annotations

from typing import Any

from protodb.bank.recipe import LEVELS, Recipe
from protodb.synthesis.request import DEFAULT_MASK_SOURCE, DEFAULT_N, DEFAULT_PARTS


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
            "reverse_corners": maskcut.MASKCUT_REVERSE_CORNERS,
            "component": "seed",
            "max_iou": maskcut.MASKCUT_MAX_IOU,
            "min_area": maskcut.MASKCUT_MIN_AREA,
        }
        return {"select": select, "proposals": proposals}
    if source == "sam":
        from protodb.segmenters import sam

        proposals = {"points": sam.SAM_POINTS, "iou": sam.SAM_IOU, "dedupe": sam.SAM_DEDUPE}
        return {"select": select, "proposals": proposals}
    return {"select": select, "proposals": {"segmenter": source}}


def make_recipe(
    mask_source: str = DEFAULT_MASK_SOURCE,
    n: int = DEFAULT_N,
    parts: int = DEFAULT_PARTS,
    levels: tuple[str, ...] = LEVELS,
) -> Recipe:
    """The recipe of a set built now with these options."""
    return Recipe.of(mask_source, mask_config(mask_source), n, parts, levels)


def default_recipe_id(n: int = DEFAULT_N) -> str:
    """The id of the recipe a plain ``add`` (otsu masks, K = 32, every level) uses at ``n``."""
    return make_recipe(n=n).id
