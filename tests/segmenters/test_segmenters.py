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


# ---------------------------------------------------------------- MaskCut, after CutLER's rules


def _grid(fg: np.ndarray) -> np.ndarray:
    """Features float [2, h, w]: e1 on the ``fg`` patches, e2 elsewhere."""
    return np.stack([fg, ~fg]).astype(np.float32)


def test_maskcut_reverses_only_at_three_corners():
    """Issue 27 item 8: a foreground holding two corners (a left column) stays foreground;
    CutLER reverses the cut at 3 or more (protodb reversed at 2)."""
    from protodb.segmenters.maskcut import foreground, maskcut_grid

    fg = np.zeros((6, 6), bool)
    fg[:, 0] = True
    assert np.array_equal(maskcut_grid(_grid(fg), n_masks=1)[0], fg)
    vec = np.where(fg.ravel(), 1.0, -0.2)  # the side above the mean, holding the peak
    assert np.array_equal(foreground(vec, (6, 6))[0], fg.ravel())
    three = np.zeros((6, 6), bool)
    three[0, :] = three[:, 0] = three[:, -1] = True  # all 4 corners: reversed
    side, seed = foreground(np.where(three.ravel(), 1.0, -0.2), (6, 6))
    assert np.array_equal(side, ~three.ravel()) and side[seed]


def test_maskcut_keeps_the_seed_component():
    from scipy import ndimage

    from protodb.segmenters.maskcut import maskcut_grid

    fg = np.zeros((8, 8), bool)
    fg[1:3, 1:3] = fg[5:7, 5:7] = True  # two blobs of one feature
    masks = maskcut_grid(_grid(fg))
    assert ndimage.label(masks[0])[1] == 1 and masks[0].sum() == 4 and (masks[0] <= fg).all()
    assert not (masks.sum(0) > 1).any()  # disjoint


def test_maskcut_drops_an_overlapping_or_tiny_mask():
    from protodb.segmenters.maskcut import kept

    prev = np.zeros(100, bool)
    prev[:20] = True
    same = prev.copy()
    same[20:25] = True  # IoU 0.8
    other = np.zeros(100, bool)
    other[50:70] = True
    tiny = np.zeros(100, bool)
    tiny[90] = True  # 1 % of the patches
    assert not kept(same, prev) and kept(other, prev) and not kept(tiny, prev)
