import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from protodb.images import palette
from protodb.query.outputs import encode_rle, overlay_image, rle_counts, write_outputs
from protodb.query.prefilter import Selection
from protodb.query.segment import SegmentResult


def _result(labels, selection=None):
    scores = np.random.default_rng(0).uniform(-1, 1, (3, *labels.shape)).astype(np.float32)
    return SegmentResult("v", ["a", "b"], labels, scores, selection=selection)


def _labels():
    labels = np.zeros((20, 30), np.uint8)
    labels[5:10, 3:20] = 1
    labels[15:, 25:] = 2
    return labels


def test_rle_by_hand():
    m = np.array([[0, 1], [1, 1]], bool)  # column-major: 0, 1, 1, 1
    assert rle_counts(m) == [1, 3]
    assert rle_counts(np.ones((2, 2), bool)) == [0, 4]
    assert rle_counts(np.zeros((1, 3), bool)) == [3]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rle_matches_pycocotools(seed):
    mask_util = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(37, 53)) < [0.02, 0.5, 0.97][seed]
    mask[:, :5] = rng.uniform(size=(37, 5)) < 0.5
    ours = encode_rle(mask)
    ref = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["counts"] == ref["counts"].decode() and ours["size"] == [37, 53]
    decoded = mask_util.decode({"size": ours["size"], "counts": ours["counts"].encode()})
    np.testing.assert_array_equal(decoded.astype(bool), mask)


def test_write_outputs_files_and_summary(tmp_path):
    img = make_image(20, 30, 2)
    labels = _labels()
    res = _result(labels, Selection(keep=[1, 2]))
    summary = write_outputs(res, img, tmp_path / "out", "pic", save_scores=True, extra={"k": 1})
    with Image.open(summary["label_png"]) as im:
        assert im.mode == "P" and im.size == (30, 20)
        np.testing.assert_array_equal(np.asarray(im), labels)
        assert im.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
    assert summary["areas"] == {
        "background": round((labels == 0).mean(), 6),
        "a": round((labels == 1).mean(), 6),
        "b": round((labels == 2).mean(), 6),
    }
    assert summary["classes"] == ["background", "a", "b"] and summary["kept"] == [1, 2]
    assert summary["k"] == 1 and (summary["height"], summary["width"]) == (20, 30)
    on_disk = json.loads((tmp_path / "out" / "pic.json").read_text())
    assert on_disk == summary
    np.testing.assert_array_equal(np.load(summary["scores_npy"]), res.scores)
    rle = json.loads(Path(summary["rle_json"]).read_text())
    assert [r["category_id"] for r in rle] == [0, 1, 2]
    assert [r["category"] for r in rle] == ["background", "a", "b"]
    assert [r["area"] for r in rle] == [int((labels == k).sum()) for k in range(3)]
    assert [r["bbox"] for r in rle[1:]] == [[3, 5, 17, 5], [25, 15, 5, 5]]
    for r in rle:  # the label's mean score over its pixels
        mean = res.scores[r["category_id"]][labels == r["category_id"]].mean()
        assert r["score"] == round(float(mean), 6)
    mask_util = pytest.importorskip("pycocotools.mask")
    for r in rle:
        seg = {"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()}
        np.testing.assert_array_equal(mask_util.decode(seg), labels == r["category_id"])
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_no_scores_file_unless_asked(tmp_path):
    s = write_outputs(_result(_labels()), make_image(20, 30), tmp_path, "x")
    assert s["scores_npy"] is None and not (tmp_path / "x_scores.npy").exists()
    assert s["kept"] is None


def test_overlay_blends_and_has_a_legend():
    img = make_image(20, 30, 2)
    labels = _labels()
    labels[labels == 2] = 0  # b absent: not in the legend
    over = overlay_image(_result(labels), img)
    # the legend panel needs 2 lines of 14 px: the canvas grows below a 20 px image
    assert over.shape[0] >= 20 and over.shape[1] > 30 and over.dtype == np.uint8
    left = over[:20, :30]
    bg = labels == 0
    np.testing.assert_array_equal(left[bg], (0.6 * img[bg]).round().astype(np.uint8))
    colour = np.array(palette()[3:6], np.float64)
    np.testing.assert_array_equal(
        left[labels == 1], (0.45 * img[labels == 1] + 0.55 * colour).round().astype(np.uint8)
    )
    legend = over[:, 30:].reshape(-1, 3)
    colours = {tuple(c) for c in legend.tolist()}
    assert tuple(palette()[3:6]) in colours  # a's swatch
    assert tuple(palette()[6:9]) not in colours  # no swatch for b
    assert (0, 0, 0) in colours  # background swatch / text


def test_overlay_legend_grows_for_many_classes():
    labels = np.arange(12, dtype=np.uint8).repeat(2).reshape(4, 6)
    res = SegmentResult("v", [f"c{i}" for i in range(11)], labels, np.zeros((12, 4, 6)))
    over = overlay_image(res, make_image(4, 6))
    assert over.shape[0] >= 12 * 14
