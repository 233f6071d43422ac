"""Training scenes of the learned test world: images, captions and one mask per named entity.

A scene is 64 px (the learned world's image size): one or two stuff classes (an upper and a
lower band, or one filling the image) and one to three things in front. Its caption names every
entity, things first ("a red disc and a yellow star on grass and sky"), so cross-attention
must tell classes apart; a scene with a single thing on a single stuff class is captioned, half
of the time, with the template protodb samples with ("A good picture of a red disc"), so the
generator learns the prompt ``add`` will give it. Everything depends only on the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from protodb.world.classes import STUFF, THINGS
from protodb.world.draw import shape_mask, texture

SIZE = 64
TEMPLATE = "A good picture of a {}"


@dataclass
class Scene:
    """image: uint8 [S, S, 3]; caption: str; masks: entity name -> bool [S, S] (what is
    visible of it: a thing in front hides what is behind)."""

    image: np.ndarray
    caption: str
    masks: dict[str, np.ndarray]


def _join(names: list[str]) -> str:
    return " and ".join(f"a {n}" for n in names)


def draw_training_scene(rng: np.random.Generator, size: int = SIZE) -> Scene:
    """One scene (see the module docstring), drawn from ``rng``."""
    hw = (size, size)
    stuffs = [STUFF[i] for i in rng.choice(len(STUFF), size=rng.integers(1, 3), replace=False)]
    img = np.zeros((size, size, 3), np.float32)
    masks: dict[str, np.ndarray] = {}
    if len(stuffs) == 1:
        img[:] = texture(stuffs[0], hw, rng)
        masks[stuffs[0].name] = np.ones(hw, bool)
    else:
        horizon = int(rng.uniform(0.3, 0.7) * size)
        upper, lower = stuffs
        img[:horizon] = texture(upper, (horizon, size), rng)
        img[horizon:] = texture(lower, (size - horizon, size), rng)
        top = np.zeros(hw, bool)
        top[:horizon] = True
        masks[upper.name], masks[lower.name] = top, ~top
    things = [THINGS[i] for i in rng.choice(len(THINGS), size=rng.integers(1, 4), replace=False)]
    for cls in things:
        radius = rng.uniform(0.14, 0.26) * size
        centre = (rng.uniform(0.25, 0.75) * size, rng.uniform(0.2, 0.8) * size)
        mask = shape_mask(cls.shape, hw, centre, radius, rng.uniform(0, 2 * math.pi))
        img = np.where(mask[..., None], texture(cls, hw, rng), img)
        for other in masks.values():
            other &= ~mask
        masks[cls.name] = mask
    thing_names = [c.name for c in things]
    stuff_names = [c.name for c in stuffs]
    if len(things) == 1 and len(stuffs) == 1 and rng.random() < 0.5:
        caption = TEMPLATE.format(thing_names[0])
    else:
        caption = f"{_join(thing_names)} on {' and '.join(stuff_names)}"
    image = np.clip(img, 0, 255).round().astype(np.uint8)
    return Scene(image, caption, masks)


def training_batch(seed: int, step: int, batch: int, size: int = SIZE) -> list[Scene]:
    """The scenes of training step ``step`` (each from its own generator seeded by (seed, step,
    index), so a batch never depends on what was drawn before it)."""
    return [draw_training_scene(np.random.default_rng([seed, step, i]), size) for i in range(batch)]
