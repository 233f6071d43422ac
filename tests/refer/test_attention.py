"""Parity: the noising step and strength, and which layers are captured (REFERENCE 2); the
generative attention on the tiny twin end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protodb.errors import ProtodbError
from protodb.refer.attention import (
    ReferAttentionConfig,
    attn2_layer_factors,
    capture_layers,
    check_expression,
    ddim_scheduler,
    default_attention_config,
    denoise_timesteps,
    generative_attention,
    load_pipeline,
    subject_positions,
)


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline(default_attention_config("tiny"), "cpu")


def test_reference_settings():
    c = ReferAttentionConfig()
    assert (c.steps, c.strength, c.guidance, c.eta, c.size, c.layer_divisor) == (
        20,
        0.1,
        9.0,
        0.0,
        1024,
        32,
    )
    assert c.negative_prompt == "" and c.t_enc == 2


def test_twenty_ddim_steps_at_strength_point_one_noise_to_51_and_denoise_twice(pipe):
    sched = ddim_scheduler(pipe)
    ts = denoise_timesteps(sched, ReferAttentionConfig())
    assert ts == [51, 1]
    from dataclasses import replace

    assert denoise_timesteps(sched, replace(ReferAttentionConfig(), strength=0.25)) == [
        201,
        151,
        101,
        51,
        1,
    ]


def test_noising_is_the_ddim_forward_process_at_the_first_timestep(pipe):
    sched = ddim_scheduler(pipe)
    denoise_timesteps(sched, ReferAttentionConfig())
    z0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    a = sched.alphas_cumprod[51]
    got = sched.add_noise(z0, noise, torch.tensor([51]))
    assert torch.allclose(got, a.sqrt() * z0 + (1 - a).sqrt() * noise, atol=1e-6)
    assert 0.95 < float(a) < 0.96  # lightly noised: alpha_bar(51) of SD's schedule


def test_strength_with_no_noising_step_is_refused():
    with pytest.raises(ProtodbError, match="no noising step"):
        ReferAttentionConfig(strength=0.01)


def test_sd15_layers_at_side_over_32_are_down_2_and_up_1():
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(  # SD 1.5's block structure at a tiny width
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=2,
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=4,
        sample_size=16,
    )
    chosen = capture_layers(unet, 1024 // 8, 1024 // 32)
    assert len(chosen) == 5
    assert {n.split(".attentions")[0] for n in chosen} == {"down_blocks.2", "up_blocks.1"}
    with pytest.raises(ProtodbError, match="no cross-attention layer"):
        capture_layers(unet, 128, 3)


def test_layer_factors_match_the_resolution_each_layer_runs_at(pipe):
    seen = {}
    hooks = []
    for name, module in pipe.unet.named_modules():
        if name.endswith("attn2"):

            def hook(mod, args, kwargs, name=name):
                seen[name + ".processor"] = args[0].shape[1]

            hooks.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    latent = 16
    try:
        with torch.no_grad():
            pipe.unet(
                torch.zeros(1, 4, latent, latent), 1, encoder_hidden_states=torch.zeros(1, 77, 32)
            )
    finally:
        for h in hooks:
            h.remove()
    factors = attn2_layer_factors(pipe.unet)
    assert set(seen) == set(factors)
    for name, n in seen.items():
        assert n == (latent // factors[name]) ** 2, name


def test_subject_positions_follow_the_start_token(pipe):
    expr = "the red disc on the left"
    assert subject_positions(pipe.tokenizer, expr, 8, 12) == [3]
    assert subject_positions(pipe.tokenizer, expr, 0, 3) == [1]


def test_too_long_and_empty_expressions_are_refused(pipe):
    with pytest.raises(ProtodbError, match="context of 77"):
        check_expression(pipe.tokenizer, "red " * 80)
    with pytest.raises(ProtodbError, match="empty"):
        check_expression(pipe.tokenizer, "  ")
    assert check_expression(pipe.tokenizer, "the dog") == 4


def test_generative_attention_on_the_tiny_twin(pipe):
    config = default_attention_config("tiny")
    image = np.random.default_rng(0).integers(0, 255, (40, 64, 3), dtype=np.uint8)
    before = {k: type(v) for k, v in pipe.unet.attn_processors.items()}
    a = generative_attention(image, "the red disc on the left", (8, 12), config, pipe=pipe)
    assert {k: type(v) for k, v in pipe.unet.attn_processors.items()} == before
    assert a.map.shape == (40, 64) and a.map.dtype == np.float32
    assert a.map.min() == 0.0 and 0.99 < a.map.max() <= 1.0
    assert a.raw.shape == (16, 16)  # 64 px / layer_divisor 4
    assert a.timesteps == [51, 1] and a.token_positions == [3]
    assert all(attn2_layer_factors(pipe.unet)[n] == 2 for n in a.layers)  # latent 32 -> 16
    again = generative_attention(image, "the red disc on the left", (8, 12), config, pipe=pipe)
    assert np.array_equal(a.map, again.map)  # seeded
    other = generative_attention(image, "the red disc on the left", (0, 3), config, pipe=pipe)
    assert not np.array_equal(a.raw, other.raw)  # another token, another map
