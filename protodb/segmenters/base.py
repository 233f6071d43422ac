"""The segmenter registry. A segmenter maps an RGB image (uint8 [H, W, 3]) to instance proposals
(bool [M, H, W], M >= 0, possibly overlapping); each lives in its own module and is imported
when first used.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from protodb.registry import Registry

SegmenterFn = Callable[..., np.ndarray]
SEGMENTERS: Registry[SegmenterFn] = Registry("segmenter")

SEGMENTERS.register_lazy("maskcut", "protodb.segmenters.maskcut")
SEGMENTERS.register_lazy("sam", "protodb.segmenters.sam")
