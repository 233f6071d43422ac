import numpy as np
import pytest

from protodb.synthesis.masks import (
    FALLBACK_THRESHOLDS,
    MASK_SOURCES,
    minmax,
    multi_otsu,
    normalise_attribution,
    otsu_masks,
)


def brute_force_multi_otsu(values, bins=256):
    """Three-class Otsu by an explicit double loop over bin pairs: classes are bins [0..i],
    (i..j], (j..bins-1]; maximise sum_k w_k (mu_k - mu)^2; first maximum wins."""
    hist, edges = np.histogram(np.asarray(values, np.float64), bins=bins)
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    p = (hist / hist.sum()).tolist()
    cw, cm, w, m = [], [], 0.0, 0.0
    for k in range(bins):
        w += p[k]
        m += p[k] * centres[k]
        cw.append(w)
        cm.append(m)
    mu = cm[-1]
    best, arg = -1.0, None
    for i in range(bins - 2):
        for j in range(i + 1, bins - 1):
            parts = [(cw[i], cm[i]), (cw[j] - cw[i], cm[j] - cm[i]), (1.0 - cw[j], mu - cm[j])]
            if any(wk <= 0 for wk, _ in parts):
                continue
            var = sum(wk * (mk / wk - mu) ** 2 for wk, mk in parts)
            if var > best + 1e-15:
                best, arg = var, (centres[i], centres[j])
    return arg


def trimodal():
    rng = np.random.default_rng(0)
    return np.concatenate(
        [
            rng.uniform(0.00, 0.15, 600),
            rng.uniform(0.45, 0.55, 250),
            rng.uniform(0.85, 1.00, 150),
        ]
    )


# --------------------------------------------------------------------------- minmax


def test_minmax_range():
    x = np.array([[-3.0, 1.0], [5.0, 0.0]])
    y = minmax(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[0.0, 0.5], [1.0, 0.375]])


def test_minmax_denominator_clamped_at_1e6():
    np.testing.assert_allclose(minmax(np.array([0.0, 1e-7])), [0.0, 0.1], rtol=1e-5)
    np.testing.assert_array_equal(minmax(np.full((3, 3), 7.0)), np.zeros((3, 3)))
    assert np.isfinite(minmax(np.full(4, 2.0))).all()


# --------------------------------------------------------------------------- normalise


def test_normalise_attribution_range_and_shape():
    rng = np.random.default_rng(1)
    raw = rng.normal(5.0, 3.0, (8, 8))
    out = normalise_attribution(raw, 64)
    assert out.shape == (64, 64) and out.dtype == np.float32
    assert out.min() == pytest.approx(0.0, abs=1e-7)
    assert out.max() == pytest.approx(1.0, abs=1e-6)
    assert normalise_attribution(raw, (16, 24)).shape == (16, 24)


def test_normalise_attribution_by_hand():
    raw = np.array([[2.0, 2.6], [4.0, 2.0]])  # min-max -> [[0, 0.3], [1, 0]]
    out = normalise_attribution(raw, 4)
    expected = np.array(
        [
            [0.0, 0.075, 0.225, 0.3],
            [0.25, 0.24375, 0.23125, 0.225],
            [0.75, 0.58125, 0.24375, 0.075],
            [1.0, 0.75, 0.25, 0.0],
        ]
    )
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_normalise_constant_map_is_zero():
    out = normalise_attribution(np.full((4, 4), 3.0), 8)
    np.testing.assert_array_equal(out, np.zeros((8, 8)))


# --------------------------------------------------------------------------- multi-Otsu


def test_multi_otsu_matches_brute_force_on_trimodal():
    v = trimodal()
    got = multi_otsu(v)
    assert got == pytest.approx(brute_force_multi_otsu(v), abs=1e-12)
    t_lo, t_hi = got
    # first maximum: each threshold is the centre of the last bin of its lower mode
    assert 0.14 < t_lo < 0.45 and 0.54 < t_hi < 0.85


def test_multi_otsu_three_values_by_hand():
    v = np.repeat([0.0, 0.3, 1.0], [50, 30, 20])
    # 256 bins over [0, 1]: 0.0 in bin 0 (centre 1/512), 0.3 in bin 76 (centre 76.5/256)
    assert multi_otsu(v) == (1 / 512, 76.5 / 256)
    assert multi_otsu(v) == brute_force_multi_otsu(v)


def test_multi_otsu_matches_skimage():
    filters = pytest.importorskip("skimage.filters")
    for v in (trimodal(), np.repeat([0.0, 0.3, 1.0], [50, 30, 20])):
        np.testing.assert_allclose(
            multi_otsu(v), filters.threshold_multiotsu(v, classes=3, nbins=256), atol=1e-9
        )


@pytest.mark.parametrize(
    "values", [np.zeros(10), np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.0, 1e-12, 1.0])]
)
def test_multi_otsu_degenerate_returns_none(values):
    assert multi_otsu(values) is None


# --------------------------------------------------------------------------- otsu masks


def test_otsu_masks_by_hand():
    a = np.array([[2.0, 2.6], [4.0, 2.0]])  # normalises to [[0, 0.3], [1, 0]]
    masks = otsu_masks([a, a * 10.0, a + 5.0], 4)  # per-image min-max: all the same
    assert masks.source == "otsu" and masks.fallback is False
    assert masks.thresholds == (1 / 512, 76.5 / 256)
    fg = np.array([[0, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], bool)
    bg = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], bool)
    assert masks.fg.shape == masks.bg.shape == (3, 4, 4)
    for i in range(3):
        np.testing.assert_array_equal(masks.fg[i], fg)
        np.testing.assert_array_equal(masks.bg[i], bg)


def test_otsu_masks_fallback_on_two_valued_maps():
    a = np.array([[0.0, 1.0], [1.0, 0.0]])
    masks = otsu_masks([a, a], (6, 8))
    assert masks.fallback is True
    assert masks.thresholds == FALLBACK_THRESHOLDS
    full = np.stack([normalise_attribution(a, (6, 8))] * 2)
    np.testing.assert_array_equal(masks.fg, full > 0.5)
    np.testing.assert_array_equal(masks.bg, full < 0.2)
    assert masks.fg.shape == (2, 6, 8)


def test_otsu_masks_uses_the_whole_set():
    rng = np.random.default_rng(3)
    maps = [rng.gamma(2.0, 1.0, (8, 8)) for _ in range(3)]
    masks = otsu_masks(maps, 32)
    pooled = np.stack([minmax(m) for m in maps])
    assert masks.thresholds == multi_otsu(pooled)
    t_lo, t_hi = masks.thresholds
    assert t_lo < t_hi
    assert not (masks.fg & masks.bg).any()
    full = np.stack([normalise_attribution(m, 32) for m in maps])
    np.testing.assert_array_equal(masks.fg, full > t_hi)
    np.testing.assert_array_equal(masks.bg, full < t_lo)


def test_registry_entry():
    assert MASK_SOURCES.get("otsu") is otsu_masks


# --------------------------------------------------------------------------- eq. (1)


def test_select_masks_eq1_with_overlap_by_hand():
    """Parity (REFERENCE 1.3): nothing-mask prepended, mean-attribution weights, per-pixel
    winner among covering masks, fg = top mask, bg = lowest winning mask & A < 0.2, eroded."""
    from protodb.synthesis.masks import select_masks

    a = np.full((8, 8), 0.1)
    a[1:4, 1:4] = 0.9  # the object
    a[6:, 6:] = 0.3  # a brighter corner in the background
    obj = np.zeros((8, 8), bool)
    obj[1:4, 1:4] = True  # weight 0.9
    wide = np.zeros((8, 8), bool)
    wide[0:5, 0:5] = True  # overlaps obj; weight (9 * 0.9 + 16 * 0.1) / 25 = 0.388
    nothing = ~wide  # 39 pixels: 35 at 0.1, 4 at 0.3 -> weight 0.1205
    assert a[wide].mean() == pytest.approx(0.388)
    assert a[nothing].mean() == pytest.approx((35 * 0.1 + 4 * 0.3) / 39)
    fg, bg = select_masks(np.stack([wide, obj]), a)
    assert np.array_equal(fg, obj)  # obj (0.9) wins its overlap with wide (0.388)
    # bg: the nothing mask (lowest winner) where A < 0.2, then the cross erosion
    assert bg[6, 2] and bg[7, 0]  # all four neighbours are bg (outside the image counts)
    assert not bg[5, 2]  # its upper neighbour (4, 2) belongs to `wide`
    assert not bg[6, 5]  # its right neighbour (6, 6) has A = 0.3
    assert not bg[6, 6]  # A = 0.3 is not < 0.2
    # survivors: rows 0-4 x cols 6-7 (10), (5, 5), rows 6-7 x cols 0-4 (10)
    assert bg.sum() == 21 and bg[0:5, 6:].all() and bg[5, 5] and bg[6:, 0:5].all()
    # the same by the library: erosion of (nothing & A < 0.2)
    from scipy.ndimage import binary_erosion, generate_binary_structure

    expected = binary_erosion(nothing & (a < 0.2), generate_binary_structure(2, 1), border_value=1)
    assert np.array_equal(bg, expected)


def test_select_masks_fallback_with_fewer_than_two_masks():
    from protodb.synthesis.masks import select_masks

    a = np.linspace(0, 1, 16).reshape(4, 4)
    fg, bg = select_masks(np.zeros((0, 4, 4), bool), a)
    assert np.array_equal(fg, a > 0.5) and np.array_equal(bg, a < 0.2)
    full = np.ones((1, 4, 4), bool)  # covers everything: the nothing mask is empty
    fg2, bg2 = select_masks(full, a)
    assert np.array_equal(fg2, a > 0.5) and np.array_equal(bg2, a < 0.2)


def test_select_masks_ties_go_to_the_earlier_mask():
    from protodb.synthesis.masks import select_masks

    a = np.full((3, 3), 0.5)
    left = np.zeros((3, 3), bool)
    left[:, :2] = True
    fg, _ = select_masks(left[None], a)  # nothing mask (col 2) and left: equal weights
    assert np.array_equal(fg, ~left)  # the nothing mask comes first


def test_maskcut_grid_separates_two_feature_clusters():
    from protodb.segmenters.maskcut import maskcut_grid

    rng = np.random.default_rng(0)
    feats = np.zeros((8, 6, 6))
    feats[0] = 1.0
    feats[:, 2:5, 1:4] = 0.0
    feats[1, 2:5, 1:4] = 1.0  # a 3x3 object orthogonal to the background
    feats += rng.normal(0, 0.01, feats.shape)
    masks = maskcut_grid(feats, n_masks=1)
    assert masks.shape == (1, 6, 6)
    expected = np.zeros((6, 6), bool)
    expected[2:5, 1:4] = True
    assert np.array_equal(masks[0], expected)  # the side without the image corners
