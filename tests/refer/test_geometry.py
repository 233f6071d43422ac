"""Parity: pad to a centred black square and crop the padding back off (REFERENCE 2)."""

from __future__ import annotations

import numpy as np

from protodb.refer.geometry import crop_back, min_max, pad_to_square, padding_of


def test_wide_image_is_centred_with_black_rows():
    image = np.full((3, 6, 3), 200, np.uint8)
    square, pad = pad_to_square(image)
    assert square.shape == (6, 6, 3)
    assert (pad.top, pad.left, pad.side) == (1, 0, 6)
    assert (square[1:4] == 200).all()
    assert (square[0] == 0).all() and (square[4:] == 0).all()


def test_tall_image_odd_padding_goes_right():
    pad = padding_of((7, 4))
    assert (pad.side, pad.top, pad.left) == (7, 0, 1)  # 3 columns of padding: 1 left, 2 right


def test_crop_back_inverts_the_padding_at_full_size():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (5, 9, 3), dtype=np.uint8)
    square, pad = pad_to_square(image)
    values = square[..., 0].astype(np.float32)
    assert np.array_equal(crop_back(values, pad), image[..., 0].astype(np.float32))


def test_crop_back_resizes_a_coarse_map_to_the_square_first():
    pad = padding_of((32, 64))  # image in rows 16:48 of a 64 square
    coarse = np.zeros((8, 8), np.float32)
    coarse[:2] = 1.0  # the top quarter of the square: padding only
    out = crop_back(coarse, pad)
    assert out.shape == (32, 64)
    assert out.max() < 0.5  # the padding's values are cropped off


def test_min_max_uses_the_reference_epsilon():
    x = np.array([2.0, 4.0, 6.0], np.float32)
    assert np.allclose(min_max(x), [0.0, 0.5, 1.0], atol=1e-6)
    assert np.allclose(min_max(np.ones(3)), 0.0)
