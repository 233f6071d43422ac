"""Images from prompts with Stable Diffusion, and every entity's cross-attention.

Like support images (protodb.synthesis.generate), each image is keyed and depends on its key
only: (slot, prompt, generator config, seed, index) seeds its initial noise, every denoiser call
is padded to ``config.unet_batch`` rows, and each prompt is encoded on its own, so which images
share a call never matters (a resumed run makes the same bytes).

Attention is captured by the existing capture (protodb.synthesis.attention) for the union of
the batch's entity tokens; each entity's map is the mean over its own tokens of the per-token
running sums (REFERENCE 1.2: conditional half, all ``attn2`` layers and steps, heads summed,
divided by the head count).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from protodb.grounded.compose import Composition
from protodb.synthesis.generate import GeneratorConfig, image_seed


@dataclass
class Generated:
    """One generated image. image: uint8 [S, S, 3] RGB; attention: float32 [E, h, w] >= 0,
    the raw cross-attention of each entity on the latent grid (E = entities, in order);
    noise_seed: the seed of its initial noise."""

    composition: Composition
    image: np.ndarray
    attention: np.ndarray
    noise_seed: int


def noise_seed(composition: Composition, config: GeneratorConfig, seed: int) -> int:
    """The noise seed of a composition's image: a hash of its whole key."""
    key = f"synth\x1f{composition.slot}\x1f{composition.prompt}"
    return image_seed(key, config.id, seed, composition.index)


def load_pipeline(config: GeneratorConfig, device: str):
    """The diffusers pipeline of ``config`` (cached by protodb.models.diffusion.load_sd)."""
    from protodb.models.diffusion import load_sd, sd_dtype

    return load_sd(
        config.model, config.revision, device, sd_dtype(device), config.final_sigmas_type
    )


def generate(
    compositions: Sequence[Composition],
    config: GeneratorConfig,
    seed: int,
    *,
    device: str = "cpu",
    on_image: Callable[[Generated], None] | None = None,
    on_step: Callable[[float], None] | None = None,
) -> list[Generated]:
    """Sample one image per composition (``config.unet_batch`` per denoiser call) with each
    entity's attention. ``on_image`` is called with each image as soon as its call ends;
    ``on_step(f)`` after each denoising step with the images' worth of work done."""
    import torch

    from protodb.grounded.tokens import entity_token_positions
    from protodb.synthesis.attention import capture_cross_attention

    pipe = load_pipeline(config, device)
    positions = [entity_token_positions(pipe.tokenizer, c) for c in compositions]
    latent = config.size // pipe.vae_scale_factor
    channels = pipe.unet.config.in_channels
    rows = config.unet_batch
    with torch.inference_mode():
        _, uncond = pipe.encode_prompt("", device, 1, True, config.negative_prompt)
    out: list[Generated] = []
    for start in range(0, len(compositions), rows):
        batch = list(range(start, min(start + rows, len(compositions))))
        conds, noise = [], torch.zeros((rows, channels, latent, latent), dtype=torch.float32)
        with torch.inference_mode():
            for j, k in enumerate(batch):
                cond, _ = pipe.encode_prompt(compositions[k].prompt, device, 1, False)
                conds.append(cond)
                g = torch.Generator("cpu").manual_seed(noise_seed(compositions[k], config, seed))
                noise[j] = torch.randn((channels, latent, latent), generator=g)
        conds += [conds[0]] * (rows - len(batch))  # padding rows: results thrown away
        cond = torch.cat(conds)
        columns = sorted({p for k in batch for ps in positions[k] for p in ps})

        def step_done(_pipe, _i, _t, kwargs, n=len(batch)):
            if on_step is not None:
                on_step(n / config.steps)
            return kwargs

        with (
            torch.inference_mode(),
            capture_cross_attention(pipe.unet, columns, (latent, latent), images=rows) as store,
        ):
            result = pipe(
                callback_on_step_end=step_done,
                prompt_embeds=cond,
                negative_prompt_embeds=uncond.expand(rows, -1, -1),
                num_inference_steps=config.steps,
                guidance_scale=config.guidance,
                height=config.size,
                width=config.size,
                latents=noise.to(device=device, dtype=pipe.unet.dtype),
                output_type="np",
            )
        per_token = (store.total / store.count).float().cpu().numpy()  # [rows, T, h, w]
        images = (np.clip(result.images, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        for j, k in enumerate(batch):
            maps = [per_token[j, [columns.index(p) for p in ps]].mean(0) for ps in positions[k]]
            made = Generated(
                compositions[k],
                images[j],
                np.stack(maps).astype(np.float32),
                noise_seed(compositions[k], config, seed),
            )
            out.append(made)
            if on_image is not None:
                on_image(made)
    return out
