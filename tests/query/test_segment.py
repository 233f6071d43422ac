from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import CLASSES, make_image

from protodb.bank.vocab import VocabClass, VocabExtractor, Vocabulary
from protodb.errors import ProtodbError
from protodb.extractors.factory import default_extractor_config, get_extractor
from protodb.query.assemble import ExtractorPrototypes, assemble
from protodb.query.config import QueryConfig
from protodb.query.match import labels_from_scores
from protodb.query.segment import Segmenter, SegmentResult

EXT = default_extractor_config("tiny")
WHOLE = QueryConfig(windows=False)


def _vocab(names, ext_ids=("e1",)):
    return Vocabulary(
        name="hand",
        classes=[VocabClass(n, n, "g", 0) for n in names],
        extractors=[VocabExtractor(e, "t", EXT) for e in ext_ids],
        versions={},
        bank_version=1,
    )


def _protos(ext_id, vectors, owner):
    v = torch.nn.functional.normalize(torch.as_tensor(np.asarray(vectors, np.float32)), dim=1)
    return ExtractorPrototypes(
        VocabExtractor(ext_id, "t", EXT), v.numpy(), np.asarray(owner, np.int64), []
    )


@pytest.fixture(scope="module")
def features_64():
    img = make_image(64, 64, 5)
    return img, get_extractor(EXT, "cpu").extract(img[None])[0].numpy()  # [32, 8, 8]


@pytest.fixture(scope="module")
def v1_result(tiny_bank):
    return tiny_bank.db.vocab("v1").segment(make_image(50, 70, 0))


# --------------------------------------------------------------------------- hand-made prototypes


def test_exact_prototype_wins_its_cell(features_64):
    img, feats = features_64
    f00 = feats[:, 0, 0]
    seg = Segmenter(_vocab(["thing", "empty"]), [_protos("e1", [-f00, f00], [0, 1])], config=WHOLE)
    res = seg.segment(img)
    assert res.labels.shape == (64, 64) and res.labels.dtype == np.uint8
    assert res.scores.shape == (3, 64, 64) and res.scores.dtype == np.float32
    # pixels 0..3 map exactly onto grid cell (0, 0) under bilinear upsampling by 8
    np.testing.assert_allclose(res.scores[1, :4, :4], 1.0, atol=1e-5)
    np.testing.assert_allclose(res.scores[0, :4, :4], -1.0, atol=1e-5)
    assert (res.labels[:4, :4] == 1).all()
    # label 2 has no prototype: its score is clamped to -1 and it never wins
    assert (res.scores[2] == -1).all()
    assert not (res.labels == 2).any()
    assert (res.winners["e1"][:4, :4] == 1).all()
    np.testing.assert_array_equal(res.labels, labels_from_scores(torch.from_numpy(res.scores)))


def test_scores_are_averaged_over_extractors(features_64):
    img, feats = features_64
    rng = np.random.default_rng(0)
    a = _protos("e1", rng.normal(size=(4, 32)), [0, 1, 1, 2])
    b = _protos("e2", np.concatenate([feats[:, 2, 3][None], rng.normal(size=(2, 32))]), [1, 0, 2])
    vocab = _vocab(["x", "y"], ("e1", "e2"))
    ra = Segmenter(_vocab(["x", "y"]), [a]).segment(img)
    rb = Segmenter(_vocab(["x", "y"], ("e2",)), [b]).segment(img)
    rab = Segmenter(vocab, [a, b]).segment(img)
    np.testing.assert_allclose(rab.scores, (ra.scores + rb.scores) / 2, atol=1e-6)
    assert set(rab.winners) == {"e1", "e2"}
    np.testing.assert_array_equal(rab.labels, labels_from_scores(torch.from_numpy(rab.scores)))


# --------------------------------------------------------------------------- session vocabulary


def test_v1_segment_shapes_and_ranges(v1_result, tiny_bank):
    res = v1_result
    assert res.vocab == "v1" and res.classes == CLASSES
    assert res.labels.shape == (50, 70) and res.labels.dtype == np.uint8
    assert res.labels.max() <= len(CLASSES)
    assert res.scores.shape == (1 + len(CLASSES), 50, 70)
    assert (res.scores >= -1).all() and (res.scores <= 1).all()
    np.testing.assert_array_equal(res.labels, labels_from_scores(torch.from_numpy(res.scores)))
    areas = res.areas()
    assert set(areas) <= {"background", *CLASSES}
    assert sum(areas.values()) == pytest.approx(1.0, abs=1e-5)


def test_v1_winners_belong_to_the_label(v1_result, tiny_bank):
    (p,) = assemble(tiny_bank.db.bank, tiny_bank.vocab)
    (ext_id,) = v1_result.winners
    win = v1_result.winners[ext_id]
    assert win.shape == (50, 70) and win.dtype == np.int32
    assert win.min() >= -1 and win.max() < len(p.owner)
    ok = win >= 0
    assert ok.any()
    np.testing.assert_array_equal(p.owner[win[ok]], v1_result.labels[ok])


def test_segment_is_deterministic(v1_result, tiny_bank):
    again = tiny_bank.db.vocab("v1").segment(make_image(50, 70, 0))
    assert again.labels.tobytes() == v1_result.labels.tobytes()
    np.testing.assert_array_equal(again.scores, v1_result.scores)


@pytest.mark.parametrize("hw", [(64, 64), (33, 90), (120, 17)])
def test_labels_have_the_image_shape(tiny_bank, hw):
    res = tiny_bank.db.vocab("v1").segment(make_image(*hw, seed=1))
    assert res.labels.shape == hw and res.scores.shape == (3, *hw)
    assert set(np.unique(res.labels)) <= {0, 1, 2}


def test_v1_labels_identical_after_bank_grows(v1_result, grown_bank):
    assert {c.name for c in grown_bank.db.classes()} == {"red apple", "grass", "sky"}
    res = grown_bank.db.vocab("v1").segment(make_image(50, 70, 0))
    assert res.labels.tobytes() == v1_result.labels.tobytes()
    np.testing.assert_array_equal(res.scores, v1_result.scores)


# --------------------------------------------------------------------------- outputs


def _result(labels):
    return SegmentResult("v", ["a", "b"], labels, np.zeros((3, *labels.shape), np.float32))


def test_areas_only_present_labels():
    labels = np.zeros((2, 2), np.uint8)
    labels[0, 0] = 2
    assert _result(labels).areas() == {"background": 0.75, "b": 0.25}


# --------------------------------------------------------------------------- windows and fusion


def _naive_scores(feats, vectors, owner, n_labels):
    """[D, h, w] features -> [n_labels, h, w]: a loop over labels, -1 for an empty label."""
    f = torch.nn.functional.normalize(torch.as_tensor(feats).reshape(feats.shape[0], -1), dim=0)
    sims = torch.as_tensor(vectors) @ f
    out = torch.full((n_labels, f.shape[1]), -1.0)
    for label in range(n_labels):
        rows = np.flatnonzero(owner == label)
        if len(rows):
            out[label] = sims[rows].max(0).values
    return out.reshape(n_labels, *feats.shape[1:])


def test_window_fusion_and_label_rule_by_hand():
    """Parity: per-window scores, upsampled to the window, clamped, summed and divided by the
    count; averaged over extractors; resized to the image; zero-clamped argmax."""
    from protodb.query.segment import _resize_image
    from protodb.query.windows import resized_size, sliding_windows

    rng = np.random.default_rng(3)
    img = make_image(50, 70, 4)
    parts = [
        _protos("e1", rng.normal(size=(7, 32)), [0, 0, 1, 1, 1, 2, 0]),
        _protos("e2", rng.normal(size=(5, 32)), [1, 0, 2, 2, 1]),
    ]
    res = Segmenter(_vocab(["x", "y"], ("e1", "e2")), parts).segment(img)
    extractor = get_extractor(EXT, "cpu")
    ch, cw = resized_size(50, 70)
    canvas = _resize_image(img, (ch, cw))
    wins = sliding_windows(ch, cw)
    assert len(wins) == 2 + 2 * 3 + 1  # 448x627: 2 at 448, 6 at 336, whole
    total = torch.zeros(3, ch, cw)
    count = torch.zeros(ch, cw)
    for p in parts:
        for v in wins:
            crop = canvas[v.y0 : v.y0 + v.h, v.x0 : v.x0 + v.w]
            feats = extractor.extract(crop[None])[0]
            s = _naive_scores(feats, p.vectors, p.owner, 3)
            up = torch.nn.functional.interpolate(
                s[None], size=(v.h, v.w), mode="bilinear", align_corners=False
            )[0].clamp(-1, 1)
            total[:, v.y0 : v.y0 + v.h, v.x0 : v.x0 + v.w] += up / len(parts)
            count[v.y0 : v.y0 + v.h, v.x0 : v.x0 + v.w] += 1 / len(parts)
    fused = total / count
    expected = torch.nn.functional.interpolate(
        fused[None], size=(50, 70), mode="bilinear", align_corners=False
    )[0]
    np.testing.assert_allclose(res.scores, expected.numpy(), atol=2e-5)
    labels = np.argmax(np.maximum(res.scores, 0), axis=0)  # ties -> lowest label
    np.testing.assert_array_equal(res.labels, labels)
    for ext, p in zip(("e1", "e2"), parts, strict=True):
        win = res.winners[ext]
        np.testing.assert_array_equal(p.owner[win], res.labels)


def test_without_background_prototypes_background_is_the_fg_threshold(features_64):
    """Table 3's "without background prototypes" (REFERENCE 1.9): the bg class is not dropped
    to a bare argmax over the classes; a pixel is background where its best fg score is at most
    the threshold (0.72, the paper's), recorded in the config."""
    img, feats = features_64
    f = feats.reshape(feats.shape[0], -1)
    rows = [f[:, 0], f[:, 27], f[:, 63]]  # one bg prototype, then one per class
    protos = [_protos("e1", rows, [0, 1, 2])]
    vocab = _vocab(["a", "b"])
    assert QueryConfig().bg_threshold == 0.72
    off = QueryConfig(windows=False, background=False)
    res = Segmenter(vocab, protos, config=off).segment(img)
    assert (res.scores[0] == np.float32(0.72)).all()  # no bg prototype scores it
    fg = res.scores[1:]
    best = fg.max(0)
    expected = np.where(best > 0.72, 1 + fg.argmax(0), 0)
    np.testing.assert_array_equal(res.labels, expected)
    assert ((best > 0) & (best <= 0.72)).mean() > 0.01  # where dropping the class would differ
    bare = Segmenter(vocab, protos, config=replace(off, bg_threshold=0.0)).segment(img)
    assert (bare.labels == 0).sum() < (res.labels == 0).sum()
    with pytest.raises(ProtodbError, match=r"bg_threshold=1.5 must be in \[-1, 1\]"):
        QueryConfig(bg_threshold=1.5)


def test_windows_per_extractor_call_do_not_change_the_result():
    """Windows go through an extractor a few at a time (2 on the CPU by default): 1 or 8 per
    call give the same labels, winners and scores (up to float rounding)."""
    rng = np.random.default_rng(5)
    img = make_image(50, 70, 6)
    parts = [_protos("e1", rng.normal(size=(7, 32)), [0, 0, 1, 1, 1, 2, 0])]
    results = [Segmenter(_vocab(["x", "y"]), parts, batch=b).segment(img) for b in (None, 1, 8)]
    for other in results[1:]:
        np.testing.assert_allclose(other.scores, results[0].scores, atol=1e-5)
        np.testing.assert_array_equal(other.labels, results[0].labels)
        np.testing.assert_array_equal(other.winners["e1"], results[0].winners["e1"])


def test_windows_off_is_the_whole_image(features_64):
    img, _ = features_64
    p = _protos("e1", np.random.default_rng(0).normal(size=(4, 32)), [0, 1, 2, 1])
    res = Segmenter(_vocab(["x", "y"]), [p], config=WHOLE).segment(img)
    feats = get_extractor(EXT, "cpu").extract(img[None])[0]
    s = _naive_scores(feats, p.vectors, p.owner, 3)
    up = torch.nn.functional.interpolate(s[None], size=(64, 64), mode="bilinear")[0]
    np.testing.assert_allclose(res.scores, up.clamp(-1, 1).numpy(), atol=2e-5)


def test_pamr_option_refines_the_fused_scores(features_64):
    from protodb.query.pamr import pamr

    img, _ = features_64
    p = _protos("e1", np.random.default_rng(1).normal(size=(4, 32)), [0, 1, 2, 1])
    plain = Segmenter(_vocab(["x", "y"]), [p], config=WHOLE).segment(img)
    refined = Segmenter(
        _vocab(["x", "y"]), [p], config=QueryConfig(windows=False, pamr=True)
    ).segment(img)
    guide = torch.from_numpy(img).permute(2, 0, 1).float()
    expected = pamr(guide, torch.from_numpy(plain.scores))
    np.testing.assert_allclose(refined.scores, expected.numpy(), atol=1e-5)
    np.testing.assert_array_equal(refined.labels, labels_from_scores(expected).numpy())


# --------------------------------------------------------------------------- pre-filter


class StandInClip:
    """Fixed vectors for the pre-filter: the image is e0; "a cat" is e0, "a dog" is -e0;
    records the prompts it encodes."""

    def __init__(self):
        self.prompts = []

    def image(self, image):
        return torch.tensor([1.0, 0.0])

    def text(self, prompts):
        self.prompts += prompts
        table = {"a cat": [1.0, 0.0], "a dog": [-1.0, 0.0]}
        return torch.tensor([table[p] for p in prompts])


def _with_meta(ext_id, vectors, owner, source, stuff=None):
    p = _protos(ext_id, vectors, owner)
    p.rows = [
        {"polarity": "bg" if o == 0 else "fg", "level": "instance", "class_key": str(s)}
        for o, s in zip(owner, source, strict=True)
    ]
    p.source = np.asarray(source, np.int64)
    p.stuff = None if stuff is None else np.asarray(stuff, bool)
    return p


def test_prefilter_drops_classes_and_their_background(features_64):
    img, _ = features_64
    vec = np.random.default_rng(2).normal(size=(6, 32))
    owner, source = [1, 1, 2, 0, 0, 0], [1, 1, 2, 1, 2, 2]
    config = QueryConfig(windows=False, prefilter=True)
    full = _with_meta("e1", vec, owner, source)
    res = Segmenter(_vocab(["cat", "dog"]), [full], config=config, clip=StandInClip()).segment(img)
    assert res.selection.keep == [1] and res.selection.prompts == ["a cat"]
    assert (res.scores[2] == -1).all() and not (res.labels == 2).any()
    # the same as a vocabulary without dog's rows: bg made of cat's bg rows only
    keep = [0, 1, 3]
    hand = _with_meta("e1", vec[keep], [owner[i] for i in keep], [source[i] for i in keep])
    ref = Segmenter(_vocab(["cat", "dog"]), [hand], config=WHOLE).segment(img)
    np.testing.assert_allclose(res.scores, ref.scores, atol=1e-6)
    np.testing.assert_array_equal(res.winners["e1"], np.array(keep)[ref.winners["e1"]])


def test_prefilter_keeps_stuff(features_64):
    img, _ = features_64
    vec = np.random.default_rng(2).normal(size=(4, 32))
    p = _with_meta("e1", vec, [1, 2, 3, 0], [1, 2, 3, 1], stuff=[False, False, False, True])
    config = QueryConfig(windows=False, prefilter=True)
    seg = Segmenter(_vocab(["cat", "dog", "sky"]), [p], config=config, clip=StandInClip())
    assert seg.segment(img).selection.keep == [1, 3]


def test_prefilter_encodes_the_class_prompts_once_per_vocabulary(features_64):
    img, _ = features_64
    vec = np.random.default_rng(2).normal(size=(4, 32))
    p = _with_meta("e1", vec, [1, 2, 1, 0], [1, 2, 1, 1])
    clip = StandInClip()
    seg = Segmenter(_vocab(["cat", "dog"]), [p], config=QueryConfig(windows=False, prefilter=True),
                    clip=clip)  # fmt: skip
    first = seg.segment(img).selection
    assert clip.prompts == ["a cat", "a dog", "a cat"]  # class prompts, then the subset search
    assert seg.segment(img).selection == first
    assert clip.prompts == ["a cat", "a dog", "a cat", "a cat"]  # only the search again


def test_prefilter_uses_the_tiny_open_clip(tiny_bank):
    handle = tiny_bank.db.vocab("v1", QueryConfig(prefilter=True, windows=False))
    res = handle.segment(make_image(40, 40, 1))
    assert res.selection is not None and res.selection.keep
    assert set(res.selection.keep) <= {1, 2}
    dropped = {1, 2} - set(res.selection.keep)
    for label in dropped:  # no prototype: -1 everywhere (up to bilinear rounding)
        np.testing.assert_allclose(res.scores[label], -1.0, atol=1e-6)
        assert not (res.labels == label).any()
