"""The feature dim an extractor config produces, without loading real weights.

Imported prototype sets name the extractor that made them; their vectors must have the dim that
extractor makes (REFERENCE 1.4), or matching would compare unrelated spaces. Known without
weights: the real profile's default models (a table), the tiny twins and shipped models (built
here: small, and their weights are part of protodb), and the test world's extractor. Anything
else (a model this machine cannot see) is unknown, and not refused on that ground.
"""

from __future__ import annotations

import functools

from protodb.extractors.base import ExtractorConfig
from protodb.models.defaults import (
    CLIP_DEFAULT,
    CLIP_DEFAULT_PRETRAINED,
    DINO_DEFAULT,
    DINOV2_DEFAULT,
    MAE_DEFAULT,
    SD_DEFAULT,
)
from protodb.models.loading import built_here

# (extractor, model) -> dim, for the real defaults: ViT-B widths, and SD 1.5's ten attn2 query
# projections (320 * 3 + 640 * 3 + 1280 * 3 + 1280, the [N, 7680, 64, 64] of REFERENCE 1.4)
KNOWN_DIMS: dict[tuple[str, str], int] = {
    ("sd", SD_DEFAULT): 7680,
    ("dino", DINO_DEFAULT): 768,
    ("dinov2", DINOV2_DEFAULT): 768,
    ("clip", f"{CLIP_DEFAULT}/{CLIP_DEFAULT_PRETRAINED}"): 768,
    ("clip", f"ViT-B-16/{CLIP_DEFAULT_PRETRAINED}"): 768,
    ("mae", MAE_DEFAULT): 768,
}


def expected_dim(config: ExtractorConfig) -> int | None:
    """The dim of the vectors ``config`` makes, or None when it cannot be told here."""
    known = KNOWN_DIMS.get((config.name, config.model))
    if known is not None:
        return known
    # built here (a tiny twin, a shipped model) or versioned by protodb (weights: the tiny
    # twins', the test world's), so small and known without a download
    if built_here(config.model) or config.weights is not None:
        return _built_dim(config.to_json())
    return None


@functools.lru_cache(maxsize=16)
def _built_dim(config_json: str) -> int | None:
    from protodb.extractors.base import EXTRACTORS

    config = ExtractorConfig.from_json(config_json)
    if config.name not in EXTRACTORS:
        return None
    try:
        return int(EXTRACTORS.get(config.name)(config, "cpu").dim)
    except Exception:  # noqa: BLE001 - a config this version cannot build: unknown, not a crash
        return None
