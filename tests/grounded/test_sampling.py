"""Images from prompts: keyed noise, and per-entity attention equal to the existing capture's
map for that entity's tokens alone (REFERENCE 1.2 / 3: the union capture is a pure slicing)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from protodb.grounded.compose import parse_prompt
from protodb.grounded.sampling import generate, load_pipeline, noise_seed
from protodb.grounded.tokens import entity_token_positions
from protodb.synthesis.attention import capture_cross_attention
from protodb.synthesis.generate import default_generator_config


def test_entity_attention_is_the_capture_of_its_own_tokens():
    cfg = replace(default_generator_config("tiny"), steps=2, unet_batch=1)
    comp = parse_prompt("a red apple and a dog on grass", ["red apple", "grass"])
    (made,) = generate([comp], cfg, 0)
    assert made.attention.shape[0] == 2 and made.image.shape == (64, 64, 3)
    assert made.noise_seed == noise_seed(comp, cfg, 0)

    pipe = load_pipeline(cfg, "cpu")
    positions = entity_token_positions(pipe.tokenizer, comp)
    latent = cfg.size // pipe.vae_scale_factor
    rows = cfg.unet_batch
    g = torch.Generator("cpu").manual_seed(made.noise_seed)
    noise = torch.zeros((rows, pipe.unet.config.in_channels, latent, latent))
    noise[0] = torch.randn(noise.shape[1:], generator=g)
    with torch.inference_mode():
        cond, _ = pipe.encode_prompt(comp.prompt, "cpu", 1, False)
        _, uncond = pipe.encode_prompt("", "cpu", 1, True, cfg.negative_prompt)
    for e, ps in enumerate(positions):
        with (
            torch.inference_mode(),
            capture_cross_attention(pipe.unet, ps, (latent, latent)) as store,
        ):
            out = pipe(
                prompt_embeds=cond.expand(rows, -1, -1),
                negative_prompt_embeds=uncond.expand(rows, -1, -1),
                num_inference_steps=cfg.steps,
                guidance_scale=cfg.guidance,
                height=cfg.size,
                width=cfg.size,
                latents=noise,
                output_type="np",
            )
        np.testing.assert_allclose(made.attention[e], store.maps()[0].numpy(), rtol=1e-5,
                                   atol=1e-7)  # fmt: skip
        image = (np.clip(out.images[0], 0, 1) * 255).round().astype(np.uint8)
        np.testing.assert_array_equal(image, made.image)
