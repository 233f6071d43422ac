import hashlib
import json
from dataclasses import asdict, replace

import numpy as np
import pytest

from protodb.errors import ProtodbError
from protodb.models.defaults import SD_DEFAULT
from protodb.models.loading import TINY, TINY_VERSION
from protodb.synthesis.generate import (
    DEFAULT_NEGATIVE,
    DEFAULT_TEMPLATE,
    GENERATORS,
    GeneratorConfig,
    default_generator_config,
    generate_sd,
    image_seed,
)


@pytest.fixture(scope="module")
def tiny_cfg():
    return default_generator_config("tiny", steps=3)


# --------------------------------------------------------------------------- config


def test_reference_defaults():
    cfg = GeneratorConfig()
    assert cfg.model == SD_DEFAULT
    assert (cfg.steps, cfg.guidance, cfg.size) == (30, 8.0, 512)
    assert cfg.template == "A good picture of a {}"
    assert cfg.negative_prompt == (
        "text, low quality, blurry, cartoon, meme, low resolution, bad, poor, faded"
    )
    assert cfg.final_sigmas_type == "sigma_min"
    assert cfg.prompt("red apple") == "A good picture of a red apple"


def test_tiny_profile_config():
    cfg = default_generator_config("tiny")
    assert (cfg.model, cfg.weights, cfg.size, cfg.steps) == (TINY, TINY_VERSION, 64, 10)
    assert cfg.unet_batch == 4 and GeneratorConfig().unet_batch == 8
    assert default_generator_config("default") == GeneratorConfig()


def test_overrides_and_none_is_ignored():
    cfg = default_generator_config("tiny", steps=4, guidance=None, template="a photo of {}")
    assert cfg.steps == 4 and cfg.guidance == 8.0 and cfg.template == "a photo of {}"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 0, "steps=0 is out of range"),
        ("steps", 1001, "steps=1001 is out of range"),
        ("guidance", 0.5, "guidance=0.5 must be from 1 to 100"),
        ("size", 100, "size=100 must be a multiple of 8"),
        ("size", 56, "size=56 must be a multiple of 8 and >= 64"),
        ("template", "a photo of a dog", "template 'a photo of a dog' must contain"),
        ("template", "{} and {}", "exactly once"),
    ],
)
def test_validation_errors(field, value, message):
    with pytest.raises(ProtodbError, match=message):
        GeneratorConfig(**{field: value})


def test_id_is_stable_hash_of_fields():
    cfg = default_generator_config("tiny")
    expected = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]
    assert cfg.id == f"sd-{expected}"
    assert cfg.id == default_generator_config("tiny").id
    assert GeneratorConfig.from_json(cfg.to_json()) == cfg
    assert GeneratorConfig.from_json(cfg.to_json()).id == cfg.id


@pytest.mark.parametrize(
    "change",
    [
        {"steps": 11},
        {"guidance": 7.5},
        {"size": 72},
        {"template": "a photo of {}"},
        {"negative_prompt": DEFAULT_NEGATIVE + ", ugly"},
        {"final_sigmas_type": "zero"},
        {"revision": "main"},
        {"weights": "tiny-v2"},
        {"unet_batch": 2},
    ],
)
def test_id_changes_when_a_field_changes(change):
    base = default_generator_config("tiny")
    assert replace(base, **change).id != base.id


# --------------------------------------------------------------------------- seeds


def test_image_seed_depends_only_on_its_key():
    s = image_seed("red apple", "sd-abc", 0, 3)
    assert s == image_seed("red apple", "sd-abc", 0, 3)
    assert 0 <= s < 2**63
    others = {
        image_seed("grass", "sd-abc", 0, 3),
        image_seed("red apple", "sd-abd", 0, 3),
        image_seed("red apple", "sd-abc", 1, 3),
        image_seed("red apple", "sd-abc", 0, 4),
    }
    assert s not in others and len(others) == 4


def test_image_seed_by_hand():
    digest = hashlib.sha256(b"k\x1fg\x1f7\x1f2").digest()
    assert image_seed("k", "g", 7, 2) == int.from_bytes(digest[:8], "little") & (2**63 - 1)


# --------------------------------------------------------------------------- sampling


def test_generate_shapes_and_progress(tiny_cfg):
    calls = []
    out = generate_sd("red apple", "red apple", tiny_cfg, 0, [2, 0], progress=calls.append)
    assert [s.index for s in out] == [2, 0]
    assert calls == [1, 1]
    for s in out:
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        assert s.attribution.shape == (32, 32) and s.attribution.dtype == np.float32
        assert (s.attribution >= 0).all() and s.attribution.max() > 0
    assert not np.array_equal(out[0].image, out[1].image)


def test_generation_reports_every_denoising_step(tiny_cfg):
    """on_step is called after each denoising step with the images' worth of work it did, so
    a bar in images moves during a call, not only when the call ends."""
    steps = []
    batch = min(2, tiny_cfg.unet_batch)
    generate_sd(
        "red apple", "red apple", tiny_cfg, 0, [0, 1, 2], batch_size=batch, on_step=steps.append
    )
    calls = -(-3 // batch)
    assert len(steps) == calls * tiny_cfg.steps
    assert sum(steps) == pytest.approx(3.0)
    assert steps[0] == pytest.approx(batch / tiny_cfg.steps)


def test_support_image_byte_identical_in_batch_of_1_or_8():
    """Must show: batching never changes a result (every call is padded to unet_batch)."""
    cfg = default_generator_config("tiny", steps=2, unet_batch=8)
    batched = generate_sd("red apple", "red apple", cfg, 0, list(range(8)), batch_size=8)
    for i in (0, 5, 7):
        alone = generate_sd("red apple", "red apple", cfg, 0, [i], batch_size=1)[0]
        assert alone.image.tobytes() == batched[i].image.tobytes()
        assert alone.attribution.tobytes() == batched[i].attribution.tobytes()
    # and in a batch of 3 that starts elsewhere
    mid = generate_sd("red apple", "red apple", cfg, 0, [6, 5, 7], batch_size=3)
    assert mid[1].image.tobytes() == batched[5].image.tobytes()


def test_generate_is_reproducible(tiny_cfg):
    one = generate_sd("red apple", "red apple", tiny_cfg, 0, [1])
    again = generate_sd("red apple", "red apple", tiny_cfg, 0, [1])
    assert np.array_equal(again[0].image, one[0].image)
    assert np.array_equal(again[0].attribution, one[0].attribution)


def test_unet_batch_is_validated():
    with pytest.raises(ProtodbError, match="unet_batch=0"):
        GeneratorConfig(unet_batch=0)


def test_generate_depends_on_seed_and_class_key(tiny_cfg):
    base = generate_sd("red apple", "red apple", tiny_cfg, 0, [0])[0]
    other_seed = generate_sd("red apple", "red apple", tiny_cfg, 1, [0])[0]
    other_key = generate_sd("red apple", "red apples", tiny_cfg, 0, [0])[0]
    assert not np.array_equal(base.image, other_seed.image)
    assert not np.array_equal(base.image, other_key.image)


def test_generate_rejects_merging_template():
    cfg = default_generator_config("tiny", steps=1, template="photo of a{}")
    with pytest.raises(ProtodbError, match="merges"):
        generate_sd("dog", "dog", cfg, 0, [0])


def test_registry_entry():
    assert GENERATORS.get("sd") is generate_sd
    assert DEFAULT_TEMPLATE.count("{}") == 1


def test_guidance_1_captures_each_image_s_own_attention():
    """Issue 27 item 5: at guidance 1 diffusers runs the conditional rows alone (no CFG batch);
    the capture takes them all, not the second half, so each image keeps its own maps."""
    cfg = default_generator_config("tiny", steps=2, unet_batch=4, guidance=1.0)
    batched = generate_sd("red apple", "red apple", cfg, 0, [0, 1, 2], batch_size=3)
    for i in (0, 2):
        alone = generate_sd("red apple", "red apple", cfg, 0, [i], batch_size=1)[0]
        assert alone.image.tobytes() == batched[i].image.tobytes()
        assert alone.attribution.tobytes() == batched[i].attribution.tobytes()
    assert batched[0].attribution.max() > 0
    assert not np.array_equal(batched[0].attribution, batched[2].attribution)


def test_capture_refuses_a_batch_of_neither_size():
    from protodb.synthesis.attention import AttributionStore

    store = AttributionStore([1], (2, 2), images=3)
    assert store.cond_start(6) == 3 and store.cond_start(3) == 0
    with pytest.raises(RuntimeError, match="5 rows for 3 images"):
        store.cond_start(5)
