"""Pad an image to a centred square with black and crop a square map back (REFERENCE 2).

Ref-Diff pads the image to a square of side S = max(H, W), centred, with black, before the
diffusion model sees it, and crops the padding off the attention map afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Padding:
    """Where the image sits in its square: ``side`` = max(H, W); the image occupies rows
    ``top:top + height`` and columns ``left:left + width``."""

    height: int
    width: int
    side: int
    top: int
    left: int


def padding_of(hw: tuple[int, int]) -> Padding:
    """The centred placement of an ``hw`` image in its square (the odd pixel goes below /
    right)."""
    h, w = int(hw[0]), int(hw[1])
    side = max(h, w)
    return Padding(h, w, side, (side - h) // 2, (side - w) // 2)


def pad_to_square(image: np.ndarray) -> tuple[np.ndarray, Padding]:
    """uint8 [H, W, 3] -> (uint8 [S, S, 3] with black padding, its Padding)."""
    pad = padding_of(image.shape[:2])
    out = np.zeros((pad.side, pad.side, *image.shape[2:]), image.dtype)
    out[pad.top : pad.top + pad.height, pad.left : pad.left + pad.width] = image
    return out, pad


def crop_back(square_map: np.ndarray, pad: Padding) -> np.ndarray:
    """float [s, s] map over the padded square (any s) -> float32 [H, W] over the image:
    bilinearly resized to the square's side, then the padding cropped off."""
    import torch
    import torch.nn.functional as F

    m = torch.as_tensor(np.asarray(square_map, np.float32))[None, None]
    if m.shape[-1] != pad.side or m.shape[-2] != pad.side:
        m = F.interpolate(m, size=(pad.side, pad.side), mode="bilinear", align_corners=False)
    m = m[0, 0, pad.top : pad.top + pad.height, pad.left : pad.left + pad.width]
    return m.numpy().astype(np.float32)


def min_max(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """float32 map rescaled to [0, 1]: (x - min) / (max - min + eps) (REFERENCE 2)."""
    x = np.asarray(x, np.float32)
    lo = float(x.min()) if x.size else 0.0
    return ((x - lo) / (float(x.max(initial=lo)) - lo + eps)).astype(np.float32)
