"""The sd extractor: layer spec, noise coefficients, fixed noise (protodb.extractors.sd)."""

import numpy as np
import pytest
import torch
from conftest import make_image

from protodb.extractors.factory import default_extractor_config, get_extractor


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


def test_sd_features_fixed_noise_per_image():
    from protodb.extractors.sd import image_noise_seed

    ext = get_extractor(default_extractor_config("tiny", "sd"), "cpu")
    a = make_image(64, 64, 5)
    assert torch.equal(ext.extract(a[None]), ext.extract(a[None]))
    assert image_noise_seed(a) != image_noise_seed(make_image(64, 64, 6))


def test_sd_layer_spec_on_the_real_unet_architecture_gives_7680_dims():
    """The nine to_q layers of REFERENCE 1.4 on SD 1.5's UNet, built from its shipped config
    with no weights (protodb.models.architectures)."""
    from protodb.extractors.sd import SD_QUERY_BLOCKS, sd_query_layers
    from protodb.models.architectures import build

    layers = sd_query_layers(build("sd-unet"))
    assert [n.split(".transformer_blocks")[0] for n, _ in layers] == list(SD_QUERY_BLOCKS)
    assert [d for _, d in layers] == [320, 1280, 1280, 1280, 1280, 640, 640, 640, 320]
    assert sum(d for _, d in layers) == 7680


def test_query_blocks_are_derived_from_the_unet():
    """The derivation reproduces the paper's nine on SD 1.5 and the tiny twin's five, and gives
    any SD-family UNet (here the learned world's shape) its analogue."""
    from diffusers import UNet2DConditionModel

    from protodb.extractors.sd import SD_QUERY_BLOCKS, TINY_SD_QUERY_BLOCKS, sd_query_blocks
    from protodb.models.architectures import build
    from protodb.models.diffusion import tiny_sd_components

    assert sd_query_blocks(build("sd-unet")) == SD_QUERY_BLOCKS
    assert sd_query_blocks(tiny_sd_components()["unet"]) == TINY_SD_QUERY_BLOCKS
    world = UNet2DConditionModel(
        sample_size=16,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    assert sd_query_blocks(world) == (
        "down_blocks.0.attentions.0",
        "mid_block.attentions.0",
        "up_blocks.1.attentions.0",
        "up_blocks.1.attentions.1",
        "up_blocks.2.attentions.1",
    )
