"""The segmenter registry. A segmenter maps an RGB image (uint8 [H, W, 3]) to instance proposals
(bool [M, H, W], M >= 0, possibly overlapping); each lives in its own module and is imported
when first used.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from protodb.models.loading import TINY
from protodb.registry import Registry

# Images smaller than this on a side (the 64 px supports of the tiny and test-world profiles)
# are below any real segmenter's input: a segmenter given no model takes its tiny twin.
TWIN_BELOW = 128

SegmenterFn = Callable[..., np.ndarray]
SEGMENTERS: Registry[SegmenterFn] = Registry("segmenter")

SEGMENTERS.register_lazy("maskcut", "protodb.segmenters.maskcut")
SEGMENTERS.register_lazy("sam", "protodb.segmenters.sam")


def segmenter_model(model: str | None, image: np.ndarray, default: str) -> str:
    """The model a segmenter runs on ``image`` (uint8 [H, W, 3]): ``model`` when named, else
    the tiny twin for an image under TWIN_BELOW px on a side, else ``default``."""
    if model is not None:
        return model
    return TINY if min(image.shape[:2]) < TWIN_BELOW else default
