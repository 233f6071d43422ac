"""Parity: the threshold ladder, top-k by area and the size filter (REFERENCE 2)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from protodb.errors import ParameterError, ProtodbError
from protodb.refer.proposals import (
    LADDER,
    ProposalConfig,
    make_proposals,
    size_filter,
    threshold_ladder,
    top_k_by_area,
)
from protodb.refer.refer import ReferConfig, default_refer_config
from protodb.segmenters.amg import REFERENCE_AMG


def test_ladder_is_five_to_ninety_five_percent():
    assert len(LADDER) == 19
    assert LADDER[0] == 0.05 and LADDER[-1] == 0.95
    assert np.allclose(np.diff(LADDER), 0.05)


def test_ladder_thresholds_the_map_at_each_level():
    att = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, 101)
    masks, labels = threshold_ladder(att)
    assert masks.shape == (19, 1, 101)
    assert labels[6] == "attention@0.35"
    assert masks.reshape(19, -1).sum(1).tolist() == [101 - round(100 * t) for t in LADDER]


def test_top_k_keeps_the_largest_first():
    masks = np.zeros((4, 4, 4), bool)
    for i, area in enumerate([3, 9, 1, 5]):
        masks[i].ravel()[:area] = True
    assert top_k_by_area(masks, 2).tolist() == [1, 3]
    assert top_k_by_area(masks, 10).tolist() == [1, 3, 0, 2]


def test_size_filter_drops_masks_at_or_below_either_limit():
    masks = np.zeros((3, 10, 10), bool)
    masks[0].ravel()[:10] = True
    masks[1].ravel()[:11] = True
    masks[2].ravel()[:30] = True
    assert size_filter(masks, 10, 0.0).tolist() == [1, 2]  # <= 10 px dropped (reference)
    assert size_filter(masks, 0, 0.3).tolist() == []  # 30 px is not > 0.3 of 100
    assert size_filter(masks, 0, 0.2).tolist() == [2]


def test_reference_defaults():
    c = ProposalConfig()
    assert (c.top_k, c.min_area_px, c.min_area_ratio, c.source) == (10, 10_000, 0.0, "sam")


def test_reference_sam_settings_are_the_default_of_refer():
    """Ref-Diff's released code: SAM ViT-H's automatic mask generator, 32 x 32 points, all three
    masks per point, predicted IoU > 0.88, stability >= 0.95 (offset 1), box NMS 0.7."""
    for c in (ProposalConfig(), default_refer_config("default").proposals):
        assert c.source == "sam" and c.sam_model == "facebook/sam-vit-huge"
        assert (c.points_per_side, c.multimask, c.pred_iou_thresh) == (32, True, 0.88)
        assert (c.stability_score_thresh, c.stability_score_offset) == (0.95, 1.0)
        assert c.box_nms_thresh == 0.7 and c.amg == REFERENCE_AMG
    assert ReferConfig().to_dict()["proposals"]["sam_model"] == "facebook/sam-vit-huge"


def test_tiny_refer_stays_fast_through_its_profile():
    """tiny's record names the tiny SAM twin on a 4 x 4 grid: --source sam takes well under a
    second a 64 px image once the twin is built."""
    c = replace(default_refer_config("tiny").proposals, source="sam")
    assert (c.sam_model, c.points_per_side) == ("tiny", 4)
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    make_proposals(image, None, c)  # builds the twin
    t = time.perf_counter()
    p = make_proposals(image, None, c)
    assert time.perf_counter() - t < 1.0 and p.masks.shape[1:] == (64, 64)


def test_a_bad_sam_setting_names_its_parameter():
    with pytest.raises(ParameterError, match="points_per_side=0 must be >= 1"):
        ProposalConfig(points_per_side=0)


def test_nothing_left_gives_the_whole_image():
    image = np.zeros((20, 30, 3), np.uint8)
    config = ProposalConfig(source="attention", min_area_px=10_000)
    p = make_proposals(image, np.random.default_rng(0).random((20, 30)), config)
    assert p.sources == ["image"] and p.masks.shape == (1, 20, 30) and p.masks.all()


def test_duplicates_are_kept_once():
    att = np.zeros((10, 10), np.float32)
    att[:5] = 1.0  # every level gives the same mask
    p = make_proposals(
        np.zeros((10, 10, 3), np.uint8), att, ProposalConfig("attention", min_area_px=0)
    )
    assert p.sources == ["attention@0.05"]


def test_segmenter_source_keeps_top_k_of_a_real_segmenter():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    image[:, :32] = (200, 30, 30)
    config = ProposalConfig(source="maskcut", top_k=2, min_area_px=0, segmenter_model="tiny")
    p = make_proposals(image, None, config)
    assert 1 <= len(p.masks) <= 2
    assert all(s.startswith("maskcut#") or s == "image" for s in p.sources)


def test_unknown_source_is_refused():
    with pytest.raises(ProtodbError, match="proposal source"):
        ProposalConfig(source="grabcut")
