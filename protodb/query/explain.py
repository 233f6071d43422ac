"""Explain a pixel's label: the class that won, the prototype behind it and the support-image
regions that prototype came from (paper section 4.4, Figure 4).

Every prototype links back to its support set (REFERENCE 1.5): an instance prototype to one
support image's fg or bg mask, a part prototype to the grid cells of every support image that
K-means assigned to its cluster, a class prototype to the masks of all the images used. The
tables are read at the vocabulary's pinned versions, so an explanation never changes.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protodb.bank.reads import supports_where
from protodb.bank.schema import sql_str
from protodb.bank.store import Bank
from protodb.errors import ParameterError, ProtodbError

TILE = 160
MAX_TILES = 8


@dataclass
class Region:
    """A support region: support index, its image uint8 [H, W, 3] and mask bool [H, W]."""

    support: int
    image: np.ndarray
    mask: np.ndarray


@dataclass
class Explanation:
    """x, y: the pixel (column, row); label / class_name / score: the winning label, its name
    and fused score there; extractor_id / row: the prototype that won (the extractor whose
    winning prototype is most similar at the pixel; row indexes that extractor's assembled
    prototypes, -1 when no prototype scored); prototype: its metadata (class_key, polarity,
    level, part, support, generator_id, seed); similarity: its cosine at the pixel;
    per_extractor: {extractor id: {"row", "similarity"}}; regions: the support regions it came
    from; picture: the PNG written (or None)."""

    x: int
    y: int
    label: int
    class_name: str
    score: float
    extractor_id: str | None
    row: int
    prototype: dict
    similarity: float
    per_extractor: dict = field(default_factory=dict)
    regions: list[Region] = field(default_factory=list)
    picture: str | None = None

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "regions"}
        d["supports"] = [r.support for r in self.regions]
        return d

    def describe(self) -> str:
        """One paragraph for people."""
        head = f"pixel ({self.x}, {self.y}): {self.class_name} (score {self.score:.3f})"
        if self.row < 0:
            return head + "; no prototype scored above -1 there"
        p = self.prototype
        what = {"class": "class prototype", "instance": f"instance of support {p['support']}"}
        kind = what.get(p["level"], f"part {p['part']}")
        return (
            f"{head} via {p['polarity']} {kind} of {p['class_key']!r} "
            f"(extractor {self.extractor_id}, row {self.row}, similarity {self.similarity:.3f}); "
            f"support images {[r.support for r in self.regions]}"
        )


def support_regions(bank: Bank, vocab, extractor_id: str, proto: dict) -> list[Region]:
    """The support regions of prototype ``proto`` (a row of protodb.query.assemble.assemble),
    read at the vocabulary's pinned table versions: instance -> its image's mask of the prototype's
    polarity; part -> the cells of its cluster in every image (nearest-upsampled); class -> the
    masks of every image used."""
    from protodb.images import decode_png

    v = vocab.versions
    k, g, seed = proto["class_key"], proto["generator_id"], int(proto["seed"])
    where = supports_where(k, g, seed)
    pol = proto["polarity"]
    supports = {
        r["index"]: r["image_png"]
        for r in bank.supports(k, g, seed, version=v.get("supports")).to_pylist()
    }
    ext_where = f"{where} AND extractor_id = {sql_str(extractor_id)}"
    sets = bank.read("sets", ext_where, version=v.get("sets")).to_pylist()
    recipe = next((c.recipe_id for c in vocab.classes if c.class_key == proto["class_key"]), "")
    sets = [s for s in sets if s["recipe_id"] == recipe] if recipe else sets[:1]
    ids = ", ".join(sql_str(s["write_id"]) for s in sets) or "''"
    cells = bank.read(
        "cells",
        f"{ext_where} AND polarity = {sql_str(pol)} AND write_id IN ({ids})",
        v.get("cells"),
    )
    cells = sorted(cells.to_pylist(), key=lambda r: r["support"])
    used = [c["support"] for c in cells]
    out = []
    if proto["level"] == "part":
        for c in cells:
            grid = np.frombuffer(c["cells"], dtype="<i2").reshape(c["grid_h"], c["grid_w"])
            hit = grid == proto["part"]
            if not hit.any():
                continue
            image = decode_png(supports[c["support"]])
            ys = np.arange(image.shape[0]) * c["grid_h"] // image.shape[0]
            xs = np.arange(image.shape[1]) * c["grid_w"] // image.shape[1]
            out.append(Region(c["support"], image, hit[ys][:, xs]))
        return out
    if not sets:
        return out
    n, source = sets[0]["n"], sets[0]["mask_source"]
    masks = {
        r["index"]: r[f"{pol}_png"]
        for r in bank.masks(k, g, seed, n, source, version=v.get("masks")).to_pylist()
    }
    wanted = [proto["support"]] if proto["level"] == "instance" else used
    for s in wanted:
        if s in masks and s in supports:
            out.append(Region(s, decode_png(supports[s]), decode_png(masks[s], "1")))
    return out


def _tile(image: np.ndarray, mask: np.ndarray | None, caption: str, marker=None):
    from PIL import Image, ImageDraw

    shown = image.astype(np.float64)
    if mask is not None:
        shown = np.where(mask[..., None], 0.5 * shown + 0.5 * np.array([255, 40, 40]), 0.45 * shown)
    im = Image.fromarray(shown.round().astype(np.uint8))
    scale = TILE / max(im.size)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
    tile = Image.new("RGB", (TILE, TILE + 14), (255, 255, 255))
    tile.paste(im, (0, 14))
    draw = ImageDraw.Draw(tile)
    draw.text((2, 1), caption, fill=(0, 0, 0))
    if marker is not None:
        mx, my = marker[0] * scale, 14 + marker[1] * scale
        draw.line([mx - 6, my, mx + 6, my], fill=(255, 255, 0), width=2)
        draw.line([mx, my - 6, mx, my + 6], fill=(255, 255, 0), width=2)
    return tile


def render(explanation: Explanation, image: np.ndarray, path: str | os.PathLike) -> str:
    """Write the explanation picture: the query image with the pixel marked, then up to
    MAX_TILES support images with the prototype's region tinted red (the rest darkened)."""
    from PIL import Image, ImageDraw

    e = explanation
    tiles = [_tile(image, None, f"{e.class_name} @ ({e.x},{e.y})", marker=(e.x, e.y))]
    for r in e.regions[:MAX_TILES]:
        tiles.append(_tile(r.image, r.mask, f"support {r.support}"))
    width = TILE * len(tiles) + 4 * (len(tiles) - 1)
    lines = textwrap.wrap(e.describe(), width=max(30, width // 6))
    head = 12 * len(lines) + 6
    sheet = Image.new("RGB", (width, TILE + 14 + head), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, (i * (TILE + 4), head))
    draw = ImageDraw.Draw(sheet)
    for k, line in enumerate(lines):
        draw.text((2, 2 + 12 * k), line, fill=(0, 0, 0))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return str(out)


def explain(bank: Bank, segmenter, image: np.ndarray, x: int, y: int, *, out=None) -> Explanation:
    """Segment ``image`` (uint8 [H, W, 3]) with ``segmenter`` (protodb.query.segment.Segmenter)
    and explain pixel (x, y) (column, row). With ``out``, also write the picture (see render)."""
    return explain_points(bank, segmenter, image, [(x, y)], out=out)[0]


def explain_points(
    bank: Bank,
    segmenter,
    image: np.ndarray,
    points: Sequence[tuple[int, int]],
    *,
    out=None,
    stem: str = "image",
) -> list[Explanation]:
    """Explain several pixels (x, y) of one image from one segmentation of it (the image is
    segmented once, however many pixels are asked about). Every point is checked before any
    work. With ``out``, the pictures go where :func:`picture_paths` says (``stem``: the image
    file's, for the picture's name in a folder)."""
    h, w = image.shape[:2]
    if not points:
        raise ProtodbError("no pixel to explain: give --at X,Y (repeatable)")
    for x, y in points:
        if not (0 <= x < w and 0 <= y < h):
            raise ProtodbError(
                f"--at {x},{y} is outside the image ({w}x{h}); "
                f"give X in 0..{w - 1}, Y in 0..{h - 1}"
            )
    out_paths = picture_paths(out, points, stem)
    res = segmenter.segment(image)
    return [
        _explain_at(bank, segmenter, image, res, x, y, path)
        for (x, y), path in zip(points, out_paths, strict=True)
    ]


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def picture_paths(out, points: Sequence[tuple[int, int]], stem: str = "image") -> list[Path | None]:
    """Where the pictures of ``points`` go, decided before any work. ``out``: an image path
    (.png, .jpg, .jpeg, .webp), or a folder (one that exists, or a path with no suffix, made on
    write) that gets ``<stem>_explain.png``; for several points ``<name>_<x>_<y><suffix>``
    beside that path instead; None: no pictures. Another suffix is refused."""
    if out is None:
        return [None] * len(points)
    base = Path(out)
    if base.is_dir() or (not base.suffix and not base.exists()):
        base = base / f"{stem}_explain.png"
    elif base.suffix.lower() not in PICTURE_SUFFIXES:
        raise ParameterError(
            "out",
            str(out),
            f"is not a picture path; give a {', '.join(PICTURE_SUFFIXES)} file or a folder",
        )
    above = base.parent
    while not above.exists():  # the folders made on write must be makeable
        above = above.parent
    if not above.is_dir():
        raise ParameterError("out", str(out), f"is under {str(above)!r}, which is not a folder")
    if len(points) == 1:
        return [base]
    return [base.with_name(f"{base.stem}_{x}_{y}{base.suffix}") for x, y in points]


def _explain_at(bank: Bank, segmenter, image, res, x: int, y: int, out) -> Explanation:
    label = int(res.labels[y, x])
    per = {
        ext: {"row": int(res.winners[ext][y, x]), "similarity": float(res.winner_scores[ext][y, x])}
        for ext in res.winners
    }
    scored = [(v["similarity"], ext) for ext, v in per.items() if v["row"] >= 0]
    ext_id = max(scored)[1] if scored else None
    row, proto, regions, sim = -1, {}, [], -1.0
    if ext_id is not None:
        row, sim = per[ext_id]["row"], per[ext_id]["similarity"]
        part = next(p for p in segmenter.parts if p.protos.extractor.extractor_id == ext_id)
        meta = part.protos.rows[row] if part.protos.rows else {}
        keys = ("class_key", "polarity", "level", "part", "support", "generator_id", "seed")
        proto = {k: meta[k] for k in keys if k in meta}
        if proto.get("class_key") is not None:
            regions = support_regions(bank, segmenter.vocab, ext_id, proto)
    e = Explanation(
        x=x,
        y=y,
        label=label,
        class_name=(["background", *res.classes])[label],
        score=float(res.scores[label, y, x]),
        extractor_id=ext_id,
        row=row,
        prototype=proto,
        similarity=sim,
        per_extractor=per,
        regions=regions,
    )
    if out is not None:
        e.picture = render(e, image, out)
    return e
