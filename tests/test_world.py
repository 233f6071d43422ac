"""The offline TEST WORLD: generator, attribution, extractor, dataset and profile wiring."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import protodb
from protodb.errors import ProtodbError
from protodb.extractors.base import EXTRACTORS
from protodb.extractors.factory import (
    default_extractor_config,
    default_extractor_names,
    get_extractor,
)
from protodb.names import class_key
from protodb.synthesis.generate import GENERATORS, default_generator_config, image_seed
from protodb.synthesis.masks import otsu_masks
from protodb.world.classes import CLASS_NAMES, CLASSES, STUFF, THINGS, world_class
from protodb.world.dataset import make_dataset
from protodb.world.draw import draw_support, texture
from protodb.world.generator import generate_world, world_generator_config


def test_plugins_registered_and_selected_only_by_the_world_profile():
    assert "world" in GENERATORS and "world" in EXTRACTORS
    gen = default_generator_config("world")
    assert (gen.name, gen.model, gen.size) == ("world", "world", 64)
    ext = default_extractor_config("world", "world")
    assert (ext.name, ext.store_dtype) == ("world", "float32")
    assert default_extractor_names("world") == ["world"]
    assert default_extractor_names("tiny") == ["dinov2"]
    assert default_generator_config("tiny").name == "sd"
    with pytest.raises(ProtodbError, match="profile 'world' go together"):
        default_extractor_config("world", "dinov2")
    with pytest.raises(ProtodbError, match="profile 'world' go together"):
        default_extractor_config("tiny", "world")


def test_unknown_class_lists_the_world_classes():
    with pytest.raises(ProtodbError, match="not in the offline test world.*red disc.*water"):
        world_class("giraffe")
    assert world_class("Red  Disc").name == "red disc"


def test_support_image_depends_only_on_its_key():
    cfg = world_generator_config()
    key = class_key("red disc")
    three = generate_world("red disc", key, cfg, 0, [0, 1, 2])
    alone = generate_world("red disc", key, cfg, 0, [2], batch_size=4)
    assert [s.index for s in three] == [0, 1, 2]
    np.testing.assert_array_equal(three[2].image, alone[0].image)
    np.testing.assert_array_equal(three[2].attribution, alone[0].attribution)
    assert not np.array_equal(three[0].image, three[1].image)
    other_seed = generate_world("red disc", key, cfg, 1, [2])
    assert not np.array_equal(other_seed[0].image, alone[0].image)
    s = three[0]
    assert s.image.dtype == np.uint8 and s.image.shape == (64, 64, 3)
    assert s.attribution.dtype == np.float32 and s.attribution.shape == (16, 16)
    assert (s.attribution >= 0).all()


def _truth(name: str, index: int):
    """The object mask behind support image ``index`` of class ``name`` (seed 0)."""
    cfg = world_generator_config()
    key = class_key(name)
    rng = np.random.default_rng(image_seed(key, cfg.id, 0, index))
    image, mask = draw_support(world_class(name), cfg.size, rng)
    return image, mask


@pytest.mark.parametrize("name", ["red disc", "yellow star", "grass"])
def test_attribution_imitates_cross_attention_and_otsu_recovers_the_object(name):
    cfg = world_generator_config()
    n = 8
    supports = generate_world(name, class_key(name), cfg, 0, list(range(n)))
    masks = otsu_masks([s.attribution for s in supports], 64)
    ious, soft, ratios = [], [], []
    for s in supports:
        image, truth = _truth(name, s.index)
        np.testing.assert_array_equal(image, s.image)
        fg = masks.fg[s.index]
        ious.append((fg & truth).sum() / max((fg | truth).sum(), 1))
        a = s.attribution / s.attribution.max()
        soft.append(((a > 0.05) & (a < 0.95)).mean())
        small = truth.reshape(16, 4, 16, 4).mean((1, 3)) > 0.5
        if small.any() and (~small).any():  # more attention on the object than off it
            ratios.append(s.attribution[small].mean() / s.attribution[~small].mean())
    assert min(ratios) > 1.2 and np.median(ratios) > 2
    assert np.mean(ious) > 0.5
    assert np.mean(soft) > 0.1  # blurred and noisy, not a binary mask
    assert not masks.fallback


def test_extractor_shapes_and_matching_means_something():
    ext = get_extractor(default_extractor_config("world", "world"))
    rng = np.random.default_rng(0)
    kinds = list(CLASSES)
    patches = np.stack([texture(c, (64, 64), rng) for c in kinds for _ in range(2)]).astype(
        np.uint8
    )
    feats = ext.extract(patches).numpy()
    assert feats.dtype == np.float32 and feats.shape == (len(patches), 8, 16, 16)
    np.testing.assert_array_equal(feats, ext.extract(patches).numpy())
    v = feats.mean((2, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    first, second = v[0::2], v[1::2]
    sims = first @ second.T  # [class, class]: an independent draw of each texture
    assert (sims.argmax(1) == np.arange(len(kinds))).all()
    assert np.diag(sims).min() > 0.95


def test_thing_bg_prototypes_are_near_copies_of_stuff_fg(world):
    """What makes stuff filtering matter in the world (REFERENCE 1.8, threshold 0.85)."""
    from protodb.query.assemble import assemble

    handle = world.db.vocab("world")
    (p,) = assemble(world.db.bank, handle.info)
    stuff_labels = [1 + CLASS_NAMES.index(c.name) for c in STUFF]
    stuff_fg = p.vectors[np.isin(p.owner, stuff_labels)]
    thing_keys = {class_key(c.name) for c in THINGS}
    thing_bg = [
        i for i, r in enumerate(p.rows) if r["polarity"] == "bg" and r["class_key"] in thing_keys
    ]
    near = (p.vectors[thing_bg] @ stuff_fg.T).max(1) > 0.85
    assert 0.3 < near.mean() < 0.95  # many stolen stuff pixels, some real clutter background
    assert world.db.show("grass").kind == "stuff"
    assert world.db.show("red disc").kind == "thing"


def test_dataset_is_made_from_a_seed_in_the_voc_layout(tmp_path):
    a = make_dataset(tmp_path / "a", n=3, seed=5)
    b = make_dataset(tmp_path / "b", n=3, seed=5)
    c = make_dataset(tmp_path / "c", n=3, seed=6)
    assert a.classes == ["background", *CLASS_NAMES]
    ids = (tmp_path / "a" / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert ids == a.ids and len(ids) == 3
    for i in ids:
        la = (tmp_path / "a" / "SegmentationClass" / f"{i}.png").read_bytes()
        assert la == (tmp_path / "b" / "SegmentationClass" / f"{i}.png").read_bytes()
        with Image.open(tmp_path / "a" / "SegmentationClass" / f"{i}.png") as im:
            assert im.mode == "P"
            labels = np.asarray(im)
        with Image.open(tmp_path / "a" / "JPEGImages" / f"{i}.jpg") as im:
            assert im.size == (labels.shape[1], labels.shape[0])
        assert set(np.unique(labels)) <= set(range(len(a.classes))) | {255}
        assert (labels == 255).any() and (labels != 255).any()
    assert a.ids == b.ids and a.ids != c.ids
    assert "test world" in (tmp_path / "a" / "test_world.json").read_text()


def test_build_bank_needs_the_world_profile(tmp_path):
    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    with pytest.raises(ProtodbError, match="needs profile 'world'"):
        db.build_world(n=2)


def test_adding_a_class_outside_the_world_fails_clearly(tmp_path):
    db = protodb.connect(tmp_path / "bank", profile="world", device="cpu")
    with pytest.raises(ProtodbError, match="'giraffe' is not in the offline test world"):
        db.add(["giraffe"], n=2, progress=False)
