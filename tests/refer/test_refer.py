"""The referring pipeline end to end on the tiny profile (real model classes, random weights):
typed result, generator-only and discriminative scoring, the bank-aware mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

import protodb
from protodb.errors import ProtodbError
from protodb.world.referring import draw_referring_scene


@pytest.fixture(scope="module")
def scene():
    image, refs = draw_referring_scene(np.random.default_rng([0, 0]))
    return image, refs


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return protodb.connect(tmp_path_factory.mktemp("refer") / "bank", profile="tiny", device="cpu")


def test_refer_returns_the_argmax_proposal_with_every_score(db, scene):
    image, refs = scene
    r = db.refer(image, refs[0].expression)
    h, w = image.shape[:2]
    assert r.mask.shape == (h, w) and r.mask.dtype == bool
    assert r.attention.shape == (h, w) and 0.0 <= r.attention.min() <= r.attention.max() <= 1.0
    totals = [p.total for p in r.proposals]
    assert r.chosen == int(np.argmax(totals))
    assert np.array_equal(r.mask, r.proposals[r.chosen].mask)
    p = r.proposals[0]
    assert None not in (p.generative, p.hard, p.soft, p.position) and p.bank is None
    want = 0.7 * p.hard + 0.3 * p.soft + 0.05 * p.generative
    assert np.isclose(p.total, want, atol=1e-5)
    assert refs[0].expression == "the yellow star on the left"
    assert r.subject.word == "star" and r.position == "left"
    s = json.loads(json.dumps(r.summary()))
    assert s["config"]["attention"]["id"].startswith("refdiff-")
    assert set(s["seconds"]) >= {"attention", "proposals", "scores", "fusion"}


def test_generator_only_picks_the_best_generative_score(db, scene):
    image, refs = scene
    r = db.refer(image, refs[0].expression, config=db.refer_config(discriminative=False))
    gen = [p.generative for p in r.proposals]
    assert r.chosen == int(np.argmax(gen))
    assert all(p.hard is None and p.soft is None for p in r.proposals)
    assert all(s.startswith("attention@") or s == "image" for s in (p.source for p in r.proposals))


def test_subject_override_changes_the_attention(db, scene):
    image, _ = scene
    a = db.refer(image, "the yellow star on the left", config=db.refer_config(discriminative=False))
    b = db.refer(
        image,
        "the yellow star on the left",
        subject="yellow",
        config=db.refer_config(discriminative=False),
    )
    assert b.subject.method == "override"
    assert not np.array_equal(a.attention, b.attention)


def test_bank_aware_mode_adds_the_class_proposals_and_score(tiny_bank):
    db = protodb.connect(tiny_bank.path, profile="tiny", device="cpu")
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    r = db.refer(image, "the red apple on the left", vocab="v1")
    assert r.bank_class == "red apple"
    assert all(p.bank is not None for p in r.proposals)
    assert any(p.source.startswith("bank") for p in r.proposals)
    r2 = db.refer(image, "the tall tree", vocab="v1")
    assert r2.bank_class is None and all(p.bank is None for p in r2.proposals)


def test_bad_inputs_are_one_line_errors(db, scene):
    image, _ = scene
    with pytest.raises(ProtodbError, match="empty"):
        db.refer(image, "  ")
    with pytest.raises(ProtodbError, match="context of 77"):
        db.refer(image, "the dog " * 60)
    with pytest.raises(ProtodbError, match="uint8"):
        db.refer(image.astype(np.float32), "the dog")
    with pytest.raises(ProtodbError, match="does not exist"):
        db.refer("/nonexistent/x.png", "the dog")


def test_pair_stems_are_unique_and_jsonl_ids_are_plain_names(tmp_path):
    from PIL import Image

    from protodb.refer.outputs import pairs_from_args, pairs_from_jsonl

    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / d / "x.png")
    pairs = pairs_from_args([tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"], "the dog")
    assert len({p.stem for p in pairs}) == 2 and pairs[1].stem.endswith("_2")
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"image": "a/x.png", "expression": "dog", "id": "../up"}\n')
    with pytest.raises(ProtodbError, match="plain file name"):
        list(pairs_from_jsonl(bad))


def test_vocab_class_is_the_longest_name_covering_the_subject():
    from protodb.refer.refer import vocab_class
    from protodb.refer.subject import find_subject

    classes = ["star", "yellow star", "red disc", "glass", "dog"]
    for text, want in [
        ("the yellow star on the left", 1),
        ("a star", 0),
        ("the red disc", 2),
        ("the dogs", 4),
        ("an empty glass", 3),
        ("the cat", None),
    ]:
        assert vocab_class(classes, text, find_subject(text, method="rules")) == want, text
