"""Dataset readers (voc, context, coco-object, folder, world) and class lists with renamings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from protodb.errors import NotFoundError, ProtodbError
from protodb.evaluation.datasets import DATASETS, class_spec, dataset_classes, open_dataset
from protodb.images import palette


def _save_pair(image_path, label_path, labels, mode="P"):
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    h, w = labels.shape
    rng = np.random.default_rng(int(labels.sum()))
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(image_path)
    im = Image.fromarray(labels.astype(np.uint8), mode=mode)
    if mode == "P":
        im.putpalette(palette())
    im.save(label_path)


def test_class_lists_counts_and_renamings():
    voc = class_spec("voc")["classes"]
    assert len(voc) == 21 and voc[0] == "background"
    for old, new in {
        "aeroplane": "airplane",
        "diningtable": "table",
        "tvmonitor": "monitor",
        "pottedplant": "potted plant",
    }.items():
        assert new in voc and old not in voc
        assert old in class_spec("voc")["original"]
    assert voc.index("airplane") == 1 and voc.index("monitor") == 20
    ctx = class_spec("context")["classes"]
    assert len(ctx) == 60 and len(set(ctx)) == 60 and "sky" in ctx and "airplane" in ctx
    coco = class_spec("coco-object")["classes"]
    assert len(coco) == 81 and coco[1] == "person" and coco[-1] == "toothbrush"
    assert dataset_classes("voc") == voc[1:]
    assert sorted(DATASETS.names()) == ["coco-object", "context", "folder", "voc", "world"]


def test_voc_layout(tmp_path):
    ids = ["2007_000033", "2007_000042"]
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
    for k, i in enumerate(ids):
        labels = np.zeros((10, 12), np.uint8)
        labels[2:6, 3:9] = 15 + k
        labels[2, 3:9] = 255
        image = tmp_path / "JPEGImages" / f"{i}.jpg"
        _save_pair(image, tmp_path / "SegmentationClass" / f"{i}.png", labels)
    ds = open_dataset("voc", tmp_path)
    assert [s.id for s in ds.samples] == ids and len(ds.classes) == 21
    image, labels = ds.load(ds.samples[1])
    assert image.shape == (10, 12, 3) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 16, 255}  # palette indices, not colours
    assert len(open_dataset("voc", tmp_path, limit=1)) == 1


def test_context_and_coco_object_layouts(tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (ctx / "ImageSets" / "SegmentationContext" / "val.txt").write_text("2008_000002\n")
    _save_pair(
        ctx / "JPEGImages" / "2008_000002.jpg",
        ctx / "SegmentationClassContext" / "2008_000002.png",
        np.full((8, 8), 59, np.uint8),
        mode="L",
    )
    ds = open_dataset("context", ctx)
    assert ds.load(ds.samples[0])[1].max() == 59 and ds.classes[59] == "wood"
    coco = tmp_path / "coco"
    for i in ("000000000139", "000000000285"):
        _save_pair(
            coco / "images" / "val2017" / f"{i}.jpg",
            coco / "annotations" / "val2017" / f"{i}_instanceTrainIds.png",
            np.full((6, 7), 80, np.uint8),
            mode="L",
        )
    ds = open_dataset("coco-object", coco)
    assert [s.id for s in ds.samples] == ["000000000139", "000000000285"]
    assert ds.classes[80] == "toothbrush" and ds.load(ds.samples[0])[1].max() == 80


def _folder(root, classes="cat\ndog\n"):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text(classes)
    labels = np.array([[0, 1, 2], [255, 1, 0]], np.uint8)
    _save_pair(root / "images" / "a.png", root / "labels" / "a.png", labels, mode="L")
    return labels


def test_folder_layout(tmp_path):
    labels = _folder(tmp_path, "background\ncat\n\ndog\n")
    ds = open_dataset("folder", tmp_path)
    assert ds.classes == ["background", "cat", "dog"] and not ds.test_world
    np.testing.assert_array_equal(ds.load(ds.samples[0])[1], labels)
    assert dataset_classes("folder", tmp_path) == ["cat", "dog"]
    with pytest.raises(ProtodbError, match="needs --root"):
        dataset_classes("folder")


def test_bad_datasets_fail_with_the_fix(tmp_path):
    with pytest.raises(ProtodbError, match="unknown dataset 'pascal'.*coco-object"):
        open_dataset("pascal", tmp_path)
    with pytest.raises(NotFoundError, match="not a directory"):
        open_dataset("voc", tmp_path / "nope")
    with pytest.raises(NotFoundError, match="val.txt.*--root"):
        open_dataset("voc", tmp_path)
    with pytest.raises(NotFoundError, match="test_world.json"):
        open_dataset("world", tmp_path)
    _folder(tmp_path / "f", "cat\n")  # labels hold 2, but one class only
    ds = open_dataset("folder", tmp_path / "f")
    with pytest.raises(ProtodbError, match="holds value 2.*2 classes"):
        ds.load(ds.samples[0])
    with pytest.raises(ProtodbError, match="--limit 0"):
        open_dataset("folder", tmp_path / "f", limit=0)
    rgb = tmp_path / "f" / "labels" / "a.png"
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(rgb)
    with pytest.raises(ProtodbError, match="RGB image; labels must be single-channel"):
        ds.load(ds.samples[0])
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(rgb)
    with pytest.raises(ProtodbError, match="same size"):
        ds.load(ds.samples[0])


def test_a_folder_without_a_world_dataset_names_the_command_that_makes_one(tmp_path):
    from typer.testing import CliRunner

    from protodb.cli.app import app
    from protodb.evaluation.datasets import open_dataset

    with pytest.raises(NotFoundError, match=r"protodb world dataset "):
        open_dataset("world", tmp_path)
    r = CliRunner().invoke(app, ["world", "dataset", "--help"])
    assert r.exit_code == 0  # the command the message names exists


def _rotated_photo(path, stored: np.ndarray) -> None:
    """Save ``stored`` (uint8 [H, W, 3]) with EXIF Orientation 6 (a viewer turns it 90 deg)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored).save(path, exif=exif, quality=100, subsampling=0)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_benchmark_images_are_read_in_stored_pixel_order_not_exif_rotated(tmp_path, suffix):
    """Labels are drawn on the stored pixels: the reader must not apply EXIF rotation."""
    from protodb.images import load_rgb

    stored = np.zeros((24, 40, 3), np.uint8)
    stored[:8, :16] = (250, 0, 0)  # a red block top-left in stored order
    labels = np.zeros((24, 40), np.uint8)
    labels[:8, :16] = 1
    root = tmp_path / "ds"
    _rotated_photo(root / "images" / f"a{suffix}", stored)
    (root / "labels").mkdir(parents=True)
    Image.fromarray(labels, mode="L").save(root / "labels" / "a.png")
    (root / "classes.txt").write_text("apple\n")
    ds = open_dataset("folder", root)
    image, got = ds.load(ds.samples[0])
    assert image.shape == (24, 40, 3) and np.array_equal(got, labels)
    assert image[got == 1, 0].min() > 200 and image[got == 0, 0].max() < 50
    # a user's photo (segment) still shows as a viewer shows it
    assert load_rgb(root / "images" / f"a{suffix}").shape == (40, 24, 3)


def test_dataset_kinds_come_from_the_dataset_not_the_lexicon():
    from protodb.evaluation.datasets import dataset_kinds
    from protodb.synthesis.kinds import lexicon_kind

    voc = dataset_kinds("voc", dataset_classes("voc"))
    assert lexicon_kind("table")[0] == "stuff"  # COCO-Stuff's table
    assert voc["table"] == ("thing", "dataset voc") and len(voc) == 20
    assert {k for k, _ in voc.values()} == {"thing"}
    coco = dataset_kinds("coco-object", dataset_classes("coco-object"))
    assert len(coco) == 80 and {k for k, _ in coco.values()} == {"thing"}
    ctx = dataset_kinds("context", dataset_classes("context"))
    stuff = sorted(c for c, (k, _) in ctx.items() if k == "stuff")
    assert len(ctx) == 59 and len(stuff) == 22 and {"sky", "wall", "road", "grass"} <= set(stuff)
    assert all(ctx[c][0] == "thing" for c in voc)  # VOC's 20 are things in Context too
    assert ctx["table"][0] == "thing" and ctx["food"][0] == "thing"
    world = dataset_kinds("world", dataset_classes("world"))
    assert {k for k, _ in world.values()} == {"stuff", "thing"}
    assert dataset_kinds("folder", ["anything"]) is None
