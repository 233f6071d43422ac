"""One COCO file for a whole ``segment`` run (``segment --coco FILE``, ``ProtoDB.segment(coco=)``).

The file is built after the run from what ``segment`` already wrote per image
(protodb.query.outputs): the summaries give the images, each ``<stem>_rle.json`` the
annotations. A ``--skip-existing`` resume reads the same files back, so it gives the same file
as one uninterrupted run. The file is written to a temporary file in its folder and moved into
place (``os.replace``), so a run stopped at any point leaves the previous file or none.

Fields (COCO's instance-segmentation format, readable by ``pycocotools.coco.COCO``; its
``annotations`` list is also COCO's results format, for ``COCO.loadRes``):

- ``info``: {"description", "protodb_version", "vocab" (name), "vocab_bank_version" (the bank
  version the vocabulary pinned), "vocab_created_at"};
- ``images``: {"id" (1..N, input order), "file_name" (the image's file name), "path" (as
  given), "height", "width", "label_png" (the label PNG's file name)};
- ``categories``: {"id" (1..C: label i is the vocabulary's class i; 0, background, is no
  category), "name", "supercategory" ("thing" or "stuff"), "isthing" (1 or 0, the vocabulary's
  pinned kinds)};
- ``annotations``: one per (image, class present): {"id" (1..), "image_id", "category_id",
  "segmentation" (compressed RLE {"size": [H, W], "counts": str}), "area" (pixels), "bbox"
  ([x, y, width, height]), "iscrowd": 0, "score" (the class's mean score over its pixels)}.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from protodb.errors import ParameterError, ProtodbError

if TYPE_CHECKING:
    from protodb.bank.vocab import Vocabulary


@dataclass(frozen=True)
class CocoFile:
    """What :func:`write_coco` wrote: ``path``, ``images`` and ``annotations`` (counts)."""

    path: Path
    images: int
    annotations: int


def check_coco_path(coco: str | os.PathLike) -> Path:
    """``coco`` as a Path, refused (ParameterError naming ``coco``) unless it can be a file:
    local, not a folder, in a folder that exists."""
    text = str(coco)
    if text.startswith("s3://"):
        raise ParameterError("coco", text, "must be a local file; give a path on this machine")
    path = Path(coco)
    if path.is_dir():
        raise ParameterError("coco", text, "is a folder; give a file name, e.g. run.json")
    if not path.parent.is_dir():
        raise ParameterError(
            "coco", text, f"is in a folder that does not exist ({str(path.parent)!r}); create it"
        )
    return path


def categories(vocab: Vocabulary) -> list[dict]:
    """The COCO categories of ``vocab``: ids 1..C in label order, ``isthing`` from the pinned
    kinds (a class of unknown kind is a thing, as for the query)."""
    return [
        {
            "id": i,
            "name": c.name,
            "supercategory": "stuff" if c.kind == "stuff" else "thing",
            "isthing": 0 if c.kind == "stuff" else 1,
        }
        for i, c in enumerate(vocab.classes, start=1)
    ]


def _info(vocab: Vocabulary) -> dict:
    from protodb.version import __version__

    return {
        "description": f"protodb segment with vocabulary {vocab.name!r}",
        "protodb_version": __version__,
        "vocab": vocab.name,
        "vocab_bank_version": vocab.bank_version,
        "vocab_created_at": str(vocab.created_at) if vocab.created_at else None,
    }


def _image(k: int, s: dict) -> dict:
    return {
        "id": k,
        "file_name": Path(s["image"]).name,
        "path": s["image"],
        "height": s["height"],
        "width": s["width"],
        "label_png": Path(s["label_png"]).name,
    }


def _annotations(image_id: int, s: dict, first_id: int) -> list[dict]:
    """The annotations of one image from its ``<stem>_rle.json`` (background left out)."""
    try:
        records = json.loads(Path(s["rle_json"]).read_text())
    except (OSError, ValueError) as e:
        raise ProtodbError(
            f"cannot read {s['rle_json']!r} ({type(e).__name__}); segment that image again "
            "(delete its .json, then --skip-existing)"
        ) from None
    out = []
    for r in records:
        if r["category_id"] == 0:
            continue
        if "score" not in r or "bbox" not in r:
            raise ProtodbError(
                f"{s['rle_json']!r} was written by an older protodb (no score or bbox); "
                "segment that image again (delete its .json, then --skip-existing)"
            )
        out.append(
            {
                "id": first_id + len(out),
                "image_id": image_id,
                "category_id": r["category_id"],
                "segmentation": r["segmentation"],
                "area": r["area"],
                "bbox": r["bbox"],
                "iscrowd": 0,
                "score": r["score"],
            }
        )
    return out


def write_coco(coco: str | os.PathLike, summaries: Sequence[dict], vocab: Vocabulary) -> CocoFile:
    """Write the COCO file of a run (see the module docstring) to ``coco``.

    summaries: the per-image summaries ``segment`` returns (protodb.query.outputs.write_outputs:
    "image", "height", "width", "label_png", "rle_json"), in input order; vocab: the vocabulary
    segmented with. Annotations are streamed image by image into a temporary file beside
    ``coco``, moved into place at the end; on any error it is removed and ``coco`` untouched."""
    path = check_coco_path(coco)
    head = {
        "info": _info(vocab),
        "images": [_image(k, s) for k, s in enumerate(summaries, start=1)],
        "categories": categories(vocab),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(head)[:-1] + ', "annotations": [')
            for k, s in enumerate(summaries, start=1):
                for a in _annotations(k, s, count + 1):
                    f.write((", " if count else "") + json.dumps(a))
                    count += 1
            f.write("]}\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return CocoFile(path=path, images=len(summaries), annotations=count)


@dataclass(frozen=True)
class CocoSink:
    """Where a ``segment`` run's COCO file goes (``path`` None: nowhere) and its vocabulary."""

    path: Path | None = None
    vocab: Vocabulary | None = None

    def write(self, summaries: list[dict]) -> list[dict]:
        """Write the COCO file of ``summaries`` (when there is a path); returns them."""
        if self.path is not None and self.vocab is not None:
            write_coco(self.path, summaries, self.vocab)
        return summaries


def coco_sink(coco: str | os.PathLike | None, runtime, vocab: str, out) -> CocoSink:
    """The sink of ``ProtoDB.segment(coco=)``, checked before any work: ``coco`` a file name
    (:func:`check_coco_path`), ``out`` local (the RLE files are read back from it), the
    vocabulary ``vocab`` read from ``runtime`` (a protodb.runtime.Runtime)."""
    if coco is None:
        return CocoSink()
    path = check_coco_path(coco)
    if str(out).startswith("s3://"):
        raise ParameterError("coco", str(coco), "needs a local --out (it reads the RLE files)")
    return CocoSink(path, runtime.vocab(vocab).info)
