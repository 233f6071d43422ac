"""Unsupervised instance segmenters: class-agnostic mask proposals for one image, by name.

A segmenter maps an RGB image (uint8 [H, W, 3]) to instance proposals (bool [M, H, W], M >= 0,
possibly overlapping); :func:`protodb.synthesis.masks.select_masks` turns them into fg / bg by
eq. (1).
The paper used CutLER (detectron2, not on PyPI); these are training-free substitutes
(REFERENCE 1.3):

- ``maskcut``: normalized-cut proposals on self-supervised ViT features, the MaskCut stage
  CutLER itself starts from. Patch keys of DINO ViT-B/8 (the ``dino`` extractor at 480 px;
  the tiny twin on the tiny profile), cosine affinity thresholded at tau = 0.15 (edges 1, else
  1e-5), the second-smallest generalized eigenvector of (D - W) y = lambda D y split at its
  mean, the side holding the largest |y| kept (the other side if it holds 2+ image corners);
  the kept patches are cut from the graph and the search repeats, up to 3 masks per image.
  Patch masks go to image size by nearest-neighbour upsampling.
- ``sam``: SAM automatic masks (transformers ``SamModel`` called directly; the
  mask-generation pipeline is very slow): a grid of point prompts, the best of three candidate
  masks per point kept when its predicted IoU >= 0.88, duplicates dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from protodb.registry import Registry

SegmenterFn = Callable[..., np.ndarray]
SEGMENTERS: Registry[SegmenterFn] = Registry("segmenter")

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
    from protodb.extractors.factory import default_extractor_config, get_extractor

    h, w = image.shape[:2]
    tiny = (model or "") == "tiny" or (model is None and min(h, w) < 128)
    if tiny:
        cfg = default_extractor_config("tiny", "dino")
    else:
        cfg = default_extractor_config("default", "dino", model=model, input_size=MASKCUT_INPUT)
    feats = get_extractor(cfg, device).extract(image[None])[0].numpy()
    grid = maskcut_grid(feats)
    if not len(grid):
        return np.zeros((0, h, w), bool)
    gh, gw = grid.shape[1:]
    rows = np.minimum((np.arange(h) * gh) // h, gh - 1)
    cols = np.minimum((np.arange(w) * gw) // w, gw - 1)
    return grid[:, rows][:, :, cols]


SAM_POINTS = 16  # a 16 x 16 grid of point prompts (tiny: 4 x 4)
SAM_IOU = 0.88  # keep a mask when SAM's predicted IoU reaches this
SAM_DEDUPE = 0.7  # drop a mask overlapping a better one by more than this IoU


def _dedupe(masks: np.ndarray, scores: np.ndarray, limit: float) -> np.ndarray:
    """Greedy non-maximum suppression on mask IoU: bool [M, H, W] -> indices kept, best first."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    flat = masks.reshape(len(masks), -1)
    for i in order:
        if not flat[i].any():
            continue
        ok = True
        for j in kept:
            inter = np.logical_and(flat[i], flat[j]).sum()
            union = np.logical_or(flat[i], flat[j]).sum()
            if inter / union > limit:
                ok = False
                break
        if ok:
            kept.append(int(i))
    return np.asarray(kept, np.int64)


@SEGMENTERS.register("sam")
def sam(
    image: np.ndarray,
    *,
    device: str = "cpu",
    model: str | None = None,
    iou_threshold: float = SAM_IOU,
    points: int | None = None,
) -> np.ndarray:
    """SAM automatic masks of one image: uint8 [H, W, 3] -> bool [M, H, W].

    transformers' SamModel called directly: the image (longest side resized to the model's
    input, padded bottom-right, ImageNet-normalised) is embedded once; a grid of point prompts
    (``points`` x ``points``, default 16; 4 for the tiny twin) is decoded in batches of 64
    with three candidate masks each; per point the candidate with the best predicted IoU is
    kept if it reaches ``iou_threshold``; duplicates (mask IoU > 0.7) are dropped. ``model``:
    hub id, path, or "tiny" (default: the tiny twin for images under 128 px, else ViT-B).
    """
    import torch
    import torch.nn.functional as F

    from protodb.extractors.base import IMAGENET_MEAN, IMAGENET_STD
    from protodb.models.loading import TINY
    from protodb.models.vision import SAM_DEFAULT, load_sam

    h, w = image.shape[:2]
    tiny = model == TINY or (model is None and min(h, w) < 128)
    net = load_sam(TINY if tiny else (model or SAM_DEFAULT), None, device)
    side = int(net.config.vision_config.image_size)
    grid_n = points or (4 if tiny else SAM_POINTS)
    scale = side / max(h, w)
    rh, rw = round(h * scale), round(w * scale)
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    x = F.pad(x, (0, side - rw, 0, side - rh))
    ys = (np.arange(grid_n) + 0.5) / grid_n * rh
    xs = (np.arange(grid_n) + 0.5) / grid_n * rw
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)  # (x, y)
    masks, scores = [], []
    with torch.inference_mode():
        emb = net.get_image_embeddings(x.to(device))
        for start in range(0, len(pts), 64):
            p = torch.from_numpy(pts[start : start + 64]).to(device)
            out = net(
                image_embeddings=emb,
                input_points=p[None, :, None, :],
                input_labels=torch.ones((1, len(p), 1), dtype=torch.long, device=device),
                multimask_output=True,
            )
            iou = out.iou_scores[0].float()  # [P, 3]
            best = iou.argmax(-1)
            logits = out.pred_masks[0, torch.arange(len(p)), best].float()  # [P, m, m]
            m = logits.shape[-1]
            crop = logits[:, : round(rh * m / side), : round(rw * m / side)]
            up = F.interpolate(crop[:, None], size=(h, w), mode="bilinear", align_corners=False)
            masks.append((up[:, 0] > 0).cpu().numpy())
            scores.append(iou.max(-1).values.cpu().numpy())
    masks_a, scores_a = np.concatenate(masks), np.concatenate(scores)
    good = scores_a >= iou_threshold
    masks_a, scores_a = masks_a[good], scores_a[good]
    if not len(masks_a):
        return np.zeros((0, h, w), bool)
    return masks_a[_dedupe(masks_a, scores_a, SAM_DEDUPE)]
