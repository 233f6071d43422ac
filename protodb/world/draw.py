"""Drawing the test world: textures, shapes, support images and their imitation of attention."""

from __future__ import annotations

import math

import numpy as np

from protodb.world.classes import ATTN_STRIDE, CLUTTER, STUFF, WorldClass


def texture(cls: WorldClass, hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A texture of ``cls`` filling float32 [H, W, 3] in [0, 255]."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.asarray(cls.colour, np.float32)
    phase = rng.uniform(0, 2 * math.pi)
    if cls.texture == "smooth":
        shade = np.zeros((h, w), np.float32)
    elif cls.texture == "gradient":
        shade = 25.0 * (yy / max(h - 1, 1) - 0.5)
    elif cls.texture == "checker":
        shade = 35.0 * (((yy // 4 + xx // 4) % 2) * 2 - 1)
    elif cls.texture == "stripes":
        shade = 35.0 * np.sign(np.sin((xx + yy) * 2 * math.pi / 6 + phase))
    elif cls.texture == "blades":
        shade = 30.0 * np.sin(xx * 2 * math.pi / 3 + phase) + rng.normal(0, 12, (h, w))
    elif cls.texture == "waves":
        shade = 30.0 * np.sin(yy * 2 * math.pi / 5 + 0.3 * np.sin(xx / 4) + phase)
    elif cls.texture == "speckle":
        shade = rng.normal(0, 30, (h, w))
    else:  # pragma: no cover - the class table is fixed
        raise ValueError(cls.texture)
    jitter = rng.normal(0, 6, 3)
    out = base[None, None] + jitter[None, None] + shade[..., None] + rng.normal(0, 4, (h, w, 3))
    return np.clip(out, 0, 255).astype(np.float32)


def shape_mask(shape: str, hw: tuple[int, int], centre, radius, angle) -> np.ndarray:
    """bool [H, W]: a filled disc / star / square / triangle around ``centre`` (y, x)."""
    from PIL import Image, ImageDraw

    h, w = hw
    cy, cx = centre
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    if shape == "disc":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    else:
        if shape == "star":
            pts = [
                (radius if i % 2 == 0 else 0.45 * radius, angle + i * math.pi / 5)
                for i in range(10)
            ]
        elif shape == "square":
            pts = [(radius, angle + math.pi / 4 + i * math.pi / 2) for i in range(4)]
        else:  # triangle
            pts = [(radius, angle + i * 2 * math.pi / 3) for i in range(3)]
        draw.polygon([(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in pts], fill=255)
    return np.asarray(im) > 127


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of float [h, w] (separable, reflect padding)."""
    if sigma <= 0:
        return x
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    p = np.pad(x, r, mode="reflect")
    p = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, p)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 1, p)


def fake_attention(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Imitate a class token's cross-attention: bool [H, W] -> float32 [H/4, W/4] >= 0.

    The mask is area-averaged to the attention grid, sometimes made partial (a ramp across a
    random direction weakens one side), blurred, given low-level noise and spurious blobs, and
    scaled by a random factor (maps are unnormalised, like SD's)."""
    h, w = mask.shape
    s = ATTN_STRIDE
    a = mask.astype(np.float32).reshape(h // s, s, w // s, s).mean((1, 3))
    gh, gw = a.shape
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    if rng.random() < 0.3:  # partial: one side of the object attended weakly
        t = rng.uniform(0, 2 * math.pi)
        ramp = (np.cos(t) * (xx - gw / 2) + np.sin(t) * (yy - gh / 2)) / max(gh, gw)
        a = a * np.clip(0.75 + 1.5 * ramp, 0.15, 1.0)
    a = blur(a, rng.uniform(0.6, 1.2))
    for _ in range(rng.integers(0, 3)):  # spurious attention elsewhere
        by, bx = rng.uniform(0, gh), rng.uniform(0, gw)
        a += rng.uniform(0.05, 0.25) * np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / 4.0)
    a += np.abs(rng.normal(0, 0.04, a.shape))
    return (np.maximum(a, 0) * rng.uniform(0.5, 3.0)).astype(np.float32)


def draw_support(cls: WorldClass, size: int, rng: np.random.Generator):
    """One support image of ``cls``: (uint8 [S, S, 3], object mask bool [S, S]).

    A thing sits on one context texture: a stuff class (70%) or clutter. A stuff image is the
    stuff texture with a clutter band at one edge (0-40% of the image)."""
    hw = (size, size)
    if cls.kind == "thing":
        context = (
            STUFF[rng.integers(len(STUFF))]
            if rng.random() < 0.7
            else CLUTTER[rng.integers(len(CLUTTER))]
        )
        img = texture(context, hw, rng)
        radius = rng.uniform(0.22, 0.36) * size
        centre = (rng.uniform(0.4, 0.6) * size, rng.uniform(0.4, 0.6) * size)
        mask = shape_mask(cls.shape, hw, centre, radius, rng.uniform(0, 2 * math.pi))
    else:
        img = clutter(rng, hw)
        cut = int(rng.uniform(0.0, 0.4) * size)
        mask = np.ones(hw, bool)
        side = rng.integers(4)
        if cut:
            if side == 0:
                mask[:cut] = False
            elif side == 1:
                mask[-cut:] = False
            elif side == 2:
                mask[:, :cut] = False
            else:
                mask[:, -cut:] = False
    img = np.where(mask[..., None], texture(cls, hw, rng), img)
    return np.clip(img, 0, 255).round().astype(np.uint8), mask


def clutter(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A random clutter texture filling [H, W, 3]."""
    return texture(CLUTTER[rng.integers(len(CLUTTER))], hw, rng)
