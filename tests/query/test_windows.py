"""Window geometry (REFERENCE 1.6, parity hook: window geometry)."""

import pytest

from protodb.query.windows import Window, axis_starts, resized_size, sliding_windows


def test_reference_example_448x597_gives_9_windows():
    wins = sliding_windows(448, 597)
    assert len(wins) == 9
    assert wins == [
        Window(0, 0, 448, 448),
        Window(0, 149, 448, 448),
        Window(0, 0, 336, 336),
        Window(0, 224, 336, 336),
        Window(0, 261, 336, 336),
        Window(112, 0, 336, 336),
        Window(112, 224, 336, 336),
        Window(112, 261, 336, 336),
        Window(0, 0, 448, 597),
    ]


@pytest.mark.parametrize(
    ("size", "crop", "starts"),
    [
        (448, 448, [0]),  # n = (0 + 223) // 224 + 1 = 1
        (597, 448, [0, 149]),  # n = 372 // 224 + 1 = 2, last shifted back
        (448, 336, [0, 112]),
        (597, 336, [0, 224, 261]),
        (672, 448, [0, 224]),  # n = 447 // 224 + 1 = 2: exactly fits
        (673, 448, [0, 224, 225]),  # one pixel more -> a third, shifted back
        (300, 336, [0]),  # crop larger than the image
    ],
)
def test_axis_starts_formula(size, crop, starts):
    assert axis_starts(size, crop, 224) == starts
    assert all(s >= 0 and s + min(crop, size) <= size for s in starts)


def test_windows_cover_the_image_and_stay_inside():
    for h, w in [(448, 448), (448, 1000), (700, 448), (448, 449)]:
        wins = sliding_windows(h, w)
        assert wins[-1] == Window(0, 0, h, w)
        for v in wins:
            assert v.y0 >= 0 and v.x0 >= 0 and v.y0 + v.h <= h and v.x0 + v.w <= w


def test_square_image_gives_6_windows():
    # 448 crop: 1; 336 crop: 2 x 2; whole: 1
    assert len(sliding_windows(448, 448)) == 6


def test_resized_short_side_is_448():
    assert resized_size(448, 597) == (448, 597)
    assert resized_size(50, 70) == (448, 627)
    assert resized_size(1000, 500) == (896, 448)
