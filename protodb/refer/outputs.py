"""Files of referring segmentation, per (image, expression) ``<stem>``, in the forms ``segment``
writes (protodb.query.outputs):

- ``<stem>.png``: the chosen mask as a 1-bit PNG at the image's size;
- ``<stem>_overlay.png``: the mask blended over the image with a legend (the expression);
- ``<stem>_rle.json``: one COCO-style RLE record of the mask;
- ``<stem>_attention.png``: the subject's attention map, 8-bit grey;
- ``<stem>.json``: the summary (ReferResult.summary plus the image and file paths), written
  last and atomically, so its presence means the pair is finished (``--skip-existing``).

Pairs come from the command line or a JSONL file, one object a line with ``image`` (a path,
relative to the file's folder) and ``expression``, optionally ``id`` (the output stem).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protodb.errors import NotFoundError, ProtodbError


@dataclass(frozen=True)
class Pair:
    """One (image path, expression) to refer, and the stem of its output files."""

    image: Path
    expression: str
    stem: str


def pair_stem(image: Path, expression: str) -> str:
    """``<image stem>__<expression slug>_<6 hex of its sha1>``: one stem per pair, stable."""
    slug = re.sub(r"[^a-z0-9]+", "-", expression.lower()).strip("-")[:40] or "expr"
    digest = hashlib.sha1(expression.encode()).hexdigest()[:6]
    return f"{image.stem}__{slug}_{digest}"


def pairs_from_args(images: Sequence[Path], expression: str) -> list[Pair]:
    """One pair per image (files, directories or globs, as segment takes them); a stem that
    repeats (one file name in two folders) gets _2, _3, ... appended."""
    from protodb.images import expand_paths

    pairs, seen = [], set()
    for p in expand_paths(list(images)):
        stem = pair_stem(p, expression)
        if stem in seen:  # same file name in two folders: number the later ones
            k = 2
            while f"{stem}_{k}" in seen:
                k += 1
            stem = f"{stem}_{k}"
        seen.add(stem)
        pairs.append(Pair(p, expression, stem))
    return pairs


def pairs_from_jsonl(path: str | os.PathLike) -> Iterator[Pair]:
    """The pairs of a JSONL file, streamed; a bad line is a ProtodbError naming it."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"pairs file {str(path)!r} does not exist; check the path")
    base = path.parent
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                image, expression = row["image"], row["expression"]
                if not isinstance(image, str) or not isinstance(expression, str):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise ProtodbError(
                    f"{path}:{n} must be a JSON object with string fields 'image' and "
                    "'expression' (and optionally 'id')"
                ) from None
            image_path = Path(image) if Path(image).is_absolute() else base / image
            stem = str(row.get("id") or pair_stem(image_path, expression))
            if "/" in stem or stem.startswith("."):
                raise ProtodbError(f"{path}:{n}: id {stem!r} must be a plain file name")
            yield Pair(image_path, expression, stem)


def pair_source(
    referrer, images: Sequence, expression: str | None, pairs: str | os.PathLike | None
) -> tuple[Iterator[Pair], int]:
    """The pairs of ``refer_files`` and their count: ``expression`` in each of ``images``
    (checked against ``referrer`` before any image is read), or the lines of the JSONL file
    ``pairs``; exactly one of the two forms."""
    if (pairs is None) == (expression is None):
        raise ProtodbError("give IMAGE... EXPRESSION or --from pairs.jsonl, not both")
    if pairs is not None:
        if images:
            raise ProtodbError("with --from pairs.jsonl give no images on the command line")
        return pairs_from_jsonl(pairs), count_lines(pairs)
    referrer.check(expression)
    items = pairs_from_args([Path(p) for p in images], expression)
    return iter(items), len(items)


def count_lines(path: str | os.PathLike) -> int:
    """Non-blank lines of a pairs file (the progress bar's total)."""
    if not Path(path).is_file():
        raise NotFoundError(f"pairs file {str(path)!r} does not exist; check the path")
    with Path(path).open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class _Labels:  # what protodb.query.outputs.overlay_image reads
    labels: np.ndarray
    classes: list[str]


def write_refer_outputs(result, image: np.ndarray, out_dir, stem: str, extra: dict) -> dict:
    """Write the files of one referred pair (module docstring); returns the summary."""
    from PIL import Image

    from protodb.query.outputs import encode_rle, overlay_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mask_path = out / f"{stem}.png"
    Image.fromarray(result.mask).save(mask_path)
    overlay_path = out / f"{stem}_overlay.png"
    labels = _Labels(result.mask.astype(np.uint8), [result.expression])
    Image.fromarray(overlay_image(labels, image)).save(overlay_path)
    rle_path = out / f"{stem}_rle.json"
    record = {
        "image": stem,
        "category_id": 1,
        "category": result.expression,
        "area": int(result.mask.sum()),
        "segmentation": encode_rle(result.mask),
    }
    _write_atomic(rle_path, json.dumps([record]))
    att_path = out / f"{stem}_attention.png"
    Image.fromarray(np.round(result.attention * 255).astype(np.uint8)).save(att_path)
    summary = {
        **extra,
        **result.summary(),
        "mask_png": str(mask_path),
        "overlay_png": str(overlay_path),
        "rle_json": str(rle_path),
        "attention_png": str(att_path),
    }
    _write_atomic(out / f"{stem}.json", json.dumps(summary, indent=2))
    return summary


def refer_files(
    referrer,
    pairs: Iterator[Pair] | Sequence[Pair],
    out: str | os.PathLike,
    *,
    total: int | None = None,
    subject: str | None = None,
    progress=False,
    on_pair: Callable[[dict], None] | None = None,
    skip_existing: bool = False,
) -> list[dict]:
    """Refer every pair (streamed: one image in memory at a time) and write its files.
    ``skip_existing``: a pair whose ``<stem>.json`` exists is not redone. Returns one summary
    per pair (with "image", "stem" and "skipped")."""
    from protodb.images import load_rgb
    from protodb.progress import Progress

    bars = Progress.of(progress)
    out = Path(out)
    summaries = []
    with bars.bar("pairs", total=total, unit="pair") as bar:
        for pair in pairs:
            done = out / f"{pair.stem}.json"
            if skip_existing and done.is_file():
                s = json.loads(done.read_text())
                s["skipped"] = True
            else:
                image = load_rgb(pair.image)
                result = referrer.refer(image, pair.expression, subject=subject)
                extra = {"image": str(pair.image), "stem": pair.stem}
                s = write_refer_outputs(result, image, out, pair.stem, extra)
                s["skipped"] = False
            summaries.append(s)
            if on_pair is not None:
                on_pair(s)
            bar.update(1)
    return summaries
