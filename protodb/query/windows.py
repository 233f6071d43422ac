"""Sliding windows over a target image (REFERENCE 1.6).

The image is resized so its short side is :data:`SHORT_SIDE` (448); square windows of 448 and
336 px slide over it with stride 224, per axis ``n = max(S - crop + stride - 1, 0) // stride + 1``
windows, the last one shifted back inside the image; the whole image is one more window. Each
window's score map is upsampled to the window, clamped to [-1, 1], summed into a canvas of the
resized image, and divided by the number of windows covering each pixel.

Example: a 448x597 image gives 2 windows at 448, 6 at 336 and the whole image: 9.
The geometry is the same in every profile; the extractor then resizes each window to its own
input size (64 px on the ``tiny`` profile, so windows stay cheap there).
"""

from __future__ import annotations

from dataclasses import dataclass

SHORT_SIDE = 448
CROPS = (448, 336)
STRIDE = 224


@dataclass(frozen=True)
class Window:
    """A window of the resized image, in pixels: rows y0:y0+h, columns x0:x0+w."""

    y0: int
    x0: int
    h: int
    w: int


def resized_size(height: int, width: int, short: int = SHORT_SIDE) -> tuple[int, int]:
    """(H', W') of an image resized so its short side is ``short`` (aspect kept, rounded)."""
    scale = short / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def axis_starts(size: int, crop: int, stride: int = STRIDE) -> list[int]:
    """Window starts along one axis of ``size`` px: n = max(size - crop + stride - 1, 0) //
    stride + 1 windows at multiples of ``stride``, the last shifted back to end inside."""
    n = max(size - crop + stride - 1, 0) // stride + 1
    return [min(i * stride, max(size - crop, 0)) for i in range(n)]


def sliding_windows(
    height: int, width: int, crops: tuple[int, ...] = CROPS, stride: int = STRIDE
) -> list[Window]:
    """All windows of an image of (height, width) (already resized): for each crop size, a
    row-major grid, then the whole image last."""
    out = []
    for crop in crops:
        ch, cw = min(crop, height), min(crop, width)
        for y in axis_starts(height, ch, stride):
            for x in axis_starts(width, cw, stride):
                out.append(Window(y, x, ch, cw))
    out.append(Window(0, 0, height, width))
    return out
