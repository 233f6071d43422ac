"""Reference masks for images the learned test world's generator made, and mask quality.

The learned generator's images have no ground truth: nothing records where it drew what. But
every world class has a known colour, so, like the learned world's colour detector (the test
world's ``colour_region``, protodb.profiles.TestWorld), the reference mask of an entity is the
pixels whose RGB is nearest to its class's colour among all world colours (things, stuff and
clutter) and within 70 of it; a thing's region is closed and its holes filled (striped and
checked textures leave gaps). It is a proxy for ground truth, good where the generator used the
right colour (28 of 32 samples in REFERENCE 6) and silent on shape; figures made with it say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protodb.grounded.entity_masks import EntityMasks


def reference_masks(image: np.ndarray, names: list[str], labels: list[int]) -> EntityMasks:
    """image: uint8 [H, W, 3] from the learned world; names: world classes -> the colour-nearest
    masks (bool [E, H, W], disjoint), source "reference"."""
    from scipy import ndimage

    from protodb.profiles import test_world

    world = test_world()
    out = []
    for name in names:
        m = world.colour_region(image, name)
        if world.class_kind(name) == "thing":
            m = ndimage.binary_fill_holes(ndimage.binary_closing(m, iterations=1))
        out.append(m)
    masks = np.stack(out)
    # closing can grow a thing over its neighbour: later entities never take earlier pixels
    taken = np.zeros(masks.shape[1:], bool)
    for m in masks:
        m &= ~taken
        taken |= m
    return EntityMasks("reference", masks, list(labels))


@dataclass
class MaskScore:
    """Per class: summed intersection and union of a source's masks with the reference over
    images; ``miou``: the mean IoU over the classes with a non-empty union."""

    intersection: dict[str, int] = field(default_factory=dict)
    union: dict[str, int] = field(default_factory=dict)

    def add(self, names: list[str], masks: EntityMasks, reference: EntityMasks) -> None:
        for name, m, r in zip(names, masks.masks, reference.masks, strict=True):
            self.intersection[name] = self.intersection.get(name, 0) + int((m & r).sum())
            self.union[name] = self.union.get(name, 0) + int((m | r).sum())

    def ious(self) -> dict[str, float]:
        return {k: self.intersection[k] / u for k, u in self.union.items() if u}

    @property
    def miou(self) -> float:
        v = list(self.ious().values())
        return float(np.mean(v)) if v else 0.0
