"""Evaluation datasets: readers for the standard layouts, by name.

A dataset is a class list (label 0 = background, 255 = ignore) and a list of (image, label PNG)
pairs. Class lists of the benchmarks live in ``schemas/datasets/<name>.json`` with the renamings
of REFERENCE 1.9 (aeroplane -> airplane, diningtable -> table, tvmonitor -> monitor,
pottedplant -> potted plant); the original names are kept beside them, and so is each class's
kind (stuff or thing, :func:`dataset_kinds`): a vocabulary made from a dataset pins the
dataset's kinds, not the lexicon's (VOC's renamed diningtable, 'table', is a thing, although
COCO-Stuff's 'table' is stuff).

Layouts (``root`` is the directory given with ``--root``):

- ``voc``: VOC2012 val: JPEGImages/<id>.jpg, SegmentationClass/<id>.png,
  ImageSets/Segmentation/val.txt (21 labels).
- ``context``: PASCAL Context 59 + background, VOC2010 val: JPEGImages/<id>.jpg,
  SegmentationClassContext/<id>.png, ImageSets/SegmentationContext/val.txt (60 labels; the
  label PNGs as made by mmsegmentation's converter, 0 = background).
- ``coco-object``: images/val2017/<id>.jpg, annotations/val2017/<id>_instanceTrainIds.png
  (81 labels; COCO instance masks merged per class, 0 = background, as GroupViT / OVDiff).
- ``folder``: images/<stem>.{jpg,png,...}, labels/<stem>.png, classes.txt (one class per line
  for labels 1, 2, ...; label 0 is background).
- ``world``: the offline TEST WORLD (``protodb world dataset``): VOC layout, the world's
  synthetic classes (protodb.profiles.test_world).

Label PNGs are read as their raw values (palette indices for palette PNGs). Images are read in
stored pixel order (no EXIF rotation), the order their labels are drawn in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from protodb.errors import NotFoundError, ProtodbError
from protodb.images import IMAGE_SUFFIXES, load_rgb
from protodb.registry import Registry

IGNORE = 255
BACKGROUND = "background"


@dataclass(frozen=True)
class Sample:
    """One evaluation pair: id, image path, label PNG path."""

    id: str
    image: Path
    label: Path


@dataclass
class Dataset:
    """classes: label names, ``classes[0] == "background"``; samples in a fixed order;
    test_world: True for the synthetic offline world (reports say so)."""

    name: str
    root: Path
    classes: list[str]
    samples: list[Sample] = field(default_factory=list)
    test_world: bool = False

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """-> (image uint8 [H, W, 3] RGB, labels uint8 [H, W] in [0, K) or 255), both in the
        files' stored pixel order: the image's EXIF orientation is not applied, since the
        benchmarks' labels are drawn on the stored pixels (REFERENCE 1.9)."""
        image = load_rgb(sample.image, exif=False)
        labels = read_labels(sample.label)
        if labels.shape != image.shape[:2]:
            raise ProtodbError(
                f"label {str(sample.label)!r} is {labels.shape[1]}x{labels.shape[0]} but its "
                f"image is {image.shape[1]}x{image.shape[0]}; they must have the same size"
            )
        bad = np.unique(labels[(labels >= len(self.classes)) & (labels != IGNORE)])
        if bad.size:
            raise ProtodbError(
                f"label {str(sample.label)!r} holds value {int(bad[0])}, but dataset "
                f"{self.name!r} has {len(self.classes)} classes (0..{len(self.classes) - 1}, "
                f"{IGNORE} = ignore); check --dataset and the class list"
            )
        return image, labels


def read_labels(path: Path) -> np.ndarray:
    """A label PNG as uint8 [H, W] of raw values (palette indices for mode P)."""
    from PIL import Image

    if not path.exists():
        raise NotFoundError(f"label file {str(path)!r} does not exist")
    with Image.open(path) as im:
        if im.mode not in ("P", "L", "I", "I;16"):
            raise ProtodbError(
                f"label {str(path)!r} is a {im.mode} image; labels must be single-channel "
                "(palette or grayscale PNG of class indices)"
            )
        arr = np.asarray(im)
    if arr.max(initial=0) > 255:
        raise ProtodbError(f"label {str(path)!r} holds values above 255; use 8-bit labels")
    return arr.astype(np.uint8)


@cache
def class_spec(name: str) -> dict:
    """The parsed ``schemas/datasets/<name>.json`` (keys: name, description, layout,
    ignore_label, renamed, original, classes, stuff: the stuff classes, every other class is a
    thing; kinds_source: where that split comes from)."""
    text = resources.files("protodb.schemas").joinpath(f"datasets/{name}.json").read_text("utf-8")
    return json.loads(text)


DatasetReader = Callable[[Path], Dataset]
DATASETS: Registry[DatasetReader] = Registry("dataset")


def _ids_file(root: Path, rel: str) -> list[str]:
    path = root / rel
    if not path.exists():
        raise NotFoundError(f"{str(path)!r} does not exist; is --root the dataset's directory?")
    return [ln.strip() for ln in path.read_text("utf-8").splitlines() if ln.strip()]


def _from_spec(name: str, root: Path) -> Dataset:
    spec = class_spec(name)
    layout = spec["layout"]
    if layout["ids"]:
        ids = _ids_file(root, layout["ids"])
    else:
        label_dir = root / Path(layout["labels"]).parent
        if not label_dir.is_dir():
            raise NotFoundError(
                f"{str(label_dir)!r} does not exist; is --root the {name} directory?"
            )
        suffix = Path(layout["labels"]).name.replace("{id}", "")
        ids = sorted(p.name[: -len(suffix)] for p in label_dir.glob(f"*{suffix}"))
    samples = [
        Sample(i, root / layout["images"].format(id=i), root / layout["labels"].format(id=i))
        for i in ids
    ]
    return Dataset(name, root, list(spec["classes"]), samples)


@DATASETS.register("voc")
def read_voc(root: Path) -> Dataset:
    """PASCAL VOC 2012 val (21 labels)."""
    return _from_spec("voc", root)


@DATASETS.register("context")
def read_context(root: Path) -> Dataset:
    """PASCAL Context 59 + background (60 labels)."""
    return _from_spec("context", root)


@DATASETS.register("coco-object")
def read_coco_object(root: Path) -> Dataset:
    """COCO-Object: 80 classes + background (81 labels)."""
    return _from_spec("coco-object", root)


def read_class_list(path: Path) -> list[str]:
    """classes.txt: one class per line for labels 1, 2, ... (blank lines skipped); a first line
    "background" is accepted and dropped. Returns the names without background."""
    if not path.exists():
        raise NotFoundError(
            f"{str(path)!r} does not exist; a folder dataset needs classes.txt with one class "
            "per line (label 1 first; label 0 is background)"
        )
    names = [ln.strip() for ln in path.read_text("utf-8").splitlines() if ln.strip()]
    if names and names[0].casefold() == BACKGROUND:
        names = names[1:]
    if not names:
        raise ProtodbError(f"{str(path)!r} lists no class; write one class per line")
    return names


@DATASETS.register("folder")
def read_folder(root: Path) -> Dataset:
    """images/<stem>.<ext>, labels/<stem>.png, classes.txt."""
    classes = [BACKGROUND, *read_class_list(root / "classes.txt")]
    image_dir, label_dir = root / "images", root / "labels"
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise NotFoundError(
                f"{str(d)!r} does not exist; a folder dataset is images/, labels/ and classes.txt"
            )
    samples = []
    for img in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = label_dir / f"{img.stem}.png"
        if not label.exists():
            raise NotFoundError(f"image {str(img)!r} has no label {str(label)!r}")
        samples.append(Sample(img.stem, img, label))
    return Dataset("folder", root, classes, samples)


@DATASETS.register("world")
def read_world(root: Path) -> Dataset:
    """The offline TEST WORLD's dataset (its make_dataset, protodb.profiles.TestWorld): VOC
    layout."""
    from protodb.profiles import test_world

    if not (root / "test_world.json").exists():
        raise NotFoundError(
            f"{str(root)!r} holds no test-world dataset (no test_world.json); make one with "
            f"`protodb world dataset {root}`"
        )
    ids = _ids_file(root, "ImageSets/Segmentation/val.txt")
    samples = [
        Sample(i, root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png")
        for i in ids
    ]
    classes = [BACKGROUND, *test_world().class_names]
    return Dataset("world", root, classes, samples, test_world=True)


def open_dataset(name: str, root: str | Path, *, limit: int | None = None) -> Dataset:
    """Read dataset ``name`` (voc, context, coco-object, folder, world) at ``root``; the first
    ``limit`` samples only when given."""
    reader = DATASETS.get(name)
    path = Path(root)
    if not path.is_dir():
        raise NotFoundError(f"dataset root {str(path)!r} is not a directory; check --root")
    ds = reader(path)
    if limit is not None:
        if limit < 1:
            raise ProtodbError(f"--limit {limit} must be >= 1")
        ds.samples = ds.samples[:limit]
    if not ds.samples:
        raise NotFoundError(f"dataset {name!r} at {str(path)!r} holds no images")
    return ds


def dataset_classes(name: str, root: str | Path | None = None) -> list[str]:
    """The class names of a dataset, without background, in label order (a vocabulary's
    classes). ``folder`` needs ``root`` (its classes.txt); the others need no data."""
    DATASETS.get(name)
    if name == "folder":
        if root is None:
            raise ProtodbError("--from-dataset folder needs --root DIR (for DIR/classes.txt)")
        return read_class_list(Path(root) / "classes.txt")
    if name == "world":
        from protodb.profiles import test_world

        return list(test_world().class_names)
    return list(class_spec(name)["classes"][1:])


def dataset_kinds(name: str, classes: list[str]) -> dict[str, tuple[str, str]] | None:
    """Each of ``classes`` (a dataset's, from :func:`dataset_classes`) -> (kind, source), the
    kind "stuff" or "thing" as the dataset defines it and source "dataset <name>"; None for
    ``folder`` (its classes.txt states no kind: the bank's kinds apply).

    voc and coco-object: all things; context: the split of ``schemas/datasets/context.json``
    (after Mottaghi et al., CVPR 2014; see its ``kinds_source``); world: the test world's."""
    DATASETS.get(name)
    if name == "folder":
        return None
    if name == "world":
        from protodb.profiles import test_world

        kind_of = test_world().class_kind
        return {c: (kind_of(c), "dataset world") for c in classes}
    stuff = set(class_spec(name)["stuff"])
    return {c: ("stuff" if c in stuff else "thing", f"dataset {name}") for c in classes}
