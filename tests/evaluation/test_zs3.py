"""The ZS3 protocol: the split, per-class IoUs to seen / unseen means and their harmonic mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protodb.errors import ParameterError
from protodb.evaluation.datasets import Dataset, class_spec
from protodb.evaluation.evaluate import EvalReport, MIoU, class_table
from protodb.evaluation.zs3 import (
    VOC_UNSEEN,
    attach,
    dataset_split,
    harmonic,
    parse_split,
    split_scores,
)

CLASSES = ["background", "cat", "dog", "cow", "bird"]


def test_seen_unseen_and_harmonic_mean_of_a_hand_built_confusion_matrix():
    m = MIoU(5)
    # rows: ground truth, columns: prediction
    m.hist[:] = np.array(
        [
            [8, 1, 0, 1, 0],  # background
            [0, 4, 0, 0, 0],  # cat
            [0, 2, 2, 0, 0],  # dog
            [1, 0, 0, 1, 2],  # cow
            [0, 0, 0, 0, 0],  # bird: never true, predicted on 2 cow pixels
        ]
    )
    # IoU = I / (row sum + column sum - I)
    bg, cat, dog, cow, bird = 8 / (10 + 9 - 8), 4 / (4 + 7 - 4), 2 / 4, 1 / (4 + 2 - 1), 0 / 2
    rows = class_table(m, CLASSES)
    np.testing.assert_allclose([r.iou for r in rows], [bg, cat, dog, cow, bird])
    split = parse_split("cow, Bird", CLASSES)
    assert split.seen == ("background", "cat", "dog") and split.unseen == ("cow", "bird")
    z = split_scores({r.name: r.iou for r in rows}, split)
    s, u = (bg + cat + dog) / 3, (cow + bird) / 2
    assert z.miou_seen == pytest.approx(s) and z.miou_unseen == pytest.approx(u)
    assert z.hiou == pytest.approx(2 * s * u / (s + u))
    assert z.seen == ["background", "cat", "dog"] and z.unseen == ["cow", "bird"]


def test_harmonic_mean_edge_cases_and_absent_classes():
    assert harmonic(0.0, 0.0) == 0.0 and harmonic(0.5, 0.0) == 0.0
    assert harmonic(0.6, 0.2) == pytest.approx(0.3)
    split = parse_split(["dog"], CLASSES)
    # absent from both prediction and truth (None / NaN) counts 0, as in the dataset mIoU;
    # a class missing from the scores is left out of its mean
    z = split_scores({"background": 0.9, "cat": None, "dog": float("nan")}, split)
    assert z.miou_seen == pytest.approx(0.45) and z.miou_unseen == 0.0 and z.hiou == 0.0
    assert z.seen == ["background", "cat"]
    z = split_scores({"background": 0.9}, split)
    assert z.miou_unseen is None and z.hiou is None


def test_vocs_standard_split_names_voc_classes():
    voc = class_spec("voc")
    classes = voc["classes"]
    assert set(VOC_UNSEEN) <= set(classes)
    # the last five VOC labels, in protodb's names (REFERENCE 1.9: tvmonitor -> monitor, ...)
    assert list(VOC_UNSEEN) == classes[-5:]
    split = dataset_split("voc", Dataset("voc", Path("."), list(classes)))
    assert split.unseen == VOC_UNSEEN and len(split.seen) == 16 and split.seen[0] == "background"
    assert "SPNet" in split.source
    # a benchmark's original names are accepted too
    orig = dataset_split("tvmonitor,pottedplant", Dataset("voc", Path("."), list(classes)))
    assert orig.unseen == ("potted plant", "monitor")


@pytest.mark.parametrize(
    ("unseen", "message"),
    [
        ("cow,horse", r"unseen='cow,horse' names 'horse', which is not a class of the dataset \("),
        (" , ", "names no class"),
        ([], "names no class"),
        ("background", "always seen"),
        ("cat,dog,cow,bird", "leaves no seen class"),
        ("voc", "names 'potted plant', which is not a class"),
    ],
)
def test_a_bad_split_names_the_value(unseen, message):
    with pytest.raises(ParameterError, match=message) as e:
        parse_split(unseen, CLASSES)
    assert "\n" not in str(e.value)


def test_attach_sets_the_reports_figures():
    m = MIoU(5)
    m.hist[np.arange(5), np.arange(5)] = 1
    report = EvalReport("folder", ".", "v", 1, m.miou(), 1.0, class_table(m, CLASSES), {}, 0.0)
    assert attach(report, None).zs3 is None
    z = attach(report, parse_split("bird", CLASSES)).zs3
    assert (z.miou_seen, z.miou_unseen, z.hiou) == (1.0, 1.0, 1.0)
    assert report.to_dict()["zs3"]["unseen"] == ["bird"]
