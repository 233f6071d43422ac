"""The sam segmenter: IoU threshold and dedupe (protodb.segmenters.sam)."""

import numpy as np
from conftest import make_image

from protodb.segmenters.sam import _dedupe, sam


def test_sam_threshold_filters_random_weight_masks():
    assert sam(make_image(64, 64, 1)).shape == (0, 64, 64)  # nothing reaches IoU 0.88


def test_dedupe_by_hand():
    a = np.zeros((3, 4, 4), bool)
    a[0, :2] = True  # 8 px
    a[1, :2, :3] = True  # 6 px inside a[0]: IoU 0.75 > 0.7 -> dropped (lower score)
    a[2, 2:] = True  # disjoint
    kept = _dedupe(a, np.array([0.9, 0.8, 0.95]), 0.7)
    assert kept.tolist() == [2, 0]
