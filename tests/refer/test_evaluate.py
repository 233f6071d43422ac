"""Referring evaluation: the metrics, COCO masks, and every dataset form (folder, RefCOCO JSON,
parquet) with the pickle refused; end to end on the tiny profile."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import protodb
from protodb.errors import NotFoundError, ProtodbError
from protodb.query.outputs import encode_rle
from protodb.refer.evaluate import (
    folder_items,
    open_refer_dataset,
    polygons_to_mask,
    rle_to_mask,
    segmentation_to_mask,
    summarise,
)


def test_metrics_miou_oiou_and_precision():
    miou, oiou, prec = summarise([1.0, 0.55, 0.0], [10, 55, 0], [10, 100, 90])
    assert np.isclose(miou, 1.55 / 3)
    assert np.isclose(oiou, 65 / 200)  # cumulative intersection over cumulative union
    assert prec["Pr@0.5"] == pytest.approx(2 / 3) and prec["Pr@0.6"] == pytest.approx(1 / 3)
    assert list(prec) == ["Pr@0.5", "Pr@0.6", "Pr@0.7", "Pr@0.8", "Pr@0.9"]


def test_rle_round_trips_with_protodb_encoder():
    rng = np.random.default_rng(0)
    for shape in [(5, 7), (30, 20)]:
        m = rng.random(shape) > 0.6
        assert np.array_equal(rle_to_mask(encode_rle(m)), m)
    m = np.zeros((4, 4), bool)
    m[0, 0] = True  # starts with a 1-run
    assert np.array_equal(rle_to_mask(encode_rle(m)), m)
    assert np.array_equal(rle_to_mask({"size": [2, 2], "counts": [1, 2, 1]}), [[0, 1], [1, 0]])


def test_polygons_fill_the_box():
    m = polygons_to_mask([[2, 1, 6, 1, 6, 4, 2, 4]], (8, 10))
    assert m[2, 4] and not m[6, 4] and not m[2, 8]
    assert np.array_equal(segmentation_to_mask(json.dumps([[2, 1, 6, 1, 6, 4, 2, 4]]), (8, 10)), m)


def _coco_root(tmp_path, image):
    root = tmp_path / "refcoco"
    (root / "images").mkdir(parents=True)
    Image.fromarray(image).save(root / "images" / "COCO_1.jpg")
    h, w = image.shape[:2]
    inst = {
        "images": [{"id": 1, "file_name": "COCO_1.jpg", "height": h, "width": w}],
        "annotations": [
            {"id": 7, "image_id": 1, "segmentation": [[0, 0, 20, 0, 20, 20, 0, 20]]},
            {"id": 8, "image_id": 1, "segmentation": encode_rle(np.ones((h, w), bool))},
        ],
    }
    refs = [
        {"ref_id": 1, "ann_id": 7, "image_id": 1, "split": "val",
         "sentences": [{"sent": "left dog"}, {"sent": "dog on the left"}]},
        {"ref_id": 2, "ann_id": 8, "image_id": 1, "split": "train",
         "sentences": [{"sent": "everything"}]},
    ]  # fmt: skip
    (root / "instances.json").write_text(json.dumps(inst))
    (root / "refs(unc).json").write_text(json.dumps(refs))
    return root


def test_refcoco_json_form(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    root = _coco_root(tmp_path, image)
    items = open_refer_dataset("refcoco", root, split="val")
    assert [i.expression for i in items] == ["left dog", "dog on the left"]
    assert items[0].image().shape == (32, 48, 3)
    assert items[0].mask((32, 48))[10, 10] and not items[0].mask((32, 48))[30, 40]
    assert len(open_refer_dataset("refcoco", root, split="train")) == 1
    with pytest.raises(ProtodbError, match="no expression in split"):
        open_refer_dataset("refcoco", root, split="testA")


def test_refcoco_parquet_form(tmp_path):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    image = np.random.default_rng(1).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    mask = np.zeros((16, 24), bool)
    mask[:, :12] = True
    table = pa.table(
        {
            "image": [{"bytes": buf.getvalue(), "path": "x.png"}],
            "sentences": [["the left half", "left side"]],
            "raw_anns": [json.dumps({"segmentation": encode_rle(mask)})],
            "split": ["val"],
        }
    )
    root = tmp_path / "pq"
    root.mkdir()
    pq.write_table(table, root / "val.parquet")
    items = open_refer_dataset("refcocog", root)
    assert [i.expression for i in items] == ["the left half", "left side"]
    assert np.array_equal(items[0].image(), image)
    assert np.array_equal(items[1].mask((16, 24)), mask)


def test_pickle_is_refused_with_the_form_to_use(tmp_path):
    (tmp_path / "refs(unc).p").write_bytes(b"\x80\x04N.")
    with pytest.raises(ProtodbError, match="pickle.*JSON form"):
        open_refer_dataset("refcoco", tmp_path)
    with pytest.raises(ProtodbError, match="original pickle"):
        open_refer_dataset("refcoco", tmp_path / "refs(unc).p")


def test_unreadable_refcoco_files_are_one_line_errors(tmp_path):
    (tmp_path / "refs(unc).json").write_text("{not json")
    (tmp_path / "instances.json").write_text("{}")
    with pytest.raises(ProtodbError, match="not readable JSON"):
        open_refer_dataset("refcoco", tmp_path)
    bad = tmp_path / "pq"
    bad.mkdir()
    (bad / "x.parquet").write_bytes(b"garbage")
    with pytest.raises(ProtodbError, match="not readable parquet"):
        open_refer_dataset("refcoco", bad)
    with pytest.raises(ProtodbError, match="unknown"):
        open_refer_dataset("refclef", tmp_path)


def test_folder_form_and_tiny_end_to_end(tmp_path):
    root = tmp_path / "folder"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    image = np.random.default_rng(2).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / "images" / "a.png")
    m = np.zeros((40, 60), bool)
    m[:, :30] = True
    Image.fromarray(m).save(root / "masks" / "e1.png")
    lines = [{"id": "e1", "image": "a.png", "expression": "the thing on the left"}]
    (root / "expressions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (item,) = folder_items(root)
    assert np.array_equal(item.mask((40, 60)), m)
    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    rep = db.evaluate_refer("folder", root, config=db.refer_config(discriminative=False),
                            progress=False)  # fmt: skip
    assert rep.n == 1 and 0.0 <= rep.miou <= 1.0 and rep.rows[0]["id"] == "e1"
    assert rep.rows[0]["iou"] <= rep.rows[0]["best_proposal_iou"] + 1e-9
    assert json.loads(json.dumps(rep.to_dict()))["precision"]["Pr@0.9"] in (0.0, 1.0)


def test_referring_set_images_are_read_in_stored_pixel_order(tmp_path):
    """A referring set's masks are drawn on the stored pixels: no EXIF rotation."""
    root = tmp_path / "folder"
    (root / "images").mkdir(parents=True)
    stored = np.zeros((20, 36, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # a viewer turns it 90 degrees
    Image.fromarray(stored).save(root / "images" / "a.png", exif=exif)
    (root / "expressions.jsonl").write_text(
        json.dumps({"id": "e1", "image": "a.png", "expression": "it"}) + "\n"
    )
    (item,) = folder_items(root)
    assert item.image().shape == (20, 36, 3)


def test_folder_row_mask_is_found_like_its_image(tmp_path):
    """A row's "mask": "x.png" is read from the root, else from masks/, as "image" is from the
    root, else images/; a file in neither place is refused naming the row, for both alike."""
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(root / "images" / "a.png")
    m = np.zeros((8, 10), bool)
    m[2:5, 3:7] = True
    Image.fromarray(m).save(root / "masks" / "x.png")
    row = {"image": "a.png", "mask": "x.png", "expression": "the thing"}
    (root / "expressions.jsonl").write_text(json.dumps(row) + "\n")
    (item,) = folder_items(root)
    assert item.id == "x" and np.array_equal(item.mask((8, 10)), m)
    for key, missing in (("mask", "y.png"), ("image", "b.png")):
        (root / "expressions.jsonl").write_text(json.dumps({**row, key: missing}) + "\n")
        with pytest.raises(NotFoundError, match=rf"jsonl:1: {key} '{missing}' is neither at"):
            folder_items(root)
