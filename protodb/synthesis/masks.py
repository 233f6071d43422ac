"""Foreground / background masks of support images from their attribution maps.

The mask source is a named plugin; ``otsu`` is the paper's segmenter-free variant (REFERENCE
1.3): a three-class multi-Otsu over the whole support set's normalised latent-grid maps (256
bins) gives thresholds t_lo < t_hi; fg = A > t_hi, bg = A < t_lo, with A the map normalised and
upsampled to the image. When the maps hold fewer than three distinct values the fixed fallback
(0.2, 0.5) is used.

``maskcut`` (and any segmenter in :data:`protodb.segmenters.SEGMENTERS`) proposes instance
masks per image, and :func:`select_masks` picks fg and bg by the paper's eq. (1), made robust to
overlapping masks (REFERENCE 1.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from protodb.registry import Registry

FALLBACK_THRESHOLDS = (0.2, 0.5)


def minmax(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Min-max normalise to [0, 1]; the denominator is clamped at ``eps``."""
    x = x.astype(np.float32)
    lo = x.min()
    return (x - lo) / max(float(x.max() - lo), eps)


def normalise_attribution(raw: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """REFERENCE 1.2 normalisation: min-max, bilinear up to ``size``, min-max again.

    raw: float [h, w] (any range). Returns float32 [H, W] in [0, 1].
    """
    import torch
    import torch.nn.functional as F

    hw = (size, size) if isinstance(size, int) else tuple(size)
    t = torch.from_numpy(minmax(raw))[None, None]
    up = F.interpolate(t, size=hw, mode="bilinear", align_corners=False)[0, 0].numpy()
    return minmax(up)


def multi_otsu(values: np.ndarray, bins: int = 256) -> tuple[float, float] | None:
    """Three-class multi-Otsu thresholds (t_lo, t_hi) of ``values``, or None if degenerate.

    Exhaustive search over pairs of histogram bins maximising the between-class variance;
    thresholds are bin centres, as in scikit-image's ``threshold_multiotsu(classes=3)``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if np.unique(v).size < 3:
        return None
    hist, edges = np.histogram(v, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    p = hist / hist.sum()
    w = np.cumsum(p)  # weight of bins [0..k]
    m = np.cumsum(p * centres)  # first moment of bins [0..k]
    mt = m[-1]
    i, j = np.triu_indices(bins, k=1)
    valid = j < bins - 1
    i, j = i[valid], j[valid]
    w0, w1, w2 = w[i], w[j] - w[i], 1.0 - w[j]
    m0, m1, m2 = m[i], m[j] - m[i], mt - m[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        var = m0**2 / w0 + m1**2 / w1 + m2**2 / w2
    var = np.where((w0 > 0) & (w1 > 0) & (w2 > 0), var, -np.inf)
    best = int(np.argmax(var))
    if not np.isfinite(var[best]):
        return None
    return float(centres[i[best]]), float(centres[j[best]])


@dataclass
class SupportMasks:
    """fg, bg: bool [N, H, W]; thresholds (t_lo, t_hi); source: the mask plugin's name;
    fallback: True when the fixed thresholds were used."""

    fg: np.ndarray
    bg: np.ndarray
    thresholds: tuple[float, float]
    source: str
    fallback: bool


MASK_SOURCES: Registry = Registry("mask source")


@MASK_SOURCES.register("otsu")
def otsu_masks(
    attributions: Sequence[np.ndarray], size: int | tuple[int, int], **_ignored
) -> SupportMasks:
    """Masks from a support set's raw attribution maps (float [h, w] each) at image ``size``.

    Mask sources are called as ``source(attributions, size, images=uint8 [N, H, W, 3],
    device=str)``; this one needs neither images nor a device."""
    small = np.stack([minmax(a) for a in attributions])
    found = multi_otsu(small)
    t_lo, t_hi = found if found is not None else FALLBACK_THRESHOLDS
    full = np.stack([normalise_attribution(a, size) for a in attributions])
    return SupportMasks(
        fg=full > t_hi,
        bg=full < t_lo,
        thresholds=(t_lo, t_hi),
        source="otsu",
        fallback=found is None,
    )


BG_MAX = 0.2  # bg pixels must also have attribution below this (REFERENCE 1.3)
FG_MIN = 0.5  # fallback with fewer than two masks: fg = A > 0.5, bg = A < 0.2


def select_masks(instances: np.ndarray, attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fg and bg of one image from instance proposals by eq. (1), robust to overlaps.

    instances: bool [M, H, W] (may overlap, may be empty); attribution: float [H, W] in [0, 1]
    (normalised, image size). A "nothing detected" mask (1 - union) is prepended; each non-empty
    mask is weighted by its mean attribution; per pixel the highest-weight covering mask wins
    (ties to the earlier mask); fg = the pixels of the top-weight mask; bg = the pixels of the
    lowest-weight mask that wins any pixel, AND attribution < 0.2, then a binary erosion with a
    cross footprint (pixels outside the image count as bg). With fewer than two non-empty
    masks: fg = A > 0.5, bg = A < 0.2. Returns (fg, bg), bool [H, W] each.
    """
    from scipy.ndimage import binary_erosion, generate_binary_structure

    a = np.asarray(attribution, np.float64)
    inst = np.asarray(instances, bool).reshape(-1, *a.shape)
    nothing = ~inst.any(0) if len(inst) else np.ones(a.shape, bool)
    masks = [m for m in (nothing, *inst) if m.any()]
    if len(masks) < 2:
        return a > FG_MIN, a < BG_MAX
    stack = np.stack(masks)  # [K, H, W]
    weight = np.array([a[m].mean() for m in masks])
    covered = np.where(stack, weight[:, None, None], -np.inf)
    winner = covered.argmax(0)  # first maximum: ties go to the earlier mask
    top = int(np.argmax(weight))
    fg = winner == top
    wins = np.unique(winner)
    low = int(wins[np.argmin(weight[wins])])
    bg = (winner == low) & (a < BG_MAX)
    bg = binary_erosion(bg, structure=generate_binary_structure(2, 1), border_value=1)
    return fg, bg


def segmenter_masks(
    attributions: Sequence[np.ndarray],
    size: int | tuple[int, int],
    *,
    images: np.ndarray,
    device: str = "cpu",
    segmenter: str,
) -> SupportMasks:
    """Masks from an unsupervised instance segmenter's proposals, selected by eq. (1)."""
    from protodb.segmenters.base import SEGMENTERS

    propose = SEGMENTERS.get(segmenter)
    fg, bg = [], []
    for raw, image in zip(attributions, images, strict=True):
        a = normalise_attribution(raw, image.shape[:2])
        f, b = select_masks(propose(image, device=device), a)
        fg.append(f)
        bg.append(b)
    return SupportMasks(
        fg=np.stack(fg),
        bg=np.stack(bg),
        thresholds=(BG_MAX, FG_MIN),
        source=segmenter,
        fallback=False,
    )


MASK_SOURCES.register("maskcut")(partial(segmenter_masks, segmenter="maskcut"))
MASK_SOURCES.register("sam")(partial(segmenter_masks, segmenter="sam"))
