import numpy as np
import pytest
import torch
from conftest import CLASSES, make_image
from PIL import Image

from protodb.features import default_extractor_config, get_extractor
from protodb.images import palette
from protodb.match import labels_from_scores
from protodb.query import QueryConfig
from protodb.segment import Segmenter, SegmentResult, write_outputs
from protodb.vocab import ExtractorPrototypes, VocabClass, VocabExtractor, Vocabulary, assemble

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
    seg = Segmenter(
        _vocab(["thing", "empty"]), [_protos("e1", [-f00, f00], [0, 1])], config=WHOLE
    )
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


def test_write_outputs(tmp_path):
    img = make_image(20, 30, 2)
    labels = np.zeros((20, 30), np.uint8)
    labels[5:10, 3:20] = 1
    labels[15:, 25:] = 2
    summary = write_outputs(_result(labels), img, tmp_path / "out", "pic")
    assert summary["height"] == 20 and summary["width"] == 30
    with Image.open(summary["label_png"]) as im:
        assert im.mode == "P" and im.size == (30, 20)
        np.testing.assert_array_equal(np.asarray(im), labels)
        assert im.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
    with Image.open(summary["overlay_png"]) as ov:
        assert ov.mode == "RGB" and ov.size == (30, 20)
        overlay = np.asarray(ov)
    bg = labels == 0
    np.testing.assert_array_equal(overlay[bg], (0.6 * img[bg]).round().astype(np.uint8))
    colour = np.array(palette()[3:6], np.float64)
    np.testing.assert_array_equal(
        overlay[labels == 1], (0.45 * img[labels == 1] + 0.55 * colour).round().astype(np.uint8)
    )
    assert summary["areas"] == {
        "background": round(bg.mean(), 6),
        "a": round((labels == 1).mean(), 6),
        "b": round((labels == 2).mean(), 6),
    }
    assert summary["label_png"].endswith("pic.png")
    assert summary["overlay_png"].endswith("pic_overlay.png")


def test_areas_only_present_labels():
    labels = np.zeros((2, 2), np.uint8)
    labels[0, 0] = 2
    assert _result(labels).areas() == {"background": 0.75, "b": 0.25}
