"""Mask proposals for referring segmentation (REFERENCE 2).

Sources:
- ``attention``: the subject's attention map thresholded at 5 %, 10 %, ..., 95 % (Ref-Diff's
  generator-only variant; every level kept, duplicates dropped);
- ``sam`` (default): SAM's automatic mask generator as Ref-Diff's released code ran it (SAM
  ViT-H, 32 x 32 point prompts, all three masks per point, predicted IoU > 0.88, stability
  score >= 0.95, box NMS at IoU 0.7; protodb.segmenters.amg), the ``top_k`` largest by area;
- ``maskcut``: protodb's normalized-cut segmenter, the ``top_k`` largest by area;
- ``attention+maskcut`` / ``attention+sam``: the union of both.
Masks of <= ``min_area_px`` pixels or <= ``min_area_ratio`` of the image are dropped (reference:
10,000 px and 0.0, for COCO-size images); when nothing is left, the whole image is the one
proposal (as in the reference when SAM finds nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protodb.errors import ProtodbError
from protodb.models.defaults import SAM_REFER_DEFAULT
from protodb.segmenters.amg import REFERENCE_AMG, AmgConfig

SOURCES = ("attention", "maskcut", "sam", "attention+maskcut", "attention+sam")
LADDER = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05, 0.10, ..., 0.95


@dataclass(frozen=True)
class ProposalConfig:
    """source: one of SOURCES; ladder: attention thresholds (fractions of the min-max normalised
    map); top_k: segmenter masks kept, largest first; min_area_px / min_area_ratio: masks at or
    below either are dropped; segmenter_model: the maskcut segmenter's model (None: its
    default). SAM (the ``sam`` sources): sam_model, hub id, local dir or "tiny" (reference:
    ViT-H), and its automatic mask generator's settings, AmgConfig's fields (reference: 32
    points per side, 64 a batch, multimask, predicted IoU > 0.88, stability >= 0.95 at offset 1,
    box NMS 0.7)."""

    source: str = "sam"
    ladder: tuple[float, ...] = LADDER
    top_k: int = 10
    min_area_px: int = 10_000
    min_area_ratio: float = 0.0
    segmenter_model: str | None = None
    sam_model: str = SAM_REFER_DEFAULT
    points_per_side: int = REFERENCE_AMG.points_per_side
    points_per_batch: int = REFERENCE_AMG.points_per_batch
    multimask: bool = REFERENCE_AMG.multimask
    pred_iou_thresh: float = REFERENCE_AMG.pred_iou_thresh
    stability_score_thresh: float = REFERENCE_AMG.stability_score_thresh
    stability_score_offset: float = REFERENCE_AMG.stability_score_offset
    box_nms_thresh: float = REFERENCE_AMG.box_nms_thresh

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ProtodbError(
                f"proposal source {self.source!r} is unknown; use one of {', '.join(SOURCES)}"
            )
        if self.top_k < 1:
            raise ProtodbError(f"top_k={self.top_k} must be >= 1 (Ref-Diff: 10)")
        if not all(0.0 < t < 1.0 for t in self.ladder) or not self.ladder:
            raise ProtodbError(f"ladder {self.ladder} must hold thresholds between 0 and 1")
        _ = self.amg  # a bad SAM setting: ParameterError naming it

    @property
    def amg(self) -> AmgConfig:
        """The SAM automatic mask generator's settings."""
        return AmgConfig(
            points_per_side=self.points_per_side,
            points_per_batch=self.points_per_batch,
            multimask=self.multimask,
            pred_iou_thresh=self.pred_iou_thresh,
            stability_score_thresh=self.stability_score_thresh,
            stability_score_offset=self.stability_score_offset,
            box_nms_thresh=self.box_nms_thresh,
        )

    @property
    def segmenter(self) -> str | None:
        return self.source.split("+")[-1] if self.source != "attention" else None

    @property
    def uses_attention(self) -> bool:
        return self.source.startswith("attention")


@dataclass
class Proposals:
    """masks: bool [M, H, W] (M >= 1); sources: one label per mask ("attention@0.35", "sam#2",
    "bank#1", "image" for the whole-image fallback)."""

    masks: np.ndarray
    sources: list[str] = field(default_factory=list)


def threshold_ladder(attention: np.ndarray, ladder=LADDER) -> tuple[np.ndarray, list[str]]:
    """float [H, W] in [0, 1] -> (bool [L, H, W], labels): ``attention >= t`` per threshold."""
    a = np.asarray(attention, np.float32)
    masks = np.stack([a >= t for t in ladder]) if len(ladder) else np.zeros((0, *a.shape), bool)
    return masks, [f"attention@{t:.2f}" for t in ladder]


def size_filter(masks: np.ndarray, min_area_px: int, min_area_ratio: float) -> np.ndarray:
    """Indices of the masks with more than ``min_area_px`` pixels and more than
    ``min_area_ratio`` of the image."""
    if len(masks) == 0:
        return np.zeros(0, int)
    area = masks.reshape(len(masks), -1).sum(1)
    total = masks.shape[1] * masks.shape[2]
    return np.flatnonzero((area > min_area_px) & (area > min_area_ratio * total))


def top_k_by_area(masks: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest masks, largest first (ties: the earlier mask first)."""
    area = masks.reshape(len(masks), -1).sum(1)
    return np.argsort(-area, kind="stable")[:k]


def dedupe(masks: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Identical masks kept once (the first)."""
    seen: set[bytes] = set()
    keep = []
    for i, m in enumerate(masks):
        key = np.packbits(m).tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return masks[keep], [labels[i] for i in keep]


def segmenter_masks(
    image: np.ndarray, config: ProposalConfig, device: str = "cpu", net=None
) -> tuple[np.ndarray, list[str]]:
    """The segmenter's masks, the ``top_k`` largest (bool [K, H, W], labels "name#i"); SAM
    runs ``config.sam_model`` (or ``net``, a SamModel built by the caller) with ``config.amg``.
    """
    from protodb.segmenters.base import SEGMENTERS

    name = config.segmenter
    if name == "sam":
        kwargs = {"model": config.sam_model, "amg": config.amg, "net": net}
    else:
        kwargs = {"model": config.segmenter_model}
    masks = np.asarray(SEGMENTERS.get(name)(image, device=device, **kwargs))
    masks = masks.astype(bool).reshape(-1, *image.shape[:2])
    order = top_k_by_area(masks, config.top_k) if len(masks) else np.zeros(0, int)
    return masks[order], [f"{name}#{i}" for i in order]


def make_proposals(
    image: np.ndarray,
    attention: np.ndarray | None,
    config: ProposalConfig,
    *,
    device: str = "cpu",
    extra: tuple[np.ndarray, list[str]] | None = None,
    segmenter_net=None,
) -> Proposals:
    """The proposals of ``config.source`` (plus ``extra`` masks, e.g. the bank's), filtered by
    size and deduplicated; the whole image when nothing is left. image: uint8 [H, W, 3];
    attention: float [H, W] in [0, 1] (needed by the attention source); segmenter_net: a
    SamModel to run instead of loading ``config.sam_model``."""
    h, w = image.shape[:2]
    parts: list[tuple[np.ndarray, list[str]]] = []
    if config.uses_attention:
        if attention is None:
            raise ValueError("the attention source needs the attention map")
        parts.append(threshold_ladder(attention, config.ladder))
    if config.segmenter is not None:
        parts.append(segmenter_masks(image, config, device, segmenter_net))
    if extra is not None:
        parts.append(extra)
    masks = np.concatenate([m.reshape(-1, h, w) for m, _ in parts]) if parts else None
    labels = [s for _, ls in parts for s in ls]
    if masks is None or len(masks) == 0:
        return Proposals(np.ones((1, h, w), bool), ["image"])
    keep = size_filter(masks, config.min_area_px, config.min_area_ratio)
    if len(keep) == 0:
        return Proposals(np.ones((1, h, w), bool), ["image"])
    masks, labels = dedupe(masks[keep], [labels[i] for i in keep])
    return Proposals(masks, labels)
