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


# --------------------------------------------------------------------------- streamed


def _tiny_support(name: str, n: int = 6):
    """Tiny-profile features of n random 64 px images, and fg / bg disc masks (image 4: empty
    fg, skipped; image 5: empty bg)."""
    from protodb.extractors.factory import default_extractor_config, get_extractor

    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    fg = np.zeros((n, 64, 64), bool)
    bg = np.zeros((n, 64, 64), bool)
    for i in range(n):
        cy, cx, r = rng.integers(16, 48), rng.integers(16, 48), rng.integers(8, 20)
        d = (yy - cy) ** 2 + (xx - cx) ** 2
        fg[i], bg[i] = d < r * r, d > (r + 8) ** 2
    fg[4] = False
    bg[5] = False
    ext = get_extractor(default_extractor_config("tiny", name), "cpu")
    return ext.extract(images).numpy(), fg, bg


def _same(a, b, rtol=1e-5, atol=1e-6):
    assert list(a.level) == list(b.level) and list(a.support) == list(b.support)
    np.testing.assert_array_equal(a.used, b.used)
    np.testing.assert_array_equal(a.weight[a.level != "part"], b.weight[b.level != "part"])
    keep = a.level != "part"
    np.testing.assert_allclose(a.vectors[keep], b.vectors[keep], rtol=rtol, atol=atol)


def _inertia(features, mask, p):
    """Sum of squared distances of the masked rows (float32 features) to their part."""
    rows = features.transpose(0, 2, 3, 1)[mask].astype(np.float64)
    centres = p.vectors[p.level == "part"].astype(np.float64)[p.part[p.level == "part"]]
    return float(((rows - centres[p.cells[mask]]) ** 2).sum())


@pytest.mark.parametrize("name", ["dinov2", "sd"])
def test_streamed_prototypes_equal_all_at_once(name):
    """Streamed in batches of 1, 2 or 4 images == the reference all-at-once computation:
    class and instance rows up to float rounding; with float32 storage the same parts (labels
    and centres); with float16 storage (the default) the K-means inertia within 1 %."""
    from protodb.synthesis.prototypes import (
        PartOptions,
        PrototypeStream,
        support_prototypes_reference,
    )

    feats, fg, bg = _tiny_support(name)
    ref = support_prototypes_reference(feats, fg, bg)
    grid = [mask_to_grid(m, feats.shape[2:]) for m in (fg, bg)]
    keep = grid[0].reshape(len(fg), -1).any(1)
    for dtype in ("float32", "float16"):
        for step in (1, 2, 4):
            stream = PrototypeStream(fg, bg, PartOptions(pool_dtype=dtype))
            for s in range(0, len(feats), step):
                stream.add(s, feats[s : s + step])
            out = stream.finish()
            for a, b, g in zip(out, ref, grid, strict=True):
                _same(a, b)
                mask = g & keep[:, None, None]
                if dtype == "float32":
                    np.testing.assert_array_equal(a.cells, b.cells)
                    np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-5, atol=1e-5)
                else:
                    ours, theirs = _inertia(feats, mask, a), _inertia(feats, mask, b)
                    assert abs(ours - theirs) <= 0.01 * theirs, (a.polarity, ours, theirs)
                assert set(np.unique(a.cells[mask])) == set(range((a.level == "part").sum()))
                assert (a.cells[~mask] == -1).all()


def test_streamed_prototypes_over_the_budget_fit_a_seeded_sample():
    """A pool over ``budget_bytes`` is fitted on a fixed seeded sample: the same parts whatever
    the batches, every masked cell labelled, class and instance rows still exact, and the
    parts' inertia on all pooled rows within 5 % of the full fit's (tiny sd features, 1 in 3
    rows fitted)."""
    from protodb.synthesis.prototypes import PartOptions, PrototypeStream

    feats, fg, bg = _tiny_support("sd")
    mask = mask_to_grid(fg, feats.shape[2:])
    keep = mask.reshape(len(fg), -1).any(1)
    mask &= keep[:, None, None]
    rows = int(mask.sum())
    small = PartOptions(budget_bytes=(rows // 3) * feats.shape[1] * 2)
    assert small.budget_rows(feats.shape[1]) == rows // 3
    outs = []
    for step in (1, 3, 6):
        stream = PrototypeStream(fg, bg, small)
        for s in range(0, len(feats), step):
            stream.add(s, feats[s : s + step])
        outs.append(stream.finish()[0])
    full = support_prototypes(feats, fg, bg)[0]
    for out in outs[1:]:
        np.testing.assert_array_equal(out.cells, outs[0].cells)
        np.testing.assert_array_equal(out.vectors, outs[0].vectors)
    _same(outs[0], full)
    assert (outs[0].cells[mask] >= 0).all() and (outs[0].cells[~mask] == -1).all()
    assert _inertia(feats, mask, outs[0]) <= 1.05 * _inertia(feats, mask, full)


def test_extract_prototypes_equals_the_reference_path():
    """What ``add`` runs (2 images per extractor call, streamed) == the path before (all
    features at once, then the reference), up to float rounding and K-means on float16."""
    from protodb.extractors.factory import default_extractor_config, get_extractor
    from protodb.synthesis.prototypes import extract_prototypes, extract_prototypes_reference

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    fg = np.zeros((5, 64, 64), bool)
    fg[:, 8:40, 16:48] = True
    bg = ~fg
    ext = get_extractor(default_extractor_config("tiny", "dino"), "cpu")
    seen = []
    pf, pb, d = extract_prototypes(ext, images, fg, bg, batch=2, on_batch=seen.append)
    rf, rb, rd = extract_prototypes_reference(ext, images, fg, bg)
    assert seen == [2, 2, 1] and d == rd == ext.dim
    for a, b in ((pf, rf), (pb, rb)):
        _same(a, b, rtol=1e-4, atol=1e-5)
        assert (a.level == "part").sum() == (b.level == "part").sum()


def test_streamed_prototypes_reject_out_of_order_batches():
    from protodb.synthesis.prototypes import PrototypeStream

    stream = PrototypeStream(np.ones((2, 8, 8), bool), np.zeros((2, 8, 8), bool))
    with pytest.raises(ValueError, match="expected image 0"):
        stream.add(1, np.zeros((1, 3, 2, 2), np.float32))
    stream.add(0, np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="1 images of 2"):
        stream.finish()


# --------------------------------------------------------------------------- kmeans


def _pool(rows, dtype="float16", memory_bytes=1 << 30, block=37):
    from protodb.synthesis.kmeans import RowPool

    pool = RowPool(rows.shape[1], dtype, memory_bytes=memory_bytes)
    for s in range(0, len(rows), block):
        pool.append(rows[s : s + block])
    return pool


def test_row_pool_spills_to_disk_and_reads_back_the_same_rows():
    rows = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float16)
    mem, disk = _pool(rows), _pool(rows, memory_bytes=rows.nbytes // 3)
    assert mem.spilled == 0 and 0 < disk.spilled < 200 and len(disk) == 200
    for pool in (mem, disk):
        np.testing.assert_array_equal(np.concatenate(list(pool.chunks(16))), rows)
        idx = np.array([0, 3, 36, 37, 150, 199])
        np.testing.assert_array_equal(np.concatenate(list(pool.take(idx).chunks(99))), rows[idx])
    disk.close()
    assert len(disk) == 0 and disk._file is None


@pytest.mark.parametrize("name", ["dinov2", "sd"])
def test_kmeans_matches_sklearn_on_tiny_features(name):
    """On the same inputs (the pooled fg rows of tiny-profile features, stored in float16, given
    to scikit-learn as float64): the same labels, iterations and inertia (1e-5 relative), and
    centres within 1e-4; the pool half spilled to disk and tiny chunks change nothing."""
    from sklearn.cluster import KMeans

    from protodb.synthesis.kmeans import kmeans

    feats, fg, _ = _tiny_support(name)
    mask = mask_to_grid(fg, feats.shape[2:])
    rows = feats.transpose(0, 2, 3, 1)[mask].astype(np.float16)
    km = KMeans(n_clusters=32, init="k-means++", n_init=1, max_iter=300, tol=1e-4, random_state=0)
    labels = km.fit_predict(rows.astype(np.float64))
    for pool, chunk in ((_pool(rows), 1 << 23), (_pool(rows, memory_bytes=rows.nbytes // 2), 999)):
        out = kmeans(pool, 32, seed=0, chunk_values=chunk)
        np.testing.assert_array_equal(out.labels, labels)
        assert out.n_iter == km.n_iter_ and out.fitted == len(rows)
        assert out.inertia == pytest.approx(km.inertia_, rel=1e-5)
        np.testing.assert_allclose(out.centres, km.cluster_centers_, atol=1e-4)


def test_kmeans_budget_sample_is_seeded_and_measured():
    """Beyond the budget K-means fits on a fixed seeded sample (the same rows however the pool
    was appended, the same result twice), every row is then labelled, and the fit is close: on
    12 blobs x 2000 rows the full pool's inertia is within 2 % of a full fit's."""
    from protodb.synthesis.kmeans import kmeans, sample_index

    rng = np.random.default_rng(3)
    centres = rng.normal(0, 4, (12, 16))
    rows = (centres[rng.integers(0, 12, 2000)] + rng.normal(0, 1, (2000, 16))).astype(np.float16)
    a = kmeans(_pool(rows, block=37), 8, budget=300)
    b = kmeans(_pool(rows, block=500, memory_bytes=rows.nbytes // 2), 8, budget=300)
    np.testing.assert_array_equal(sample_index(2000, 300), sample_index(2000, 300))
    assert len(sample_index(2000, 300)) == 300 and len(sample_index(200, 300)) == 200
    assert a.fitted == 300 and len(a.labels) == 2000
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centres, b.centres)
    full = kmeans(_pool(rows), 8)
    assert full.fitted == 2000

    def inertia(r):
        return float(((rows.astype(np.float64) - r.centres[r.labels]) ** 2).sum())

    assert inertia(a) <= 1.02 * inertia(full)


def test_kmeans_with_resident_rows_is_the_same_computation():
    """resident=True (the GPU default: the fitted rows converted once and kept) gives exactly
    what converting them from the pool at every pass gives, over a spilled pool and a sample."""
    from protodb.synthesis.kmeans import kmeans

    rng = np.random.default_rng(5)
    centres = rng.normal(0, 4, (10, 24))
    rows = (centres[rng.integers(0, 10, 1500)] + rng.normal(0, 1, (1500, 24))).astype(np.float16)
    for budget in (1500, 400):
        ref = kmeans(_pool(rows, memory_bytes=rows.nbytes // 3), 8, budget=budget,
                     chunk_values=24 * 97, resident=False)  # fmt: skip
        got = kmeans(_pool(rows, memory_bytes=rows.nbytes // 3), 8, budget=budget,
                     chunk_values=24 * 97, resident=True)  # fmt: skip
        np.testing.assert_array_equal(got.labels, ref.labels)
        np.testing.assert_array_equal(got.centres, ref.centres)
        assert (got.inertia, got.n_iter, got.fitted) == (ref.inertia, ref.n_iter, ref.fitted)
        assert ref.n_iter > 1  # the later passes did reuse the kept chunks


def test_kmeans_single_and_empty():
    from protodb.synthesis.kmeans import kmeans

    rows = np.arange(12, dtype=np.float16).reshape(4, 3)
    one = kmeans(_pool(rows), 1)
    np.testing.assert_allclose(one.centres[0], rows.astype(np.float64).mean(0))
    assert (one.labels == 0).all()
    none = kmeans(_pool(rows[:0]), 32)
    assert none.centres.shape == (0, 3) and none.labels.shape == (0,)
