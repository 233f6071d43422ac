import numpy as np
import pytest

from protodb.synthesis.prototypes import (
    DEFAULT_PARTS,
    build_prototypes,
    kmeans_parts,
    mask_to_grid,
    support_prototypes,
)

# three support images, D=2, a 2x2 feature grid; image 2 is not kept (empty fg)
FEATS = np.zeros((3, 2, 2, 2), np.float32)
FEATS[0, :, 0, 0] = [1.0, 0.0]
FEATS[0, :, 1, 1] = [9.0, 9.0]  # outside the mask
FEATS[1, :, 0, 0] = [0.0, 1.0]
FEATS[1, :, 0, 1] = [0.0, 3.0]
FEATS[1, :, 1, 0] = [0.0, 2.0]
FEATS[2, :, :, :] = 5.0
MASK = np.zeros((3, 2, 2), bool)
MASK[0, 0, 0] = True
MASK[1, 0, 0] = MASK[1, 0, 1] = MASK[1, 1, 0] = True
MASK[2] = True
KEEP = np.array([True, True, False])


# --------------------------------------------------------------------------- mask_to_grid


def test_mask_to_grid_halving_is_or_over_cell():
    m = np.zeros((1, 4, 4), bool)
    m[0, 1, 1] = True
    np.testing.assert_array_equal(mask_to_grid(m, (2, 2))[0], [[True, False], [False, False]])
    m = np.zeros((1, 4, 4), bool)
    m[0, 3, 2] = True
    np.testing.assert_array_equal(mask_to_grid(m, (2, 2))[0], [[False, False], [False, True]])


def test_mask_to_grid_quartering_uses_central_pixels():
    # 8 -> 2: a cell samples the bilinear mix of its central pixels (rows/cols 1-2 and 5-6)
    for pixel, expected in [((0, 0), None), ((3, 4), None), ((1, 2), (0, 0)), ((6, 5), (1, 1))]:
        m = np.zeros((1, 8, 8), bool)
        m[0][pixel] = True
        grid = mask_to_grid(m, (2, 2))[0]
        want = np.zeros((2, 2), bool)
        if expected is not None:
            want[expected] = True
        np.testing.assert_array_equal(grid, want, err_msg=str(pixel))


def test_mask_to_grid_shapes_and_full_mask():
    m = np.ones((3, 10, 14), bool)
    out = mask_to_grid(m, (5, 7))
    assert out.shape == (3, 5, 7) and out.dtype == bool and out.all()
    assert not mask_to_grid(np.zeros((2, 10, 14), bool), (5, 7)).any()


# --------------------------------------------------------------------------- build


def test_class_prototype_is_mask_size_weighted_mean_of_instances():
    p = build_prototypes(FEATS, MASK, KEEP, "fg", parts=2)
    assert p.polarity == "fg"
    lv = list(p.level)
    assert lv[:3] == ["class", "instance", "instance"]
    assert lv[3:] == ["part"] * (len(p) - 3)
    np.testing.assert_allclose(p.vectors[1], [1.0, 0.0])
    np.testing.assert_allclose(p.vectors[2], [0.0, 2.0])
    np.testing.assert_allclose(p.vectors[0], [0.25, 1.5])
    weights = p.weight[1:3]
    np.testing.assert_allclose(p.vectors[0], (weights[:, None] * p.vectors[1:3]).sum(0) / 4)
    assert p.weight[0] == 4 and list(p.weight[1:3]) == [1, 3]
    assert list(p.support[:3]) == [-1, 0, 1]
    assert list(p.part[:3]) == [-1, -1, -1]
    np.testing.assert_array_equal(p.used, [True, True, False])


def test_skipped_image_does_not_contribute():
    p = build_prototypes(FEATS, MASK, KEEP, "fg", parts=DEFAULT_PARTS)
    assert 2 not in p.support
    assert not np.isclose(p.vectors, 5.0).all(1).any()
    assert (p.cells[2] == -1).all()


def test_part_cells_and_labels():
    p = build_prototypes(FEATS, MASK, KEEP, "fg", parts=2)
    parts = np.flatnonzero(p.level == "part")
    assert len(parts) == 2 and list(p.part[parts]) == [0, 1]
    assert p.cells.shape == (3, 2, 2) and p.cells.dtype == np.int16
    # -1 outside the (kept) mask, a part id inside
    assert (p.cells[~(MASK & KEEP[:, None, None])] == -1).all()
    assert set(p.cells[MASK & KEEP[:, None, None]].tolist()) == {0, 1}
    for row in parts:
        c = p.part[row]
        members = FEATS.transpose(0, 2, 3, 1)[p.cells == c]
        np.testing.assert_allclose(p.vectors[row], members.mean(0), atol=1e-6)
        assert p.weight[row] == len(members)


def test_k_shrinks_to_number_of_points():
    p = build_prototypes(FEATS, MASK, KEEP, "fg", parts=32)
    parts = p.vectors[p.level == "part"]
    assert len(parts) == 4  # only 4 masked cells
    expected = {(1.0, 0.0), (0.0, 1.0), (0.0, 3.0), (0.0, 2.0)}
    assert {tuple(np.round(v, 5)) for v in parts} == expected
    assert (p.weight[p.level == "part"] == 1).all()


def test_single_part_is_the_class_mean():
    p = build_prototypes(FEATS, MASK, KEEP, "fg", parts=1)
    np.testing.assert_allclose(p.vectors[p.level == "part"][0], p.vectors[0])


def test_empty_masks_give_no_rows():
    p = build_prototypes(FEATS, np.zeros_like(MASK), KEEP, "bg")
    assert len(p) == 0 and p.vectors.shape == (0, 2)
    assert (p.cells == -1).all() and not p.used.any()


def test_kmeans_parts_shapes_and_seed():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(0, 0.1, (20, 3)), rng.normal(5, 0.1, (20, 3))]).astype(
        np.float32
    )
    c1, l1 = kmeans_parts(pts, 2)
    c2, l2 = kmeans_parts(pts, 2)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(c1, c2)
    assert c1.shape == (2, 3) and c1.dtype == np.float32
    assert len(set(l1[:20])) == 1 and len(set(l1[20:])) == 1 and l1[0] != l1[-1]
    c0, l0 = kmeans_parts(pts[:0], 4)
    assert c0.shape == (0, 3) and l0.shape == (0,)


# --------------------------------------------------------------------------- support


def test_support_prototypes_drops_non_finite_bg_rows():
    feats = np.random.default_rng(0).normal(size=(3, 4, 2, 2)).astype(np.float32)
    fg = np.zeros((3, 4, 4), bool)
    bg = np.zeros((3, 4, 4), bool)
    fg[0, :2, :2] = True  # image 0: fg and bg
    bg[0, 2:, 2:] = True
    fg[1] = True  # image 1: fg only, empty bg -> its bg instance row is NaN and dropped
    bg[2] = True  # image 2: empty fg -> skipped for both polarities
    pf, pb = support_prototypes(feats, fg, bg, parts=2)
    assert list(pf.support[pf.level == "instance"]) == [0, 1]
    assert list(pb.support[pb.level == "instance"]) == [0]
    assert np.isfinite(pb.vectors).all() and np.isfinite(pf.vectors).all()
    np.testing.assert_array_equal(pf.used, [True, True, False])
    np.testing.assert_array_equal(pb.used, [True, False, False])
    # bg class prototype: image 0's bottom-right cell only
    np.testing.assert_allclose(pb.vectors[0], feats[0, :, 1, 1], atol=1e-6)
    assert pb.weight[0] == 1
    assert (pb.cells[1:] == -1).all()


def test_support_prototypes_all_fg_empty():
    feats = np.ones((2, 3, 2, 2), np.float32)
    fg = np.zeros((2, 8, 8), bool)
    bg = np.ones((2, 8, 8), bool)
    pf, pb = support_prototypes(feats, fg, bg)
    assert len(pf) == 0 and len(pb) == 0


@pytest.mark.parametrize("polarity", ["fg", "bg"])
def test_polarity_is_recorded(polarity):
    assert build_prototypes(FEATS, MASK, KEEP, polarity, parts=1).polarity == polarity
