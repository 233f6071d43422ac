"""A detector of the world's things in a generated image: does it show the named class's colour,
and in the right shape? Checked on the procedural world's own support images first
(:func:`check_on_procedural`), then used to score what the learned generator draws.

Colour: the pixels whose RGB is nearest to the named thing's colour among every world colour
(things, stuff, clutter) and within 70 of it; the class is *present* when they cover >= 3 % of
the image. Shape, of their largest connected region (gaps closed): the area over the disc
through its farthest pixel (disc ~1, square ~0.64, triangle and star ~0.41) and the area over
its convex hull (star ~0.56, the others ~1).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import numpy as np

from protodb.world.classes import CLUTTER, STUFF, THINGS, world_class

_COLOURS = np.array([c.colour for c in THINGS + STUFF + CLUTTER], np.float32)
_NAMES = [c.name for c in THINGS + STUFF + CLUTTER]
MIN_COVER = 0.03
MAX_DISTANCE = 70.0


@dataclass
class Detection:
    """colour: the named colour covers >= 3 % of the image; shape: the shape read from its
    largest region (None when absent)."""

    colour: bool
    shape: str | None


def colour_region(image: np.ndarray, name: str) -> np.ndarray:
    """bool [H, W]: pixels of ``image`` (uint8 [H, W, 3]) nearest in colour to class ``name``."""
    px = image.reshape(-1, 3).astype(np.float32)
    d = np.linalg.norm(px[:, None, :] - _COLOURS[None], axis=-1)
    k = _NAMES.index(world_class(name).name)
    mine = (d.argmin(1) == k) & (d[:, k] < MAX_DISTANCE)
    return mine.reshape(image.shape[:2])


def read_shape(mask: np.ndarray) -> str | None:
    """disc / square / triangle / star of the largest connected region of ``mask``."""
    from scipy import ndimage
    from scipy.spatial import ConvexHull, QhullError

    # textures (stripes, checks) leave gaps in a colour region: close them first
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2))
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    region = labels == (1 + int(np.argmax(sizes)))
    ys, xs = np.nonzero(region)
    if len(ys) < 12:
        return None
    pts = np.stack([ys, xs], 1).astype(np.float64)
    centre = pts.mean(0)
    r = np.sqrt(((pts - centre) ** 2).sum(1)).max() + 0.5
    extent = len(pts) / (np.pi * r * r)
    try:
        hull = ConvexHull(np.concatenate([pts + o for o in ((0, 0), (0, 1), (1, 0), (1, 1))]))
    except QhullError:
        return None
    solidity = len(pts) / hull.volume
    if solidity < 0.75:
        return "star"
    if extent > 0.82:
        return "disc"
    return "square" if extent > 0.52 else "triangle"


def detect(image: np.ndarray, name: str) -> Detection:
    """What ``image`` shows of thing ``name`` (see the module docstring)."""
    region = colour_region(image, name)
    present = region.mean() >= MIN_COVER
    return Detection(bool(present), read_shape(region) if present else None)


@dataclass
class SampleReport:
    """Per class: the fraction of images with the right colour, and with the right colour and
    shape; n images each."""

    n: int
    colour: dict[str, float]
    colour_and_shape: dict[str, float]


def score(images_by_class: dict[str, list[np.ndarray]]) -> SampleReport:
    """The detector over images of each thing class (name -> uint8 [S, S, 3] images)."""
    colour, both, n = {}, {}, 0
    for name, images in images_by_class.items():
        dets = [detect(im, name) for im in images]
        shape = world_class(name).shape
        colour[name] = float(np.mean([d.colour for d in dets]))
        both[name] = float(np.mean([d.colour and d.shape == shape for d in dets]))
        n = len(images)
    return SampleReport(n, colour, both)


def check_on_procedural(n: int = 16, seed: int = 0) -> SampleReport:
    """The detector on the procedural world's own support images (64 px): what it scores on
    images that are right by construction."""
    from protodb.world.draw import draw_support

    rng = np.random.default_rng(seed)
    return score({c.name: [draw_support(c, 64, rng)[0] for _ in range(n)] for c in THINGS})


def sample_learned(model: str, n: int = 8, steps: int = 25, guidance: float = 4.0) -> SampleReport:
    """The detector on ``n`` images per thing class sampled from the pipeline at ``model`` with
    the template prompt (the generator ``add`` uses)."""
    from protodb.names import class_key
    from protodb.synthesis.generate import GeneratorConfig, generate_sd

    cfg = GeneratorConfig(
        model=model, steps=steps, size=64, guidance=guidance, negative_prompt="", unet_batch=8
    )
    images = {}
    for c in THINGS:
        made = generate_sd(c.name, class_key(c.name), cfg, 0, list(range(n)), batch_size=8)
        images[c.name] = [s.image for s in made]
    return score(images)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "model",
        nargs="?",
        help="A trained pipeline's directory (e.g. protodb/world/learned/model); without it, "
        "the detector is checked on the procedural world's own images.",
    )
    p.add_argument("--n", type=int, help="Images per class (default 8 sampled, 16 procedural).")
    args = p.parse_args(argv)
    if args.n is not None and args.n < 1:
        p.error(f"--n {args.n} must be >= 1")
    if args.model is None:
        report = check_on_procedural(args.n or 16)
    else:
        report = sample_learned(args.model, n=args.n or 8)
    print(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
