"""Segmenter ``maskcut``: normalized-cut proposals on self-supervised ViT features, the MaskCut
stage CutLER itself starts from (REFERENCE 1.3).

Patch keys of DINO ViT-B/8 (the ``dino`` extractor at 480 px; the tiny twin on the tiny
profile), cosine affinity thresholded at tau = 0.15 (edges 1, else 1e-5), the second-smallest
generalized eigenvector of (D - W) y = lambda D y split at its mean, the side holding the
largest |y| kept (the other side if it holds 2+ image corners); the kept patches are cut from
the graph and the search repeats, up to 3 masks per image. Patch masks go to image size by
nearest-neighbour upsampling.
"""

from __future__ import annotations

import numpy as np

from protodb.segmenters.base import SEGMENTERS, segmenter_model

MASKCUT_TAU = 0.15
MASKCUT_MASKS = 3
MASKCUT_INPUT = 480


def ncut_bipartition(features: np.ndarray, active: np.ndarray, tau: float = MASKCUT_TAU):
    """One normalized cut over the active patches.

    features: float [P, D] (L2-normalised rows); active: bool [P], patches still in the graph.
    Returns bool [P], the foreground side (False outside ``active``), or None if the graph is
    too small (< 3 active patches).
    """
    from scipy.linalg import eigh

    idx = np.flatnonzero(active)
    if idx.size < 3:
        return None
    f = features[idx].astype(np.float64)
    w = f @ f.T
    w = np.where(w > tau, 1.0, 1e-5)
    d = np.diag(w.sum(1))
    _, vec = eigh(d - w, d, subset_by_index=[1, 1])
    y = vec[:, 0]
    side = y > y.mean()
    if not side[np.argmax(np.abs(y))]:
        side = ~side
    out = np.zeros(active.shape, bool)
    out[idx[side]] = True
    return out


def maskcut_grid(features: np.ndarray, n_masks: int = MASKCUT_MASKS, tau: float = MASKCUT_TAU):
    """MaskCut on a feature grid: float [D, h, w] -> bool [M, h, w] (M <= n_masks)."""
    d, h, w = features.shape
    f = features.reshape(d, -1).T.astype(np.float64)
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    active = np.ones(h * w, bool)
    corners = [0, w - 1, (h - 1) * w, h * w - 1]
    masks = []
    for _ in range(n_masks):
        side = ncut_bipartition(f, active, tau)
        if side is None:
            break
        if sum(side[c] for c in corners) >= 2:
            side = active & ~side
        if not side.any():
            break
        masks.append(side.reshape(h, w))
        active &= ~side
    return np.stack(masks) if masks else np.zeros((0, h, w), bool)


@SEGMENTERS.register("maskcut")
def maskcut(image: np.ndarray, *, device: str = "cpu", model: str | None = None) -> np.ndarray:
    """MaskCut proposals of one image: uint8 [H, W, 3] -> bool [M, H, W].

    ``model``: the DINO model (hub id, path or "tiny"); by default ViT-B/8, or the tiny twin
    for images smaller than the ViT's input (the tiny profile's 64 px supports).
    """
    from protodb.extractors.factory import (
        get_extractor,
        real_extractor_config,
        tiny_extractor_config,
    )
    from protodb.models.defaults import DINO_DEFAULT
    from protodb.models.loading import is_twin

    h, w = image.shape[:2]
    name = segmenter_model(model, image, DINO_DEFAULT)
    if is_twin(name):
        cfg = tiny_extractor_config("dino")
    else:
        cfg = real_extractor_config("dino", model=name, input_size=MASKCUT_INPUT)
    feats = get_extractor(cfg, device).extract(image[None])[0].numpy()
    grid = maskcut_grid(feats)
    if not len(grid):
        return np.zeros((0, h, w), bool)
    gh, gw = grid.shape[1:]
    rows = np.minimum((np.arange(h) * gh) // h, gh - 1)
    cols = np.minimum((np.arange(w) * gw) // w, gw - 1)
    return grid[:, rows][:, :, cols]
