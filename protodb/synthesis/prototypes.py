"""Prototypes: class, instance and part, for fg and bg (REFERENCE 1.5).

For one polarity (fg or bg) of one support set:

- masks go to the feature grid by a bilinear resize then ``!= 0`` (an OR over the pixels that
  touch a cell);
- a support image whose fg mask is empty on the grid is skipped (for both polarities);
- instance prototype = mean feature inside that image's mask; class prototype = mean of all
  masked features pooled over the set (the mask-size-weighted mean of instances);
- part prototypes = K-means (K = 32, k-means++, 300 iterations, tol 1e-4, seed 0) on the pooled
  masked features; K shrinks to the number of pooled features when fewer;
- rows that are not finite are dropped.

Every prototype links back to support regions: an instance to its image's mask, a part to the
grid cells assigned to its cluster (``cells``: int16 [N, h, w], part id or -1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = ("class", "instance", "part")
POLARITIES = ("fg", "bg")
DEFAULT_PARTS = 32


@dataclass
class Prototypes:
    """The prototypes of one polarity of one support set (P rows, D dims).

    vectors: float32 [P, D]; level: str [P] in LEVELS; part: int [P] (part id, -1 unless a part);
    support: int [P] (support index of an instance, -1 otherwise); weight: float32 [P] (number of
    grid cells behind the row); cells: int16 [N, h, w] part id per grid cell of each support
    image, -1 outside the mask; used: bool [N], images that contributed.
    """

    polarity: str
    vectors: np.ndarray
    level: np.ndarray
    part: np.ndarray
    support: np.ndarray
    weight: np.ndarray
    cells: np.ndarray
    used: np.ndarray

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def mask_to_grid(masks: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """bool [N, H, W] -> bool [N, h, w]: bilinear resize of the 0/1 mask, then ``!= 0``."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(masks.astype(np.float32))[:, None]
    small = F.interpolate(t, size=grid_hw, mode="bilinear", align_corners=False)[:, 0]
    return (small != 0).numpy()


def kmeans_parts(points: np.ndarray, k: int = DEFAULT_PARTS, seed: int = 0):
    """K-means++ on float32 [M, D] -> (centres float32 [k', D], labels int [M]), k' = min(k, M)."""
    from sklearn.cluster import KMeans

    k = min(k, points.shape[0])
    if k == 0:
        return np.zeros((0, points.shape[1]), np.float32), np.zeros(0, np.int64)
    if k == 1:
        return points.mean(0, keepdims=True).astype(np.float32), np.zeros(len(points), np.int64)
    km = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=300, tol=1e-4, random_state=0)
    labels = km.fit_predict(points.astype(np.float64))
    centres = np.stack([points[labels == c].mean(0) for c in range(k)]).astype(np.float32)
    return centres, labels


def build_prototypes(
    features: np.ndarray,
    mask: np.ndarray,
    keep: np.ndarray,
    polarity: str,
    parts: int = DEFAULT_PARTS,
) -> Prototypes:
    """Prototypes of one polarity.

    features: float32 [N, D, h, w]; mask: bool [N, h, w] on the feature grid; keep: bool [N],
    images allowed to contribute (those with a non-empty fg on the grid).
    """
    n, d, h, w = features.shape
    feats = features.transpose(0, 2, 3, 1)  # [N, h, w, D]
    mask = mask & keep[:, None, None]
    vectors, level, part, support, weight = [], [], [], [], []
    counts = mask.reshape(n, -1).sum(1)
    pooled = feats[mask]  # [M, D]
    if pooled.shape[0]:
        vectors.append(pooled.mean(0))
        level.append("class")
        part.append(-1)
        support.append(-1)
        weight.append(float(pooled.shape[0]))
    for i in range(n):
        if not keep[i]:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            inst = feats[i][mask[i]].mean(0) if counts[i] else np.full(d, np.nan, np.float32)
        vectors.append(inst)
        level.append("instance")
        part.append(-1)
        support.append(i)
        weight.append(float(counts[i]))
    cells = np.full((n, h, w), -1, np.int16)
    if pooled.shape[0]:
        centres, labels = kmeans_parts(pooled, parts)
        cells[mask] = labels.astype(np.int16)
        for c in range(centres.shape[0]):
            vectors.append(centres[c])
            level.append("part")
            part.append(c)
            support.append(-1)
            weight.append(float((labels == c).sum()))
    vec = np.asarray(vectors, np.float32).reshape(-1, d)
    finite = np.isfinite(vec).all(1)
    return Prototypes(
        polarity=polarity,
        vectors=vec[finite],
        level=np.asarray(level, dtype=object)[finite].astype(str),
        part=np.asarray(part, np.int32)[finite],
        support=np.asarray(support, np.int32)[finite],
        weight=np.asarray(weight, np.float32)[finite],
        cells=cells,
        used=keep & (counts > 0),
    )


def support_prototypes(
    features: np.ndarray, fg: np.ndarray, bg: np.ndarray, parts: int = DEFAULT_PARTS
) -> tuple[Prototypes, Prototypes]:
    """fg and bg prototypes of a support set.

    features: float32 [N, D, h, w]; fg, bg: bool [N, H, W] image-resolution masks.
    """
    grid = features.shape[2:]
    fg_g = mask_to_grid(fg, grid)
    bg_g = mask_to_grid(bg, grid)
    keep = fg_g.reshape(len(fg_g), -1).any(1)
    return (
        build_prototypes(features, fg_g, keep, "fg", parts),
        build_prototypes(features, bg_g, keep, "bg", parts),
    )
