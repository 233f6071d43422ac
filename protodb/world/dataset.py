"""The test world's target dataset: labelled scenes in the PASCAL VOC layout, made from a seed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protodb.errors import ProtodbError
from protodb.world.classes import (
    CLASS_NAMES,
    CLASSES,
    CLUTTER,
    LABEL,
    SCENE_HW,
    STUFF,
    THINGS,
    WORLD_VERSION,
)
from protodb.world.draw import blur, shape_mask, texture


@dataclass
class WorldDataset:
    """Where :func:`make_dataset` wrote a world dataset: root, image ids, the class list
    (label 0 = background, i = ``CLASS_NAMES[i - 1]``) and the seed."""

    root: Path
    ids: list[str]
    classes: list[str]
    seed: int


def draw_scene(rng: np.random.Generator, hw: tuple[int, int] = SCENE_HW):
    """One target scene: (uint8 [H, W, 3], labels uint8 [H, W]).

    The upper part is sky or clutter, the lower part grass / sand / water or clutter, and one
    to three things stand in front; labels are 0 (background = clutter), 1 + the index in
    CLASS_NAMES, and 255 on a 1-px band around each thing (VOC's "void" border)."""
    h, w = hw
    label_of = {c.name: i + 1 for i, c in enumerate(CLASSES)}
    horizon = int(rng.uniform(0.3, 0.6) * h)
    img = np.zeros((h, w, 3), np.float32)
    labels = np.zeros((h, w), np.uint8)
    upper = next(c for c in STUFF if c.name == "sky") if rng.random() < 0.6 else None
    lower = STUFF[[0, 2, 3][rng.integers(3)]] if rng.random() < 0.8 else None
    for part, sl in ((upper, np.s_[:horizon]), (lower, np.s_[horizon:])):
        rows = img[sl].shape[0]
        cls = part or CLUTTER[rng.integers(len(CLUTTER))]
        img[sl] = texture(cls, (rows, w), rng)
        labels[sl] = label_of[part.name] if part else 0
    for _ in range(rng.integers(1, 4)):
        cls = THINGS[rng.integers(len(THINGS))]
        radius = rng.uniform(0.12, 0.24) * h
        centre = (rng.uniform(0.25, 0.8) * h, rng.uniform(0.15, 0.85) * w)
        mask = shape_mask(cls.shape, hw, centre, radius, rng.uniform(0, 2 * math.pi))
        img = np.where(mask[..., None], texture(cls, hw, rng), img)
        grown = blur(mask.astype(np.float32), 0.7) > 0.05
        shrunk = blur(mask.astype(np.float32), 0.7) > 0.95
        labels[grown] = 255
        labels[shrunk] = label_of[cls.name]
    return np.clip(img, 0, 255).round().astype(np.uint8), labels


def make_dataset(root: str | Path, *, n: int = 24, seed: int = 0) -> WorldDataset:
    """Write ``n`` world scenes to ``root`` in the PASCAL VOC layout, from ``seed``.

    root/JPEGImages/<id>.jpg (quality 95), root/SegmentationClass/<id>.png (palette PNG),
    root/ImageSets/Segmentation/val.txt, and root/test_world.json (provenance: the world
    version, seed, class list). The same (n, seed) always gives the same files.
    """
    from PIL import Image

    from protodb.images import palette

    if n < 1:
        raise ProtodbError(f"--images {n} must be >= 1")
    root = Path(root)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    pal = palette()
    ids = []
    for i in range(n):
        rng = np.random.default_rng([seed, i, 7919])
        image, labels = draw_scene(rng)
        sid = f"world_{seed}_{i:04d}"
        Image.fromarray(image).save(root / "JPEGImages" / f"{sid}.jpg", quality=95)
        lab = Image.frombytes("P", labels.shape[::-1], np.ascontiguousarray(labels).tobytes())
        lab.putpalette(pal)
        lab.save(root / "SegmentationClass" / f"{sid}.png")
        ids.append(sid)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
    info = {
        "test_world": LABEL,
        "version": WORLD_VERSION,
        "seed": seed,
        "n": n,
        "classes": ["background", *CLASS_NAMES],
        "stuff": [c.name for c in STUFF],
    }
    (root / "test_world.json").write_text(json.dumps(info, indent=2) + "\n")
    return WorldDataset(root, ids, ["background", *CLASS_NAMES], seed)
