"""SAM's automatic mask generator (segment-anything's ``SamAutomaticMaskGenerator``), the
proposals of Ref-Diff's released code (REFERENCE 2): its settings and its filters.

Per batch of point prompts, SAM's three candidate masks per point (``multimask``) are kept when
their predicted IoU is above ``pred_iou_thresh`` and their stability score (the IoU of the mask
thresholded at logit +offset and at -offset) reaches ``stability_score_thresh``; the kept
masks' boxes go through greedy box NMS at ``box_nms_thresh``, scored by predicted IoU.
The reference's settings are the defaults (:data:`REFERENCE_AMG`); ``stability_score_thresh``
or ``pred_iou_thresh`` of 0 turns that filter off, as in segment-anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protodb.errors import ParameterError

MAX_POINTS_PER_SIDE = 256  # 65,536 prompts, the most an image may ask for


@dataclass(frozen=True)
class AmgConfig:
    """points_per_side: an N x N grid of point prompts over the image; points_per_batch: the
    prompts decoded at once; multimask: all three candidate masks of a point reach the filters
    (False: only the one of best predicted IoU); pred_iou_thresh: keep masks whose predicted IoU
    is above it (in [0, 1)); stability_score_thresh: keep masks whose stability score reaches it
    (in [0, 1]); stability_score_offset: the logit offset of the stability score (> 0);
    box_nms_thresh: drop a mask whose box overlaps a better-scored kept box by more than this
    IoU (in (0, 1])."""

    points_per_side: int = 32
    points_per_batch: int = 64
    multimask: bool = True
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7

    def __post_init__(self) -> None:
        for name, ref in (("points_per_side", 32), ("points_per_batch", 64)):
            if int(getattr(self, name)) < 1:
                raise ParameterError(name, getattr(self, name), f"must be >= 1 (reference: {ref})")
        if self.points_per_side > MAX_POINTS_PER_SIDE:  # N^2 prompts, 3 masks each
            raise ParameterError(
                "points_per_side",
                self.points_per_side,
                f"is too many; use at most {MAX_POINTS_PER_SIDE} (reference: 32)",
            )
        if not 0.0 <= self.pred_iou_thresh < 1.0:
            raise ParameterError(
                "pred_iou_thresh", self.pred_iou_thresh, "must be in [0, 1) (reference: 0.88)"
            )
        if not 0.0 <= self.stability_score_thresh <= 1.0:
            raise ParameterError(
                "stability_score_thresh",
                self.stability_score_thresh,
                "must be in [0, 1] (reference: 0.95)",
            )
        if not self.stability_score_offset > 0.0:
            raise ParameterError(
                "stability_score_offset", self.stability_score_offset, "must be > 0 (reference: 1)"
            )
        if not 0.0 < self.box_nms_thresh <= 1.0:
            raise ParameterError(
                "box_nms_thresh", self.box_nms_thresh, "must be in (0, 1] (reference: 0.7)"
            )


REFERENCE_AMG = AmgConfig()  # SAM ViT-H's generator in Ref-Diff's released code
BILINEAR = {"mode": "bilinear", "align_corners": False}


def point_grid(n: int) -> np.ndarray:
    """float32 [n * n, 2] (x, y) in [0, 1]: the cell centres of an n x n grid, row by row
    (segment-anything's ``build_point_grid``)."""
    c = (np.arange(n, dtype=np.float64) + 0.5) / n
    return np.stack(np.meshgrid(c, c), -1).reshape(-1, 2).astype(np.float32)


def stability_score(logits, offset: float = 1.0, threshold: float = 0.0):
    """Stability of each mask: |logits > threshold + offset| / |logits > threshold - offset|.

    logits: torch float [N, H, W]; returns torch float [N] in [0, 1] (0 where even the loose
    mask is empty). segment-anything's ``calculate_stability_score``."""
    inter = (logits > threshold + offset).flatten(1).sum(-1).float()
    union = (logits > threshold - offset).flatten(1).sum(-1).float()
    return inter / union.clamp_min(1.0)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """bool [N, H, W] -> int64 [N, 4] (x0, y0, x1, y1), the inclusive extent of each mask
    (segment-anything's ``batched_mask_to_box``; an empty mask gives 0, 0, 0, 0)."""
    out = np.zeros((len(masks), 4), np.int64)
    for i, m in enumerate(masks):
        ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if len(ys):
            out[i] = (xs[0], ys[0], xs[-1], ys[-1])
    return out


def box_nms(boxes: np.ndarray, scores: np.ndarray, thresh: float) -> np.ndarray:
    """Greedy NMS: boxes float [N, 4] (x0, y0, x1, y1), scores float [N] -> int64 indices kept,
    best score first (ties: the earlier box first); a box is dropped when its IoU with a kept
    box is above ``thresh`` (areas (x1 - x0) * (y1 - y0), as torchvision's ``nms``)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    kept: list[int] = []
    alive = np.ones(len(b), bool)
    for i in order:
        if not alive[i]:
            continue
        kept.append(int(i))
        w = np.clip(np.minimum(b[i, 2], b[:, 2]) - np.maximum(b[i, 0], b[:, 0]), 0, None)
        h = np.clip(np.minimum(b[i, 3], b[:, 3]) - np.maximum(b[i, 1], b[:, 1]), 0, None)
        inter = w * h
        union = area[i] + area - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        alive &= ~(iou > thresh)
    return np.asarray(kept, np.int64)


def amg_masks(net, embedding, hw, resized, config: AmgConfig, device: str = "cpu"):
    """The automatic masks of one image from its SAM image embedding.

    net: a transformers SamModel; embedding: its image embedding [1, C, h', w']; hw: the
    image's (H, W); resized: (rh, rw), the image's size in the model's padded square input.
    Returns (bool [M, H, W], float32 [M] predicted IoU), the NMS survivors, best first."""
    import torch
    import torch.nn.functional as F

    h, w = hw
    rh, rw = resized
    side = int(net.config.vision_config.image_size)
    pts = point_grid(config.points_per_side) * np.array([rw, rh], np.float32)
    packed, scores, boxes = [], [], []
    with torch.inference_mode():
        for start in range(0, len(pts), config.points_per_batch):
            p = torch.from_numpy(pts[start : start + config.points_per_batch]).to(device)
            out = net(
                image_embeddings=embedding,
                input_points=p[None, :, None, :],
                input_labels=torch.ones((1, len(p), 1), dtype=torch.long, device=device),
                multimask_output=True,
            )
            iou = out.iou_scores[0].float()  # [P, 3]
            logits = out.pred_masks[0].float()  # [P, 3, m, m]
            if config.multimask:
                iou, logits = iou.reshape(-1), logits.flatten(0, 1)
            else:
                best = iou.argmax(-1)
                iou, logits = iou.max(-1).values, logits[torch.arange(len(p)), best]
            keep = iou > config.pred_iou_thresh if config.pred_iou_thresh > 0 else iou == iou
            iou, logits = iou[keep], logits[keep]
            for c in range(0, len(logits), 16):  # to image size in chunks (memory)
                # segment-anything's postprocess_masks: to the padded square, crop, to (H, W)
                up = F.interpolate(logits[c : c + 16, None], (side, side), **BILINEAR)
                up = F.interpolate(up[..., :rh, :rw], (h, w), **BILINEAR)[:, 0]
                s = iou[c : c + 16]
                if config.stability_score_thresh > 0:
                    ok = stability_score(up, config.stability_score_offset) >= (
                        config.stability_score_thresh
                    )
                    up, s = up[ok], s[ok]
                m = (up > 0).cpu().numpy()
                nonempty = m.reshape(len(m), -1).any(1)
                m, s = m[nonempty], s.cpu().numpy()[nonempty]
                boxes.append(mask_boxes(m))
                packed.extend(np.packbits(x, axis=None) for x in m)
                scores.append(s.astype(np.float32))
    if not packed:
        return np.zeros((0, h, w), bool), np.zeros(0, np.float32)
    scores_a = np.concatenate(scores)
    kept = box_nms(np.concatenate(boxes), scores_a, config.box_nms_thresh)
    masks = np.stack(
        [np.unpackbits(packed[i], count=h * w).reshape(h, w).astype(bool) for i in kept]
    )
    return masks, scores_a[kept]
