"""Segmenter ``maskcut``: normalized-cut proposals on self-supervised ViT features, the MaskCut
stage CutLER itself starts from (REFERENCE 1.3), after CutLER's ``maskcut/maskcut.py``.

Patch keys of DINO ViT-B/8 (the ``dino`` extractor at 480 px; the tiny twin on the tiny
profile), cosine affinity thresholded at tau = 0.15 (edges 1, else 1e-5), the second-smallest
generalized eigenvector of (D - W) y = lambda D y split at its mean. The foreground is the side
holding the largest |y|, reversed when 3 or more of the 4 image corners fall in it; the mask is
the connected component (4-connected, as ``scipy.ndimage.label``) of the seed, the patch where
the foreground's eigenvector peaks. Up to 3 masks per image: the features of the patches of
earlier masks are zeroed (they stay in the graph, as in CutLER), a mask whose IoU with the
previous one is over 0.5 or that covers 1 % of the patches or less is dropped (from the second
on), and each mask loses the patches of the masks before it. Patch masks go to image size by
nearest-neighbour upsampling.
"""

from __future__ import annotations

import numpy as np

from protodb.segmenters.base import SEGMENTERS, segmenter_model

MASKCUT_TAU = 0.15
MASKCUT_MASKS = 3
MASKCUT_INPUT = 480
MASKCUT_REVERSE_CORNERS = 3  # reverse the cut when this many image corners are foreground
MASKCUT_MAX_IOU = 0.5  # a mask overlapping the previous one more than this is dropped
MASKCUT_MIN_AREA = 0.01  # ... and so is one of at most this share of the patches


def second_eigenvector(features: np.ndarray, tau: float = MASKCUT_TAU) -> np.ndarray | None:
    """The normalized cut's eigenvector: float [P, D] features (unit or zero rows) -> float64
    [P], the second-smallest generalized eigenvector of (D - W) y = lambda D y with W the
    cosine affinity binarised at ``tau`` (1 above, 1e-5 else); None for under 3 patches."""
    from scipy.linalg import eigh

    if len(features) < 3:
        return None
    f = features.astype(np.float64)
    w = np.where(f @ f.T > tau, 1.0, 1e-5)
    d = np.diag(w.sum(1))
    return eigh(d - w, d, subset_by_index=[1, 1])[1][:, 0]


def foreground(vec: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, int]:
    """CutLER's choice of side: float [P] eigenvector on an h x w grid -> (bool [P] the
    foreground side, split at the mean; the seed patch, where the foreground's vector peaks).
    The side holding the largest |y| is foreground unless 3+ image corners are in it."""
    h, w = hw
    side = vec > vec.mean()
    corners = [0, w - 1, (h - 1) * w, h * w - 1]
    if sum(bool(side[c]) for c in corners) >= MASKCUT_REVERSE_CORNERS:
        reverse = True
    else:
        reverse = not side[int(np.argmax(np.abs(vec)))]
    if reverse:
        side, vec = ~side, -vec
    return side, int(np.argmax(vec))


def seed_component(side: np.ndarray, seed: int, hw: tuple[int, int]) -> np.ndarray:
    """The 4-connected component of bool [P] ``side`` (an h x w grid) holding patch ``seed``:
    bool [P] (empty if the seed is not in ``side``)."""
    from scipy import ndimage

    labels, _ = ndimage.label(side.reshape(hw))
    label = labels.ravel()[seed]
    return (labels.ravel() == label) & (label > 0)


def kept(mask: np.ndarray, previous: np.ndarray) -> bool:
    """CutLER's check of a mask after the first: bool [P] ``mask`` is kept unless its IoU with
    the previous one is over 0.5 or it covers 1 % of the patches or less."""
    union = np.logical_or(mask, previous).sum()
    iou = np.logical_and(mask, previous).sum() / union if union else 0.0
    return bool(iou <= MASKCUT_MAX_IOU and mask.mean() > MASKCUT_MIN_AREA)


def maskcut_grid(features: np.ndarray, n_masks: int = MASKCUT_MASKS, tau: float = MASKCUT_TAU):
    """MaskCut on a feature grid (see the module): float [D, h, w] -> bool [M, h, w], M <=
    n_masks non-empty masks, disjoint, in the order found."""
    d, h, w = features.shape
    f = features.reshape(d, -1).T.astype(np.float64)
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    painted = np.zeros(h * w, bool)  # patches of earlier masks: their features zeroed
    taken = np.zeros(h * w, bool)  # union of the masks returned
    previous = None
    masks = []
    for i in range(n_masks):
        if previous is not None:
            painted |= previous
        vec = second_eigenvector(np.where(painted[:, None], 0.0, f), tau)
        if vec is None:
            break
        side, seed = foreground(vec, (h, w))
        mask = seed_component(side, seed, (h, w))
        if i >= 1 and not kept(mask, previous):
            mask = np.zeros_like(mask)
        previous = mask
        out = mask & ~taken
        taken |= out
        if out.any():
            masks.append(out.reshape(h, w))
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
