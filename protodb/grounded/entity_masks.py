"""One mask per entity of a generated image, from one of three sources, and their agreement.

- ``attention`` (no training): each entity's raw cross-attention, normalised as REFERENCE 1.2
  (min-max, bilinear to the image, min-max), gives its foreground by the existing mask
  machinery (protodb.synthesis.masks.MASK_SOURCES: ``otsu`` thresholds, or eq. (1) over the
  proposals of ``maskcut`` / ``sam``); where foregrounds overlap, the pixel goes to the entity
  with the highest normalised attention among those whose foreground covers it.
- ``vocab``: the vocabulary's own segmentation of the image (protodb's query engine); an
  entity's mask is the pixels labelled with its class (labels of classes the prompt does not
  name are dropped to background).
- ``grounding``: the trained grounding head (protodb.grounded.grounding).

Masks of one source are disjoint. :func:`agreement` is the mean IoU between two sources over
the entities (an entity empty in both counts 0: nothing was found to agree on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protodb.errors import ProtodbError

SOURCES = ("attention", "vocab", "grounding")


@dataclass
class EntityMasks:
    """masks: bool [E, H, W], disjoint, one per entity (in the composition's entity order);
    labels: int per entity (its 1-based vocabulary label); source: where they came from."""

    source: str
    masks: np.ndarray
    labels: list[int]

    def label_map(self) -> np.ndarray:
        """uint8 [H, W]: 0 = background, else the vocabulary label of the entity there."""
        out = np.zeros(self.masks.shape[1:], np.uint8)
        for mask, label in zip(self.masks, self.labels, strict=True):
            out[mask] = label
        return out


def check_source(name: str) -> str:
    if name not in SOURCES:
        raise ProtodbError(f"--masks {name!r} is unknown; use one of: {', '.join(SOURCES)}")
    return name


def resolve_overlaps(fg: np.ndarray, attention: np.ndarray) -> np.ndarray:
    """fg: bool [E, H, W], attention: float [E, H, W] in [0, 1] -> disjoint bool [E, H, W]:
    a pixel covered by several foregrounds goes to the covering entity of highest attention
    (ties to the earlier entity)."""
    if len(fg) == 0:
        return fg
    covered = np.where(fg, attention, -np.inf)
    winner = covered.argmax(0)
    anyfg = fg.any(0)
    return np.stack([anyfg & (winner == e) for e in range(len(fg))])


def attention_masks(
    image: np.ndarray,
    attention: np.ndarray,
    labels: list[int],
    *,
    proposals: str = "otsu",
    device: str = "cpu",
) -> EntityMasks:
    """image: uint8 [H, W, 3]; attention: float [E, h, w] raw maps -> the ``attention`` source
    (see the module docstring). ``proposals``: a protodb.synthesis.masks.MASK_SOURCES name."""
    from protodb.synthesis.masks import MASK_SOURCES, normalise_attribution

    source = MASK_SOURCES.get(proposals)
    hw = image.shape[:2]
    norm = np.stack([normalise_attribution(a, hw) for a in attention])
    segmenter = getattr(source, "keywords", {}).get("segmenter")
    if segmenter is not None:  # propose once per image, select per entity by eq. (1)
        from protodb.segmenters.base import SEGMENTERS
        from protodb.synthesis.masks import select_masks

        instances = SEGMENTERS.get(segmenter)(image, device=device)
        fg = np.stack([select_masks(instances, a)[0] for a in norm])
    else:
        fg = np.stack([source([a], hw, images=image[None], device=device).fg[0] for a in attention])
    fg = fg.astype(bool)
    return EntityMasks("attention", resolve_overlaps(fg, norm), list(labels))


def vocab_masks(segmentation: np.ndarray, labels: list[int]) -> EntityMasks:
    """segmentation: uint8 [H, W] vocabulary labels (SegmentResult.labels) -> the ``vocab``
    source."""
    return EntityMasks("vocab", np.stack([segmentation == lab for lab in labels]), list(labels))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks; 0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def agreement(a: EntityMasks, b: EntityMasks) -> float:
    """Mean IoU between two sources' masks over the entities, in [0, 1]."""
    if len(a.masks) == 0:
        return 0.0
    return float(np.mean([iou(x, y) for x, y in zip(a.masks, b.masks, strict=True)]))
