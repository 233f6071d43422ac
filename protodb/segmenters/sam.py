"""Segmenter ``sam``: SAM automatic masks (transformers ``SamModel`` called directly; the
mask-generation pipeline is very slow).

Two generators over one image embedding:
- ``amg`` given (protodb.segmenters.amg.AmgConfig): segment-anything's automatic mask
  generator, as Ref-Diff's proposals used it (REFERENCE 2: 32 x 32 points, all three masks per
  point, predicted IoU > 0.88, stability >= 0.95, box NMS 0.7);
- no ``amg`` (the bank's ``sam`` mask source, protodb's stand-in for CutLER, REFERENCE 1.3):
  a 16 x 16 grid, the best of three candidate masks per point kept when its predicted IoU >=
  0.88, duplicates (mask IoU > 0.7) dropped. Its settings are in the bank's recipes.
"""

from __future__ import annotations

import numpy as np

from protodb.segmenters.base import SEGMENTERS, segmenter_model

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
    amg=None,
    net=None,
) -> np.ndarray:
    """SAM automatic masks of one image: uint8 [H, W, 3] -> bool [M, H, W].

    transformers' SamModel called directly: the image (longest side resized to the model's
    input, padded bottom-right, ImageNet-normalised) is embedded once. With ``amg`` (an
    AmgConfig) its automatic mask generator runs (module docstring; ``iou_threshold`` and
    ``points`` unused), masks best predicted IoU first. Without: a grid of point prompts
    (``points`` x ``points``, default 16; 4 for the tiny twin) is decoded in batches of 64
    with three candidate masks each; per point the candidate with the best predicted IoU is
    kept if it reaches ``iou_threshold``; duplicates (mask IoU > 0.7) are dropped. ``model``:
    hub id, path, or "tiny" (default: the tiny twin for images under 128 px, else ViT-B);
    ``net``: a SamModel built by the caller, used instead of loading ``model`` (benchmarks).
    """
    import torch
    import torch.nn.functional as F

    from protodb.extractors.base import IMAGENET_MEAN, IMAGENET_STD
    from protodb.models.defaults import SAM_DEFAULT
    from protodb.models.loading import is_twin
    from protodb.models.vision import load_sam

    h, w = image.shape[:2]
    name = segmenter_model(model, image, SAM_DEFAULT)
    tiny = is_twin(name)
    net = net if net is not None else load_sam(name, None, device)
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
    if amg is not None:
        from protodb.segmenters.amg import amg_masks

        with torch.inference_mode():
            emb = net.get_image_embeddings(x.to(device))
        return amg_masks(net, emb, (h, w), (rh, rw), amg, device)[0]
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
