"""Parity: the generative score, the position prior ramp, the weighted fusion and the argmax
(REFERENCE 2); the CLIP scores on the tiny twin."""

from __future__ import annotations

import numpy as np

from protodb.refer.scores import (
    ClipScorer,
    ScoreWeights,
    apply_ramp,
    choose,
    fuse,
    generative_score,
    position_ramp,
    position_score,
    position_word,
)


def test_generative_score_is_mean_inside_minus_mean_outside():
    att = np.array([[1.0, 0.5], [0.0, 0.0]], np.float32)
    masks = np.array([[[1, 1], [0, 0]], [[1, 0], [0, 0]]], bool)
    got = generative_score(att, masks)
    assert np.allclose(got, [0.75 - 0.0, 1.0 - 0.5 / 3], atol=1e-5)


def test_generative_score_of_an_empty_or_full_mask_is_finite():
    att = np.ones((3, 3), np.float32)
    masks = np.stack([np.zeros((3, 3), bool), np.ones((3, 3), bool)])
    assert np.isfinite(generative_score(att, masks)).all()


def test_position_ramp_left_two_thirds_then_zero():
    assert np.allclose(position_ramp(9, "left"), [1, 0.8, 0.6, 0.4, 0.2, 0, 0, 0, 0])
    assert np.allclose(position_ramp(9, "right"), position_ramp(9, "left")[::-1])
    assert np.allclose(position_ramp(9, None), 1.0)


def test_position_word_left_first_and_whole_words():
    assert position_word("the dog on the left") == "left"
    assert position_word("leftmost car") == "left"
    assert position_word("right of the left man") == "left"  # the reference checks left first
    assert position_word("the bright car") is None
    assert position_word("top dog") is None  # top / bottom were dropped by the reference


def test_ramp_multiplies_the_image_and_position_score_reads_it():
    image = np.full((2, 9, 3), 100, np.uint8)
    assert apply_ramp(image, "left")[0, :, 0].tolist() == [100, 80, 60, 40, 20, 0, 0, 0, 0]
    masks = np.zeros((2, 2, 9), bool)
    masks[0, :, :2] = True
    masks[1, :, 7:] = True
    assert np.allclose(position_score(masks, "left"), [0.9, 0.0])
    assert np.allclose(position_score(masks, None), [1.0, 1.0])


def test_fusion_weights_are_the_references_and_argmax_takes_the_first_best():
    w = ScoreWeights()
    assert (w.hard, w.soft, w.generative) == (0.7, 0.3, 0.05)
    total = fuse(
        {
            "hard": np.array([0.2, 0.3]),
            "soft": np.array([0.5, 0.1]),
            "generative": np.array([1.0, 0.0]),
            "bank": None,
        },
        w,
    )
    assert np.allclose(total, [0.7 * 0.2 + 0.3 * 0.5 + 0.05, 0.7 * 0.3 + 0.3 * 0.1])
    assert choose(total) == 0
    assert choose(np.array([1.0, 1.0])) == 0
    assert choose(fuse({"generative": np.array([0.1, 0.4])}, w)) == 1


def test_every_weight_is_a_setting():
    w = ScoreWeights(hard=0.0, soft=0.0, generative=1.0)
    total = fuse({"hard": np.array([9.0, 0.0]), "generative": np.array([0.0, 1.0])}, w)
    assert choose(total) == 1


def test_soft_score_with_every_token_allowed_is_plain_clip():
    import torch

    clip = ClipScorer("tiny")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    text = clip.text(["a red disc"])[0]
    whole = np.ones((1, 40, 50), bool)
    with torch.inference_mode():
        e = clip.net.encode_image(clip._pixels([image])).float()[0]
    want = float((e / e.norm()) @ text)
    assert np.isclose(clip.soft(image, whole, text)[0], want, atol=1e-5)
    assert np.isclose(clip.hard(image, whole, text)[0], want, atol=1e-5)
    half = np.zeros((1, 40, 50), bool)
    half[:, :, :20] = True
    assert not np.isclose(clip.soft(image, half, text)[0], want, atol=1e-5)
    assert clip.token_masks(half).sum() < clip.token_masks(whole).sum()
