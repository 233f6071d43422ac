"""The world generator: plugin wiring, keyed images, imitation attention
(protodb.world.generator)."""

from __future__ import annotations

import numpy as np
import pytest

from protodb.errors import ProtodbError
from protodb.extractors.base import EXTRACTORS
from protodb.extractors.factory import (
    default_extractor_config,
    default_extractor_names,
)
from protodb.names import class_key
from protodb.synthesis.generate import GENERATORS, default_generator_config, image_seed
from protodb.synthesis.masks import otsu_masks
from protodb.world.classes import world_class
from protodb.world.draw import draw_support
from protodb.world.generator import generate_world, world_generator_config


def _truth(name: str, index: int):
    """The object mask behind support image ``index`` of class ``name`` (seed 0)."""
    cfg = world_generator_config()
    key = class_key(name)
    rng = np.random.default_rng(image_seed(key, cfg.id, 0, index))
    image, mask = draw_support(world_class(name), cfg.size, rng)
    return image, mask


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
