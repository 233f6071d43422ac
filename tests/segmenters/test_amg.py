"""SAM's automatic mask generator as Ref-Diff ran it (protodb.segmenters.amg): the reference's
settings, the stability score and box NMS on hand-built arrays, all three masks per point."""

import numpy as np
import pytest
import torch
from conftest import make_image

from protodb.errors import ParameterError
from protodb.segmenters.amg import (
    REFERENCE_AMG,
    AmgConfig,
    box_nms,
    mask_boxes,
    point_grid,
    stability_score,
)
from protodb.segmenters.sam import sam


def test_reference_settings():
    """Ref-Diff's SamAutomaticMaskGenerator: 32 x 32 points, multimask, IoU 0.88, stability
    0.95 at offset 1, box NMS 0.7."""
    a = REFERENCE_AMG
    assert (a.points_per_side, a.multimask, a.pred_iou_thresh) == (32, True, 0.88)
    assert (a.stability_score_thresh, a.stability_score_offset, a.box_nms_thresh) == (
        0.95,
        1.0,
        0.7,
    )


def test_point_grid_is_cell_centres():
    g = point_grid(2)
    assert g.tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
    assert point_grid(32).shape == (1024, 2)


def test_stability_score_by_hand():
    logits = torch.tensor(
        [
            [[-2.0, -0.5, 0.5, 2.0]],  # > +1: 1 px; > -1: 3 px -> 1/3
            [[3.0, 3.0, -3.0, -3.0]],  # a sharp mask: 2 / 2 -> 1
            [[-5.0, -5.0, -5.0, -5.0]],  # empty even loosely -> 0
        ]
    )
    s = stability_score(logits, offset=1.0)
    assert s.tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    assert stability_score(logits[:1], offset=0.25).item() == 1.0  # 2 px at +-0.25


def test_mask_boxes_are_inclusive_extents():
    m = np.zeros((3, 5, 6), bool)
    m[0, 1:3, 2:5] = True
    m[1, 4, 0] = True
    assert mask_boxes(m).tolist() == [[2, 1, 4, 2], [0, 4, 0, 4], [0, 0, 0, 0]]


def test_box_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 5], [20, 20, 30, 30]], float)
    # [1] overlaps [0] at IoU 90 / 110 = 0.82 > 0.7 -> dropped; [2] at 0.5 stays; [3] disjoint
    assert box_nms(boxes, np.array([0.9, 0.95, 0.8, 0.7]), 0.7).tolist() == [1, 2, 3]
    assert box_nms(boxes, np.array([0.9, 0.95, 0.8, 0.7]), 0.4).tolist() == [1, 3]
    assert box_nms(boxes[:2], np.array([0.9, 0.9]), 0.85).tolist() == [0, 1]  # tie: first


@pytest.mark.parametrize("multimask, per_point", [(True, 3), (False, 1)])
def test_all_three_masks_per_point_reach_the_filters(multimask, per_point):
    """Filters off (IoU 0, stability 0, NMS at 1): every candidate of the 2 x 2 grid comes out."""
    amg = AmgConfig(
        points_per_side=2,
        points_per_batch=3,  # batches of 3 points: the grid is decoded in 2 batches
        multimask=multimask,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
    )
    masks = sam(make_image(64, 80, 0), model="tiny", amg=amg)
    assert masks.dtype == bool and masks.shape == (4 * per_point, 64, 80)


def test_the_filters_apply():
    image = make_image(64, 80, 0)
    loose = AmgConfig(points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0)
    assert len(sam(image, model="tiny", amg=loose)) < 48  # box NMS at 0.7 drops some
    strict = AmgConfig(points_per_side=4, pred_iou_thresh=0.99)
    assert sam(image, model="tiny", amg=strict).shape == (0, 64, 80)


@pytest.mark.parametrize(
    "field, value",
    [
        ("points_per_side", 0),
        ("points_per_side", 100_000),
        ("points_per_batch", 0),
        ("pred_iou_thresh", 1.0),
        ("stability_score_thresh", 1.5),
        ("stability_score_offset", 0.0),
        ("box_nms_thresh", 0.0),
    ],
)
def test_bad_settings_name_the_parameter(field, value):
    with pytest.raises(ParameterError, match=rf"^{field}=") as e:
        AmgConfig(**{field: value})
    assert e.value.parameter == field
