"""Every segmenter: registry, tiny twins, mask sources (protodb.segmenters)."""

import numpy as np
import pytest
from conftest import make_image

from protodb.segmenters.base import SEGMENTERS
from protodb.segmenters.maskcut import maskcut
from protodb.segmenters.sam import sam
from protodb.synthesis.masks import MASK_SOURCES


def test_registry():
    assert SEGMENTERS.get("maskcut") is maskcut and SEGMENTERS.get("sam") is sam
    assert {"otsu", "maskcut", "sam"} <= set(MASK_SOURCES.names())


@pytest.mark.parametrize("name", ["maskcut", "sam"])
def test_segmenter_tiny_twin_proposals(name):
    image = make_image(64, 80, 0)
    kwargs = {"iou_threshold": -np.inf} if name == "sam" else {}  # random weights: keep all
    masks = SEGMENTERS.get(name)(image, device="cpu", **kwargs)
    assert masks.dtype == bool and masks.ndim == 3 and masks.shape[1:] == (64, 80)
    assert len(masks) >= 1 and masks.any(axis=(1, 2)).all()


@pytest.mark.parametrize("source", ["maskcut", "sam"])
def test_segmenter_mask_sources(source):
    images = np.stack([make_image(64, 64, 0), make_image(64, 64, 1)])
    att = [np.random.default_rng(i).random((32, 32)).astype(np.float32) for i in range(2)]
    m = MASK_SOURCES.get(source)(att, (64, 64), images=images, device="cpu")
    assert m.fg.shape == m.bg.shape == (2, 64, 64) and m.source == source
    assert m.thresholds == (0.2, 0.5) and not (m.fg & m.bg).any()
