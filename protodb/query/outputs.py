"""Files a segmentation writes, per image ``<stem>``:

- ``<stem>.png``: palette PNG label map at the image's size (0 = background, i = i-th class);
- ``<stem>_overlay.png``: the labels blended over the image, with a legend panel on the right
  (a colour swatch and the name of every label present);
- ``<stem>_rle.json``: COCO-style run-length encoded masks, one per label present
  (``{"size": [H, W], "counts": str}``, column-major, readable by ``pycocotools.mask.decode``),
  with the label's bbox and mean score (see :func:`rle_annotations`);
- ``<stem>_scores.npy`` (with ``save_scores``): float32 [1 + C, H, W], the fused score maps;
- ``<stem>.json``: the per-image summary (see :func:`write_outputs`), written last and
  atomically, so its presence means the image is finished (``--skip-existing`` relies on it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def rle_counts(mask: np.ndarray) -> list[int]:
    """bool [H, W] -> COCO run lengths over the column-major pixels, starting with a 0-run."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs


def rle_string(counts: list[int]) -> str:
    """COCO's compressed RLE string: each count (minus the count two before it, from the
    fourth on) as 5-bit groups, low first, 0x20 marking a continuation, offset by 48."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def encode_rle(mask: np.ndarray) -> dict:
    """bool [H, W] -> {"size": [H, W], "counts": str}, as pycocotools.mask.encode gives."""
    return {
        "size": [int(mask.shape[0]), int(mask.shape[1])],
        "counts": rle_string(rle_counts(mask)),
    }


def mask_bbox(mask: np.ndarray) -> list[int]:
    """bool [H, W] -> COCO bbox [x, y, width, height] in pixels (x = column) of the True
    pixels, as pycocotools.mask.toBbox gives; [0, 0, 0, 0] for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not rows.size:
        return [0, 0, 0, 0]
    x, y = int(cols[0]), int(rows[0])
    return [x, y, int(cols[-1]) - x + 1, int(rows[-1]) - y + 1]


def rle_annotations(result, stem: str) -> list[dict]:
    """One COCO-style record per label present, background included (category_id 0):
    {"image": stem, "category_id": label, "category": name, "area": pixels, "bbox": [x, y, w,
    h] (:func:`mask_bbox`), "score": the mean of the label's score map over its pixels (float,
    6 decimals; [-1, 1] for prototype matching, [0, 1] for a student), "segmentation"}."""
    names = ["background", *result.classes]
    out = []
    for label in np.unique(result.labels).tolist():
        mask = result.labels == label
        out.append(
            {
                "image": stem,
                "category_id": int(label),
                "category": names[label],
                "area": int(mask.sum()),
                "bbox": mask_bbox(mask),
                "score": round(float(result.scores[label][mask].mean()), 6),
                "segmentation": encode_rle(mask),
            }
        )
    return out


def overlay_image(result, image: np.ndarray) -> np.ndarray:
    """uint8 [H, W + legend, 3]: labelled pixels blended with their palette colour (0.45 image
    + 0.55 colour), background darkened (0.6 image), then a white legend panel to the right."""
    from PIL import Image, ImageDraw, ImageFont

    from protodb.images import palette

    colours = np.asarray(palette(), dtype=np.uint8).reshape(-1, 3)
    fg = (result.labels > 0)[..., None]
    blend = 0.45 * image + 0.55 * colours[result.labels]
    over = np.where(fg, blend, 0.6 * image).round().astype(np.uint8)
    names = ["background", *result.classes]
    present = np.unique(result.labels).tolist()
    font = ImageFont.load_default()
    line = 14
    width = 28 + max(int(font.getlength(names[i])) for i in present)
    h = max(over.shape[0], line * len(present) + 4)
    canvas = Image.new("RGB", (over.shape[1] + width, h), (255, 255, 255))
    canvas.paste(Image.fromarray(over), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = over.shape[1] + 4
    for k, label in enumerate(present):
        y = 2 + k * line
        draw.rectangle([x, y, x + 14, y + 10], fill=tuple(int(c) for c in colours[label]))
        draw.text((x + 20, y - 1), names[label], fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summary_path(out_dir: str | os.PathLike, stem: str) -> Path:
    """Where the summary of image ``stem`` goes (its presence marks the image as done)."""
    return Path(out_dir) / f"{stem}.json"


def write_outputs(
    result,
    image: np.ndarray,
    out_dir: str | os.PathLike,
    stem: str,
    *,
    save_scores: bool = False,
    extra: dict | None = None,
) -> dict:
    """Write the files of one segmented image (see the module docstring) into ``out_dir``.

    result: protodb.query.segment.SegmentResult; image: uint8 [H, W, 3], the segmented image.
    Returns the summary, also written to ``<stem>.json``: {**extra, "label_png",
    "overlay_png", "rle_json", "scores_npy" (or None), "height", "width", "classes" (label i ->
    name, 0 = background), "areas" (name -> fraction of pixels, labels present),
    "kept" (labels the pre-filter kept, or None when it is off)}.
    """
    from PIL import Image

    from protodb.images import palette

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h, w = result.labels.shape
    label_path = out / f"{stem}.png"
    im = Image.frombytes("P", (w, h), np.ascontiguousarray(result.labels).tobytes())
    im.putpalette(palette())
    im.save(label_path, optimize=False)
    overlay_path = out / f"{stem}_overlay.png"
    Image.fromarray(overlay_image(result, image)).save(overlay_path)
    rle_path = out / f"{stem}_rle.json"
    _write_atomic(rle_path, json.dumps(rle_annotations(result, stem)))
    scores_path = None
    if save_scores:
        scores_path = out / f"{stem}_scores.npy"
        np.save(scores_path, result.scores.astype(np.float32))
    summary = {
        **(extra or {}),
        "label_png": str(label_path),
        "overlay_png": str(overlay_path),
        "rle_json": str(rle_path),
        "scores_npy": None if scores_path is None else str(scores_path),
        "height": int(h),
        "width": int(w),
        "classes": ["background", *result.classes],
        "areas": result.areas(),
        "kept": None if result.selection is None else result.selection.keep,
    }
    _write_atomic(summary_path(out, stem), json.dumps(summary, indent=2))
    return summary
