"""The test world's referring set: scenes with two things, expressions that pick one, and the
ground-truth mask of the one picked (for referring segmentation, REFERENCE 2).

Each scene stands on stuff (sky over grass, sand or water) and holds two things, either
- two of one class, told apart by position ("the red disc on the left") or by size ("the big
  red disc"), or
- two classes ("the yellow star"; or "the yellow star on the right" when it is on the right).
Every scene gives one expression per thing, so a referring method must pick differently for
the two. Everything depends only on the seed.

Layout written by :func:`make_referring_set`: ``images/<id>.png``, ``masks/<id>_<k>.png`` (1-bit
PNG, the referent's visible pixels), ``pairs.jsonl`` (one line per expression: image, expression,
subject, mask, relation) and ``referring_set.json`` (provenance).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from protodb.errors import ProtodbError
from protodb.world.classes import SCENE_HW, STUFF, THINGS, WORLD_VERSION
from protodb.world.draw import shape_mask, texture


@dataclass
class Referral:
    """One expression of a scene: the subject class, the relation that tells the referent
    apart ("left", "right", "big", "small" or "class"), and the referent's mask bool [H, W]."""

    expression: str
    subject: str
    relation: str
    mask: np.ndarray


def draw_referring_scene(
    rng: np.random.Generator, hw: tuple[int, int] = SCENE_HW
) -> tuple[np.ndarray, list[Referral]]:
    """One scene (uint8 [H, W, 3]) and its two referrals (see the module docstring)."""
    h, w = hw
    img = np.zeros((h, w, 3), np.float32)
    horizon = int(rng.uniform(0.35, 0.55) * h)
    sky = next(c for c in STUFF if c.name == "sky")
    ground = STUFF[[0, 2, 3][rng.integers(3)]]
    img[:horizon] = texture(sky, (horizon, w), rng)
    img[horizon:] = texture(ground, (h - horizon, w), rng)
    kind = ("position", "size", "classes")[rng.integers(3)]
    a = THINGS[rng.integers(len(THINGS))]
    b = a if kind != "classes" else THINGS[(THINGS.index(a) + rng.integers(1, 4)) % 4]
    radii = [rng.uniform(0.16, 0.22) * h] * 2
    if kind == "size":
        radii = [rng.uniform(0.22, 0.26) * h, rng.uniform(0.11, 0.14) * h]
    xs = sorted(rng.uniform(0.15, 0.85, 2) * w)
    while xs[1] - xs[0] < 0.35 * w:  # apart, so position words mean something
        xs = sorted(rng.uniform(0.15, 0.85, 2) * w)
    if rng.random() < 0.5:
        xs = xs[::-1]
    masks = []
    for cls, r, x in zip((a, b), radii, xs, strict=True):
        centre = (rng.uniform(0.45, 0.75) * h, x)
        m = shape_mask(cls.shape, hw, centre, r, rng.uniform(0, 2 * math.pi))
        img = np.where(m[..., None], texture(cls, hw, rng), img)
        masks = [old & ~m for old in masks] + [m]
    left = 0 if xs[0] < xs[1] else 1
    side = {left: "left", 1 - left: "right"}
    out = []
    for k, cls in enumerate((a, b)):
        if kind == "position":
            rel, text = side[k], f"the {cls.name} on the {side[k]}"
        elif kind == "size":
            rel = "big" if k == 0 else "small"
            text = f"the {rel} {cls.name}"
        elif rng.random() < 0.5:
            rel, text = "class", f"the {cls.name}"
        else:
            rel, text = side[k], f"the {cls.name} on the {side[k]}"
        out.append(Referral(text, cls.name, rel, masks[k]))
    return np.clip(img, 0, 255).round().astype(np.uint8), out


def make_referring_set(root: str | Path, *, n: int = 24, seed: int = 0) -> Path:
    """Write ``n`` referring scenes (2n expressions) to ``root`` from ``seed``; returns the
    path of ``pairs.jsonl``. The same (n, seed) always gives the same files."""
    from PIL import Image

    if n < 1:
        raise ProtodbError(f"--images {n} must be >= 1")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        image, refs = draw_referring_scene(np.random.default_rng([seed, i]))
        sid = f"refer_{seed}_{i:04d}"
        Image.fromarray(image).save(root / "images" / f"{sid}.png")
        for k, ref in enumerate(refs):
            mask = f"masks/{sid}_{k}.png"
            Image.fromarray(ref.mask).save(root / mask)
            row = {k2: v for k2, v in asdict(ref).items() if k2 != "mask"}
            lines.append(json.dumps({"image": f"images/{sid}.png", **row, "mask": mask}))
    pairs = root / "pairs.jsonl"
    pairs.write_text("\n".join(lines) + "\n")
    info = {"test_world": "referring set", "version": WORLD_VERSION, "seed": seed, "n": n}
    (root / "referring_set.json").write_text(json.dumps(info, indent=2) + "\n")
    return pairs
