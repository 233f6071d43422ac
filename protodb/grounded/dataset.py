"""The synthetic dataset on disk: PASCAL VOC layout, COCO RLE JSON, provenance per image.

    DIR/synth.json                      the settings every image was made with (checked on resume)
    DIR/classes.txt                     label i = line i (label 0 is background)
    DIR/JPEGImages/<id>.jpg             the generated image (quality 95)
    DIR/SegmentationClass/<id>.png      palette PNG of labels (0 = background, i = class i)
    DIR/ImageSets/Segmentation/train.txt, val.txt   the accepted ids (the same list)
    DIR/annotations.json                COCO: images, categories, one RLE annotation per entity
    DIR/meta/<id>.json                  the image's provenance, written last (marks it done)
    DIR/images -> JPEGImages, DIR/labels -> SegmentationClass   (for the ``folder`` reader)

An image refused by ``min_agreement`` keeps only its meta file (``"accepted": false``), so a
resumed run does not make it again. The id is ``<anchor>_<index>_<hash of the key>``; the index
files and ``annotations.json`` are rebuilt from the meta files at the end of every run (the ids
sorted), so an interrupted run leaves every finished image usable and a rerun completes it.
Every file depends only on the image's key: the same key gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from protodb.errors import ProtodbError

SETTINGS = "synth.json"
LINKS = {"images": "JPEGImages", "labels": "SegmentationClass"}


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def image_id(slot: str, prompt: str, generator_id: str, seed: int, index: int) -> str:
    """The file stem of an image: a readable slot prefix, its index and a hash of its key."""
    key = f"{slot}\x1f{prompt}\x1f{generator_id}\x1f{seed}\x1f{index}".encode()
    head = slot.split(":", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", head.casefold()).strip("-")[:24] or "x"
    return f"{slug}_{index:04d}_{hashlib.sha256(key).hexdigest()[:10]}"


def bbox(mask: np.ndarray) -> list[int]:
    """COCO [x, y, width, height] of a bool mask ([0, 0, 0, 0] when empty)."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return [0, 0, 0, 0]
    return [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    ]


class SynthWriter:
    """Writes one dataset directory (see the module docstring). ``settings``: a JSON-able dict
    that must equal the one already there, if any; ``classes``: label i + 1 = classes[i]."""

    def __init__(self, root: str | os.PathLike, settings: dict, classes: list[str]) -> None:
        self.root = Path(root)
        self.classes = list(classes)
        if self.root.exists() and not self.root.is_dir():
            raise ProtodbError(f"--out {str(self.root)!r} is a file; give a directory")
        here = self.root / SETTINGS
        text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
        if here.exists():
            if json.loads(here.read_text("utf-8")) != json.loads(text):
                raise ProtodbError(
                    f"--out {str(self.root)!r} holds a synthetic dataset made with other settings "
                    f"(see {SETTINGS}); use a new --out directory to make this one"
                )
        elif self.root.exists() and any(self.root.iterdir()):
            raise ProtodbError(
                f"--out {str(self.root)!r} is not empty and holds no synthetic dataset; "
                "give a new or empty directory"
            )
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "meta"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for link, target in LINKS.items():
            if not (self.root / link).exists():
                os.symlink(target, self.root / link, target_is_directory=True)
        _atomic(self.root / "classes.txt", ("\n".join(self.classes) + "\n").encode())
        if not here.exists():
            _atomic(here, text.encode())

    def meta_path(self, stem: str) -> Path:
        return self.root / "meta" / f"{stem}.json"

    def done(self, stem: str) -> bool:
        return self.meta_path(stem).exists()

    def write(self, stem: str, image: np.ndarray, labels: np.ndarray | None, record: dict) -> None:
        """Write one image: ``labels`` uint8 [H, W] (None for a refused image: meta only), then
        the image, then ``record`` (its provenance) as meta/<stem>.json, atomically."""
        from PIL import Image

        from protodb.images import palette

        if labels is not None:
            h, w = labels.shape
            lab = Image.frombytes("P", (w, h), np.ascontiguousarray(labels).tobytes())
            lab.putpalette(palette())
            tmp = self.root / "SegmentationClass" / f"{stem}.png.tmp"
            lab.save(tmp, format="PNG", optimize=False)
            os.replace(tmp, self.root / "SegmentationClass" / f"{stem}.png")
            tmp = self.root / "JPEGImages" / f"{stem}.jpg.tmp"
            Image.fromarray(image).save(tmp, format="JPEG", quality=95)
            os.replace(tmp, self.root / "JPEGImages" / f"{stem}.jpg")
        _atomic(
            self.meta_path(stem), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
        )

    def records(self) -> list[dict]:
        """Every finished image's record, ids sorted."""
        return [
            json.loads(p.read_text("utf-8")) for p in sorted((self.root / "meta").glob("*.json"))
        ]

    def finish(self, kinds: list[str]) -> list[str]:
        """Rebuild the id lists and annotations.json from the meta files; returns the accepted
        ids. ``kinds``: "thing" / "stuff" per class (the COCO supercategory)."""
        accepted = [r for r in self.records() if r["accepted"]]
        ids = [r["id"] for r in accepted]
        listing = ("\n".join(ids) + "\n").encode() if ids else b""
        for name in ("train.txt", "val.txt"):
            _atomic(self.root / "ImageSets" / "Segmentation" / name, listing)
        images, annotations = [], []
        for n, r in enumerate(accepted, start=1):
            images.append(
                {
                    "id": n,
                    "file_name": f"JPEGImages/{r['id']}.jpg",
                    "height": r["height"],
                    "width": r["width"],
                    "synth_id": r["id"],
                    "prompt": r["prompt"],
                    "agreement": r["agreement"],
                }
            )
            for a in r["annotations"]:
                annotations.append({"id": len(annotations) + 1, "image_id": n, **a})
        coco = {
            "info": {"description": "protodb synthetic dataset (see synth.json)"},
            "images": images,
            "annotations": annotations,
            "categories": [
                {"id": i + 1, "name": c, "supercategory": k}
                for i, (c, k) in enumerate(zip(self.classes, kinds, strict=True))
            ],
        }
        _atomic(self.root / "annotations.json", (json.dumps(coco, indent=1) + "\n").encode())
        return ids


def coco_annotations(entities, masks) -> list[dict]:
    """One COCO annotation per entity (without ids): category_id, segmentation (compressed
    RLE), area, bbox, iscrowd 0, entity name and token span."""
    from protodb.query.outputs import encode_rle

    return [
        {
            "category_id": int(e.label),
            "entity": e.name,
            "segmentation": encode_rle(m),
            "area": int(m.sum()),
            "bbox": bbox(m),
            "iscrowd": 0,
        }
        for e, m in zip(entities, masks, strict=True)
    ]
