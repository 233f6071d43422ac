"""One COCO file per segment run (protodb.query.coco), on the tiny session bank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from protodb.errors import ParameterError, ProtodbError
from protodb.query.coco import write_coco
from protodb.query.config import QueryConfig

CONFIG = QueryConfig(windows=False)


def _images(folder: Path, n: int = 3) -> Path:
    folder.mkdir()
    for i in range(n):
        Image.fromarray(make_image(18 + 2 * i, 26, i)).save(folder / f"im{i}.png")
    return folder


def _segment(db, src, out, coco, **kw):
    return db.segment([src], vocab="v1", out=out, progress=False, config=CONFIG, coco=coco, **kw)


def test_coco_file_loads_with_pycocotools_and_matches_the_label_pngs(tiny_bank, tmp_path):
    coco_api = pytest.importorskip("pycocotools.coco")
    mask_util = pytest.importorskip("pycocotools.mask")
    src = _images(tmp_path / "in")
    coco = tmp_path / "run.json"
    summaries = _segment(tiny_bank.db, src, tmp_path / "out", coco)
    gt = coco_api.COCO(str(coco))
    data = json.loads(coco.read_text())
    vocab = tiny_bank.vocab
    assert data["info"]["vocab"] == "v1"
    assert data["info"]["vocab_bank_version"] == vocab.bank_version
    assert [(c["id"], c["name"], c["isthing"]) for c in data["categories"]] == [
        (1, "red apple", 1),  # kinds pinned from the lexicon: an apple a thing, grass stuff
        (2, "grass", 0),
    ]
    assert sorted(gt.getImgIds()) == [1, 2, 3]
    n = 0
    for k, s in enumerate(summaries, start=1):
        img = gt.loadImgs(k)[0]
        assert img["file_name"] == Path(s["image"]).name
        assert (img["height"], img["width"]) == (s["height"], s["width"])
        with Image.open(s["label_png"]) as im:
            labels = np.asarray(im)
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[k]))
        assert sorted(a["category_id"] for a in anns) == sorted(set(labels.ravel()) - {0})
        for a in anns:
            mask = labels == a["category_id"]
            np.testing.assert_array_equal(gt.annToMask(a).astype(bool), mask)
            assert a["area"] == int(mask.sum())
            rle = {"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"]}
            assert a["bbox"] == mask_util.toBbox(rle).tolist()
            assert -1.0 <= a["score"] <= 1.0
            n += 1
    assert n == len(data["annotations"]) > 0
    res = gt.loadRes(data["annotations"])  # COCO's results format too
    assert len(res.getAnnIds()) == n


def test_resumed_run_gives_the_same_coco_file_and_an_interrupt_keeps_the_previous(
    tiny_bank, tmp_path
):
    src = _images(tmp_path / "in")
    one = tmp_path / "one.json"
    _segment(tiny_bank.db, src, tmp_path / "a", one)
    coco = tmp_path / "resumed.json"
    coco.write_text('{"previous": true}')  # a file from an earlier run

    seen = []

    def stop_after_one(summary):  # Ctrl-C after the first image
        seen.append(summary)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _segment(tiny_bank.db, src, tmp_path / "b", coco, on_image=stop_after_one)
    assert coco.read_text() == '{"previous": true}'
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
    _segment(tiny_bank.db, src, tmp_path / "b", coco, skip_existing=True)
    assert coco.read_bytes() == one.read_bytes()


def test_write_coco_failing_midway_leaves_the_previous_file(tiny_bank, tmp_path):
    src = _images(tmp_path / "in")
    coco = tmp_path / "run.json"
    summaries = _segment(tiny_bank.db, src, tmp_path / "out", coco)
    before = coco.read_bytes()
    Path(summaries[1]["rle_json"]).write_text('[{"category_id": 1, "segm')  # cut short
    with pytest.raises(ProtodbError, match="cannot read .*im1_rle.json"):
        write_coco(coco, summaries, tiny_bank.vocab)  # fails on the 2nd image, mid-file
    assert coco.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "run.json"]


def test_bad_coco_paths_refused_before_any_work(tiny_bank, tmp_path):
    src = _images(tmp_path / "in", 1)
    out = tmp_path / "out"
    for bad, needle in (
        (tmp_path / "nowhere" / "run.json", "folder that does not exist"),
        (tmp_path, "is a folder"),
        ("s3://bucket/run.json", "must be a local file"),
    ):
        with pytest.raises(ParameterError, match=f"^coco=.*{needle}") as e:
            _segment(tiny_bank.db, src, out, bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ParameterError, match="needs a local --out"):
        tiny_bank.db.segment([src], vocab="v1", out="s3://b/o", coco=tmp_path / "r.json")
    assert not out.exists()
