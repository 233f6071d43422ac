import hashlib
import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from conftest import make_image

from protodb.errors import ProtodbError
from protodb.extractors.base import EXTRACTORS, IMAGENET_MEAN, IMAGENET_STD, ExtractorConfig
from protodb.extractors.dinov2 import Dinov2Extractor
from protodb.extractors.factory import default_extractor_config, get_extractor
from protodb.models.loading import TINY, TINY_VERSION
from protodb.models.vision import DINOV2_DEFAULT


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


def test_config_id_stable_and_field_sensitive():
    cfg = default_extractor_config("tiny")
    digest = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()
    assert cfg.id == f"dinov2-{digest[:12]}"
    assert ExtractorConfig.from_json(cfg.to_json()) == cfg
    ids = {cfg.id}
    for change in ({"input_size": 32}, {"store_dtype": "float32"}, {"layer": "x"}):
        ids.add(replace(cfg, **change).id)
    assert len(ids) == 4


def test_get_extractor_is_cached(extractor):
    assert get_extractor(default_extractor_config("tiny"), "cpu") is extractor
    assert isinstance(extractor, Dinov2Extractor)
    assert EXTRACTORS.get("dinov2") is Dinov2Extractor
    assert (extractor.patch, extractor.dim, extractor.skip) == (8, 32, 1)


@pytest.mark.parametrize(
    ("hw", "expected"),
    [((64, 64), (64, 64)), ((50, 70), (64, 88)), ((200, 100), (128, 64)), ((3, 5), (64, 104))],
)
def test_grid_size(extractor, hw, expected):
    assert extractor.grid_size(*hw) == expected


def test_preprocess_normalises_by_hand(extractor):
    img = np.zeros((2, 64, 64, 3), np.uint8)
    img[..., 0] = 255
    img[1, ..., 2] = 51
    x = extractor.preprocess(img)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1]]
    assert torch.allclose(x[:, 0], torch.tensor(expected[0]), atol=1e-5)
    assert torch.allclose(x[:, 1], torch.tensor(expected[1]), atol=1e-5)
    assert torch.allclose(x[1, 2], torch.tensor((0.2 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 8, 8, 3), np.float32),
        np.zeros((1, 8, 8, 4), np.uint8),
        np.zeros((8, 8, 3), np.uint8),
    ],
)
def test_preprocess_rejects_bad_input(extractor, bad):
    with pytest.raises(ValueError, match="expected uint8"):
        extractor.preprocess(bad)


def test_extract_shapes_and_cls_dropped(extractor):
    imgs = np.stack([make_image(64, 64, 0), make_image(64, 64, 1)])
    feats = extractor.extract(imgs)
    assert feats.shape == (2, 32, 8, 8) and feats.dtype == torch.float32
    assert feats.device.type == "cpu"
    with torch.no_grad():
        tokens = extractor.net(pixel_values=extractor.preprocess(imgs)).last_hidden_state
    assert tokens.shape[1] == 1 + 64
    # row-major patch order, CLS (token 0) dropped
    assert torch.allclose(feats[:, :, 0, 0], tokens[:, 1], atol=1e-5)
    assert torch.allclose(feats[:, :, 0, 1], tokens[:, 2], atol=1e-5)
    assert torch.allclose(feats[:, :, 1, 0], tokens[:, 9], atol=1e-5)
    assert torch.allclose(feats[:, :, 7, 7], tokens[:, 64], atol=1e-5)


def test_extract_non_square(extractor):
    feats = extractor.extract(make_image(50, 70)[None])
    assert feats.shape == (1, 32, 8, 11)


def test_extract_deterministic_and_batch_independent(extractor):
    a, b = make_image(64, 64, 2), make_image(64, 64, 3)
    both = extractor.extract(np.stack([a, b]))
    alone = extractor.extract(b[None])
    assert torch.allclose(both[1], alone[0], atol=1e-5)
    assert torch.equal(extractor.extract(b[None]), alone)
    assert not torch.allclose(both[0], both[1])


# --------------------------------------------------------------------------- paper extractors


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
    from protodb.extractors.factory import DEFAULTS, PAPER_ENSEMBLE

    assert set(EXTRACTORS.names()) >= {"dinov2", "dino", "clip", "mae", "sd"}
    assert PAPER_ENSEMBLE == ("sd", "dino", "clip")
    real = {n: default_extractor_config("default", n) for n in DEFAULTS}
    assert real["sd"].model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert real["dino"].model == "facebook/dino-vitb8"
    assert real["clip"].model == "ViT-B-16/openai" and real["clip"].layer == "keys:10"
    assert real["mae"].model == "facebook/vit-mae-base"
    assert all(real[n].input_size == 512 for n in ("sd", "dino", "clip", "mae"))


def test_sd_layer_spec_gives_7680_dims():
    """Parity (REFERENCE 1.4): the nine attn2 to_q layers of SD 1.5's UNet give 7680 dims."""
    from diffusers import UNet2DConditionModel

    from protodb.extractors.sd import sd_query_layers

    with torch.device("meta"):  # SD 1.5's architecture, no weights allocated
        unet = UNet2DConditionModel(
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
            layers_per_block=2,
        )
    layers = sd_query_layers(unet)
    assert [d for _, d in layers] == [320, 1280, 1280, 1280, 1280, 640, 640, 640, 320]
    assert sum(d for _, d in layers) == 7680
    assert layers[0][0] == "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q"
    assert layers[-1][0] == "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_q"


def test_add_noise_coefficients_at_t200():
    """Parity (REFERENCE 1.4): x_t = 0.868154 x0 + 0.496295 eps for SD's scaled-linear betas."""
    from protodb.extractors.sd import ddpm_add_noise_coefficients

    a, s = ddpm_add_noise_coefficients(200)
    assert a == pytest.approx(0.868154, abs=1e-6) and s == pytest.approx(0.496295, abs=1e-6)
    # by hand: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2, alpha_bar = prod(1 - beta)
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    ab = np.prod(1 - betas[:201])
    assert a == pytest.approx(ab**0.5, rel=1e-5) and s == pytest.approx((1 - ab) ** 0.5, rel=1e-5)


def test_clip_keys_are_block_key_projection():
    """clip: keys = ln_1(x) @ W_k^T + b_k of the chosen block, CLS dropped, raster order."""
    ext = get_extractor(default_extractor_config("tiny", "clip"), "cpu")
    img = make_image(64, 64, 4)[None]
    x = ext.preprocess(img)
    v = ext.visual
    with torch.no_grad():  # at the native 64 px no interpolation: open_clip's own embedding
        t = v._embeds(x)  # conv1, CLS, positional embedding, ln_pre
        block = v.transformer.resblocks[0]
        d = ext.dim
        w, b = block.attn.in_proj_weight[d : 2 * d], block.attn.in_proj_bias[d : 2 * d]
        k = torch.nn.functional.linear(block.ln_1(t), w, b)
    feats = ext.extract(img)
    assert torch.allclose(feats[0, :, 0, 1], k[0, 2], atol=1e-5)
    assert torch.allclose(feats[0, :, 7, 7], k[0, 64], atol=1e-5)


def test_sd_features_fixed_noise_per_image():
    from protodb.extractors.sd import image_noise_seed

    ext = get_extractor(default_extractor_config("tiny", "sd"), "cpu")
    a = make_image(64, 64, 5)
    assert torch.equal(ext.extract(a[None]), ext.extract(a[None]))
    assert image_noise_seed(a) != image_noise_seed(make_image(64, 64, 6))
