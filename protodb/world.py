"""The offline TEST WORLD: synthetic classes with ground truth, for tests, CI and the harness.

Nothing here is a real model. The world is a closed set of synthetic classes drawn
procedurally, so the whole real pipeline (masks, prototypes, bank, vocabulary, matching, stuff
filtering) can run offline with a *meaningful* mIoU:

- **things** with a distinctive shape, colour and texture (``red disc``, ``yellow star``,
  ``purple square``, ``orange triangle``);
- **stuff** (``grass``, ``sky``, ``sand``, ``water``) that fills scenes and is also the context
  of things in their support images, so a thing's bg prototypes are near-copies of stuff fg
  prototypes (what stuff filtering, REFERENCE 1.8, exists to remove);
- **clutter** textures (concrete, wood, plaster) that belong to no class: background.

Three plugins, selected only explicitly (the ``world`` profile: ``--profile world``), never as
a fallback:

- generator ``world`` (:func:`generate_world`): support images of a class, 64 px, with an
  attribution map that imitates cross-attention: the object mask at 1/4 resolution, blurred,
  noisy, rescaled, and sometimes partial (one side of the object weakly attended);
- extractor ``world`` (:class:`WorldExtractor`): local colour and texture statistics, stride 4,
  for which nearest-prototype matching means something;
- :func:`make_dataset`: a target dataset in the PASCAL VOC layout (JPEGImages,
  SegmentationClass palette PNGs with 255 on object borders, ImageSets/Segmentation/val.txt),
  made from a seed; read it with ``protodb eval --dataset world``.

Every output made with these is labelled "test world".
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protodb.errors import ProtodbError
from protodb.extractors.base import EXTRACTORS, PROFILE_EXTRACTORS, Extractor, ExtractorConfig
from protodb.names import class_key
from protodb.synthesis.generate import (
    GENERATORS,
    PROFILE_GENERATORS,
    GeneratorConfig,
    SupportImage,
    image_seed,
)

WORLD = "world"
WORLD_VERSION = "world-1"  # bump when the drawing or the features change
LABEL = "offline test world (synthetic classes, procedural generator and extractor)"
SUPPORT_SIZE = 64
ATTN_STRIDE = 4  # attribution grid = image / 4 (SD's is / 8 at 512 px; 64 px needs finer)
SCENE_HW = (96, 128)


@dataclass(frozen=True)
class WorldClass:
    """A synthetic class. kind: "thing" or "stuff"; colour: RGB 0-255; texture: the name of a
    texture drawer; shape: thing outline ("disc", "star", "square", "triangle") or None."""

    name: str
    kind: str
    colour: tuple[int, int, int]
    texture: str
    shape: str | None = None


THINGS = (
    WorldClass("red disc", "thing", (205, 35, 40), "smooth", "disc"),
    WorldClass("yellow star", "thing", (235, 205, 35), "smooth", "star"),
    WorldClass("purple square", "thing", (125, 45, 170), "checker", "square"),
    WorldClass("orange triangle", "thing", (245, 135, 25), "stripes", "triangle"),
)
STUFF = (
    WorldClass("grass", "stuff", (55, 145, 50), "blades"),
    WorldClass("sky", "stuff", (125, 180, 240), "gradient"),
    WorldClass("sand", "stuff", (215, 190, 135), "speckle"),
    WorldClass("water", "stuff", (30, 70, 150), "waves"),
)
CLUTTER = (
    WorldClass("concrete", "clutter", (120, 120, 118), "speckle"),
    WorldClass("wood", "clutter", (105, 70, 45), "stripes"),
    WorldClass("plaster", "clutter", (200, 196, 205), "smooth"),
)
CLASSES = THINGS + STUFF
CLASS_NAMES = [c.name for c in CLASSES]
_BY_KEY = {class_key(c.name): c for c in CLASSES}


def world_class(name: str) -> WorldClass:
    """The world class called ``name`` (case-insensitive); ProtodbError listing them if none."""
    try:
        return _BY_KEY[class_key(name)]
    except KeyError:
        raise ProtodbError(
            f"class {name!r} is not in the offline test world; its classes are: "
            f"{', '.join(CLASS_NAMES)} (use --profile default or tiny for other classes)"
        ) from None


# ---------------------------------------------------------------------------------- drawing


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


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
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
    a = _blur(a, rng.uniform(0.6, 1.2))
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
        img = _clutter(rng, hw)
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


def _clutter(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A random clutter texture filling [H, W, 3]."""
    return texture(CLUTTER[rng.integers(len(CLUTTER))], hw, rng)


# ---------------------------------------------------------------------------------- plugins


@PROFILE_GENERATORS.register(WORLD)
def world_generator_config() -> GeneratorConfig:
    """The world profile's generator config (the SD-only fields are set to neutral values)."""
    return GeneratorConfig(
        name=WORLD,
        model=WORLD,
        scheduler="none",
        final_sigmas_type="none",
        steps=1,
        guidance=1.0,
        size=SUPPORT_SIZE,
        negative_prompt="",
        template="{}",
        weights=WORLD_VERSION,
    )


@GENERATORS.register(WORLD)
def generate_world(
    class_name: str,
    class_key: str,
    config: GeneratorConfig,
    seed: int,
    indices: Sequence[int],
    *,
    device: str = "cpu",
    batch_size: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[SupportImage]:
    """TEST WORLD generator: support images ``indices`` of a world class (no model involved).

    image: uint8 [S, S, 3], S = config.size; attribution: float32 [S/4, S/4] >= 0. Each image
    depends only on (class, config, seed, index)."""
    cls = world_class(class_name)
    if config.size % ATTN_STRIDE:
        raise ProtodbError(f"size={config.size} must be a multiple of {ATTN_STRIDE} for the world")
    out = []
    for i in indices:
        rng = np.random.default_rng(image_seed(class_key, config.id, seed, i))
        image, mask = draw_support(cls, config.size, rng)
        out.append(SupportImage(index=i, image=image, attribution=fake_attention(mask, rng)))
        if progress is not None:
            progress(1)
    return out


@PROFILE_EXTRACTORS.register(WORLD)
def world_extractor_config(**overrides) -> ExtractorConfig:
    """The world profile's extractor config: stride 4, short side 64, float32 storage."""
    base = dict(
        name=WORLD, model=WORLD, layer="colour+texture", input_size=64, store_dtype="float32"
    )
    base.update({k: v for k, v in overrides.items() if v is not None})
    base["weights"] = WORLD_VERSION
    return ExtractorConfig(**base)


@EXTRACTORS.register(WORLD)
class WorldExtractor(Extractor):
    """TEST WORLD extractor: local colour and texture statistics (no learned weights).

    Per cell of a stride-4 grid, over an 8x8 neighbourhood: three opponent colour means
    (R-G, (R+G)/2-B, luminance-0.45), their summed local standard deviation, mean absolute
    horizontal / vertical / diagonal luminance differences, and a constant 0.25 (so unrelated
    regions still score a little above zero, as with real features). 8 dims, float32.
    """

    patch = 4
    dim = 8

    def _forward(self, x):
        import torch
        import torch.nn.functional as F

        mean = torch.tensor((0.485, 0.456, 0.406), device=x.device).view(1, 3, 1, 1)
        std = torch.tensor((0.229, 0.224, 0.225), device=x.device).view(1, 3, 1, 1)
        rgb = x * std + mean  # back to [0, 1]
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        lum = (r + g + b) / 3
        opp = torch.cat([r - g, (r + g) / 2 - b, lum - 0.45], 1)

        def pool(t):
            return F.avg_pool2d(t, 8, stride=4, padding=2, count_include_pad=False)

        m = pool(opp)
        sd = (pool(opp**2) - m**2).clamp_min(0).sqrt().sum(1, keepdim=True)
        dx = F.pad((lum[..., :, 1:] - lum[..., :, :-1]).abs(), (0, 1, 0, 0), mode="replicate")
        dy = F.pad((lum[..., 1:, :] - lum[..., :-1, :]).abs(), (0, 0, 0, 1), mode="replicate")
        dd = F.pad((lum[..., 1:, 1:] - lum[..., :-1, :-1]).abs(), (0, 1, 0, 1), mode="replicate")
        tex = pool(torch.cat([dx, dy, dd], 1))
        const = torch.full_like(sd, 0.25)
        return torch.cat([2 * m, sd, 3 * tex, const], 1)


# ---------------------------------------------------------------------------------- dataset


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
        grown = _blur(mask.astype(np.float32), 0.7) > 0.05
        shrunk = _blur(mask.astype(np.float32), 0.7) > 0.95
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


def build_bank(db, *, n: int = 8, seed: int = 0, vocab: str = WORLD, progress: bool = True):
    """Fill ``db`` (a ProtoDB on the ``world`` profile) with every world class (stuff recorded
    as kind "stuff", things as "thing") and pin vocabulary ``vocab`` in label order.

    Returns the pinned protodb.bank.vocab.Vocabulary (an existing ``vocab`` is returned as is)."""
    if db.settings.profile != WORLD:
        raise ProtodbError(
            f"the test world needs profile 'world', not {db.settings.profile!r}: "
            "protodb.connect(bank, profile='world') or --profile world"
        )
    db.add([c.name for c in THINGS], n=n, seed=seed, kind="thing", progress=progress)
    db.add([c.name for c in STUFF], n=n, seed=seed, kind="stuff", progress=progress)
    if vocab in {v.name for v in db.vocabs()}:
        return db.vocab(vocab).info
    return db.create_vocab(vocab, CLASS_NAMES, seed=seed)
