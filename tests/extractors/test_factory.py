"""Defaults per profile, the registry and every tiny twin (protodb.extractors.factory)."""

import numpy as np
import pytest
import torch
from conftest import make_image

from protodb.errors import ProtodbError
from protodb.extractors.base import EXTRACTORS, ExtractorConfig
from protodb.extractors.dinov2 import Dinov2Extractor
from protodb.extractors.factory import default_extractor_config, get_extractor
from protodb.models.defaults import DINOV2_DEFAULT
from protodb.models.loading import TINY, TINY_VERSION


@pytest.fixture(scope="module")
def extractor():
    return get_extractor(default_extractor_config("tiny"), "cpu")


def test_config_defaults_and_profiles():
    assert default_extractor_config("default") == ExtractorConfig()
    assert ExtractorConfig().model == DINOV2_DEFAULT
    tiny = default_extractor_config("tiny")
    assert (tiny.model, tiny.weights, tiny.input_size, tiny.store_dtype) == (
        TINY,
        TINY_VERSION,
        64,
        "float16",
    )
    assert default_extractor_config("tiny", input_size=32, revision=None).input_size == 32


def test_unknown_extractor_name():
    with pytest.raises(ProtodbError, match="unknown extractor 'sam'.*dinov2"):
        default_extractor_config("tiny", "sam")


def test_get_extractor_is_cached(extractor):
    assert get_extractor(default_extractor_config("tiny"), "cpu") is extractor
    assert isinstance(extractor, Dinov2Extractor)
    assert EXTRACTORS.get("dinov2") is Dinov2Extractor
    assert (extractor.patch, extractor.dim, extractor.skip) == (8, 32, 1)


@pytest.mark.parametrize("name", ["dinov2", "dino", "clip", "mae", "sd"])
def test_every_extractor_tiny_twin(name):
    """Smoke test of each registered extractor's tiny twin: shape, dtype, determinism."""
    ext = get_extractor(default_extractor_config("tiny", name), "cpu")
    imgs = np.stack([make_image(64, 80, 0), make_image(64, 80, 1)])
    feats = ext.extract(imgs)
    stride = 2 if name == "sd" else 8  # sd: the latent grid (tiny VAE halves the image)
    assert feats.shape == (2, ext.dim, 64 // stride, 80 // stride)
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
    alone = ext.extract(imgs[1:])
    assert torch.allclose(feats[1], alone[0], atol=1e-4)
    assert not torch.allclose(feats[0], feats[1])


def test_every_registered_extractor_has_defaults():
    from protodb.extractors.factory import DEFAULTS
    from protodb.profiles import PAPER_ENSEMBLE

    assert set(EXTRACTORS.names()) >= {"dinov2", "dino", "clip", "mae", "sd"}
    assert PAPER_ENSEMBLE == ("sd", "dino", "clip")
    real = {n: default_extractor_config("default", n) for n in DEFAULTS}
    assert real["sd"].model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert real["dino"].model == "facebook/dino-vitb8"
    assert real["clip"].model == "ViT-B-16-quickgelu/openai" and real["clip"].layer == "keys:10"
    assert real["mae"].model == "facebook/vit-mae-base"
    assert all(real[n].input_size == 512 for n in ("sd", "dino", "clip", "mae"))


def test_release_models_frees_the_cached_models():
    """release_models drops the cached extractors and the loaders' models: the model is
    collected once nothing holds it, and the next use builds the same (deterministic) one."""
    import gc
    import weakref

    from protodb.extractors.factory import loaded_extractors, release_models

    config = default_extractor_config("tiny", "dino")
    first = get_extractor(config, "cpu")
    imgs = make_image(64, 64, 3)[None]
    before = first.extract(imgs)
    net = weakref.ref(first.net)
    assert (config.id, "cpu") in loaded_extractors()
    del first
    release_models()
    gc.collect()
    assert net() is None and loaded_extractors() == set()
    again = get_extractor(config, "cpu")
    assert torch.equal(again.extract(imgs), before)
