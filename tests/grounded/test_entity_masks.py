"""Entity masks: overlaps resolved by attention, the vocabulary source, agreement."""

from __future__ import annotations

import numpy as np
import pytest

from protodb.errors import ProtodbError
from protodb.grounded.entity_masks import (
    agreement,
    attention_masks,
    check_source,
    iou,
    resolve_overlaps,
    vocab_masks,
)


def test_overlaps_go_to_the_covering_entity_with_most_attention():
    fg = np.zeros((2, 4, 4), bool)
    fg[0, :, :3] = True
    fg[1, :, 1:] = True
    att = np.zeros((2, 4, 4))
    att[0, :, 1] = 0.9
    att[1, :, 2] = 0.8
    att[0, :, 3] = 1.0  # entity 0 is strongest there, but its fg does not cover it
    out = resolve_overlaps(fg, att)
    assert not (out[0] & out[1]).any()
    assert out[0][:, :2].all() and out[1][:, 2:].all()


def test_attention_source_finds_each_entity_where_it_attends():
    image = np.zeros((32, 32, 3), np.uint8)
    att = np.zeros((2, 8, 8), np.float32)
    att[0, 1:4, 1:4] = 1.0
    att[1, 5:8, 4:8] = 1.0
    att += np.random.default_rng(0).uniform(0, 0.05, att.shape).astype(np.float32)
    m = attention_masks(image, att, [3, 1])
    assert m.labels == [3, 1] and m.masks.shape == (2, 32, 32)
    truth0 = np.zeros((32, 32), bool)
    truth0[4:16, 4:16] = True
    assert iou(m.masks[0], truth0) > 0.5
    labels = m.label_map()
    assert set(np.unique(labels)) == {0, 1, 3}


def test_vocab_source_and_agreement():
    seg = np.zeros((4, 4), np.uint8)
    seg[:2] = 2
    seg[2:, :2] = 5  # a class the prompt does not name: dropped
    v = vocab_masks(seg, [2, 1])
    assert v.masks[0].sum() == 8 and v.masks[1].sum() == 0
    assert agreement(v, v) == pytest.approx(0.5)  # the empty entity counts 0
    assert v.label_map().max() == 2


def test_unknown_source_is_refused():
    with pytest.raises(ProtodbError, match="--masks 'box' is unknown"):
        check_source("box")


def test_attention_source_with_maskcut_proposals_selects_by_eq1():
    """The proposals are made once per image and each entity's fg is eq. (1)'s top mask."""
    from protodb.segmenters.base import SEGMENTERS
    from protodb.synthesis.masks import normalise_attribution, select_masks

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    image[8:32, 8:32] = (200, 30, 40)
    att = rng.uniform(0, 0.1, (2, 16, 16)).astype(np.float32)
    att[0, 2:8, 2:8] = 1.0
    att[1, 10:16, 10:16] = 1.0
    m = attention_masks(image, att, [1, 2], proposals="maskcut")
    instances = SEGMENTERS.get("maskcut")(image, device="cpu")
    fg = [select_masks(instances, normalise_attribution(a, (64, 64)))[0] for a in att]
    for e in range(2):
        assert not (m.masks[e] & ~fg[e]).any()  # within its own eq. (1) foreground
