"""A contact sheet of support sets: what the generator drew, where its attention went, and the
masks cut from it, so a person can see what a model learned (or failed to).

One block of three rows per class, one column per support image (up to ``n``): the image, its
class-token attention (normalised as in REFERENCE 1.2, drawn as a heat map) and the image with
its fg mask tinted green and bg mask tinted red. Read from the bank: any profile, any model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from protodb.bank.store import Bank
from protodb.errors import NotFoundError
from protodb.names import canonical, class_key

TILE = 96
LABEL_W = 120


def _heat(a: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W, 3]: black -> red -> yellow -> white."""
    r = np.clip(3 * a, 0, 1)
    g = np.clip(3 * a - 1, 0, 1)
    b = np.clip(3 * a - 2, 0, 1)
    return (np.stack([r, g, b], -1) * 255).round().astype(np.uint8)


def _tinted(image: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    shown = image.astype(np.float64)
    shown = np.where(fg[..., None], 0.5 * shown + 0.5 * np.array([40, 220, 60]), shown)
    shown = np.where(bg[..., None], 0.5 * shown + 0.5 * np.array([230, 40, 40]), shown)
    return shown.round().astype(np.uint8)


def support_rows(bank: Bank, name: str, n: int) -> tuple[str, list[np.ndarray]] | None:
    """(display name, three lists of up to ``n`` uint8 [S, S, 3] tiles: images, attention, masks)
    of the first prototype set of class ``name``; None when it has no set."""
    from protodb.images import decode_png
    from protodb.synthesis.masks import normalise_attribution

    key = class_key(name)
    sets = bank.sets(key).to_pylist()
    if not sets:
        return None
    s = sets[0]
    supports = sorted(
        bank.supports(key, s["generator_id"], s["seed"]).to_pylist(), key=lambda r: r["index"]
    )[:n]
    rows = bank.masks(key, s["generator_id"], s["seed"], s["n"], s["mask_source"]).to_pylist()
    masks = {r["index"]: r for r in rows}
    images, heats, tinted = [], [], []
    for r in supports:
        img = decode_png(r["image_png"])
        raw = np.frombuffer(r["attribution"], "<f4").reshape(r["attr_h"], r["attr_w"])
        heat = _heat(normalise_attribution(raw, img.shape[:2]))
        m = masks.get(r["index"])
        fg = decode_png(m["fg_png"], "1") if m else np.zeros(img.shape[:2], bool)
        bg = decode_png(m["bg_png"], "1") if m else np.zeros(img.shape[:2], bool)
        images.append(img)
        heats.append(heat)
        tinted.append(_tinted(img, fg, bg))
    return s["name"], [images, heats, tinted]


def contact_sheet(
    bank: Bank, classes: list[str] | None, out: str | os.PathLike, *, n: int = 8
) -> Path:
    """Write the contact sheet of ``classes`` (None: every class in the bank) to ``out`` (PNG).
    Returns its path. A class without a prototype set raises NotFoundError naming it."""
    from PIL import Image, ImageDraw

    names = classes or [r["name"] for r in bank.classes().to_pylist()]
    if not names:
        raise NotFoundError("the bank holds no classes yet; add some first: protodb add CLASS")
    blocks = []
    for name in names:
        got = support_rows(bank, name, n)
        if got is None:
            raise NotFoundError(
                f"class {canonical(name)!r} has no prototype set; add it: "
                f"protodb add {canonical(name)!r}"
            )
        blocks.append(got)
    cols = max(len(rows[0]) for _, rows in blocks)
    sheet = Image.new("RGB", (LABEL_W + cols * TILE, len(blocks) * 3 * TILE), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for b, (label, rows) in enumerate(blocks):
        for r, (caption, tiles) in enumerate(
            zip(("image", "attention", "fg / bg"), rows, strict=True)
        ):
            y = (3 * b + r) * TILE
            draw.text((4, y + 4), label if r == 0 else "", fill=(0, 0, 0))
            draw.text((4, y + TILE // 2), caption, fill=(90, 90, 90))
            for c, tile in enumerate(tiles):
                im = Image.fromarray(tile).resize((TILE - 2, TILE - 2), Image.NEAREST)
                sheet.paste(im, (LABEL_W + c * TILE + 1, y + 1))
    path = Path(out)
    if path.is_dir():  # a folder: the sheet goes inside it
        path = path / "sheet.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
