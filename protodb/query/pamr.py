"""PAMR: pixel-adaptive mask refinement of score maps, guided by the image (REFERENCE 1.6).

After Araslanov & Roth (CVPR 2020), as OVDiff uses it (10 iterations, dilations 1, 2, 4, 8, 12,
24). For every pixel the neighbours are the 8 pixels at offsets (+-d, 0, +-d) for each dilation
d (48 in all, borders replicated). Affinity to neighbour n, per colour channel k:
``-|I_k(n) - I_k(p)| / (1e-8 + 0.1 * std_k(p))``, where std_k(p) is the standard deviation
(unbiased) of channel k over the 3x3 samples of every dilation around p (centre included, 9 per
dilation); the affinities are averaged over channels and soft-maxed over the neighbours. Each
iteration replaces every score by the affinity-weighted sum of its neighbours' scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ITERATIONS = 10
DILATIONS = (1, 2, 4, 8, 12, 24)


def _offsets(dilations: tuple[int, ...], centre: bool) -> list[tuple[int, int]]:
    out = []
    for d in dilations:
        for dy in (-d, 0, d):
            for dx in (-d, 0, d):
                if centre or (dy, dx) != (0, 0):
                    out.append((dy, dx))
    return out


def _shifts(x: torch.Tensor, offsets: list[tuple[int, int]], margin: int):
    """x [C, H, W] -> the views x(p + offset) for each offset (replicated borders)."""
    h, w = x.shape[-2:]
    padded = F.pad(x[None], (margin,) * 4, mode="replicate")[0]
    for dy, dx in offsets:
        yield padded[:, margin + dy : margin + dy + h, margin + dx : margin + dx + w]


def affinity(image: torch.Tensor, dilations: tuple[int, ...] = DILATIONS) -> torch.Tensor:
    """image float [3, H, W] -> affinity float [N, H, W] (N = 8 per dilation, summing to 1 over
    N at each pixel), neighbours in the order of dilations, then rows dy = -d, 0, d and columns
    dx = -d, 0, d (centre skipped)."""
    image = image.float()
    m = max(dilations)
    samples = torch.stack(list(_shifts(image, _offsets(dilations, True), m)), 1)  # [C, 9D, H, W]
    std = samples.std(dim=1)  # [C, H, W]
    diffs = torch.stack([s - image for s in _shifts(image, _offsets(dilations, False), m)], 1)
    aff = -diffs.abs() / (1e-8 + 0.1 * std[:, None])
    return aff.mean(0).softmax(0)


def pamr(
    image: torch.Tensor,
    scores: torch.Tensor,
    iterations: int = ITERATIONS,
    dilations: tuple[int, ...] = DILATIONS,
) -> torch.Tensor:
    """Refine ``scores`` float [K, H, W] guided by ``image`` float [3, H, W] (any range, same
    H, W) -> float [K, H, W]. Memory O(K H W + 48 H W): the neighbour sum loops over offsets."""
    if image.shape[-2:] != scores.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and scores {tuple(scores.shape)} differ")
    aff = affinity(image.to(scores.device), dilations)
    offsets = _offsets(dilations, False)
    m = max(dilations)
    x = scores.float()
    for _ in range(iterations):
        out = torch.zeros_like(x)
        for a, shifted in zip(aff, _shifts(x, offsets, m), strict=True):
            out.addcmul_(a[None], shifted)
        x = out
    return x
