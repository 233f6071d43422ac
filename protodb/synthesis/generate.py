"""Support-set generation: sample a class's images with Stable Diffusion and its attribution.

Each support image is keyed by (class, generator config, seed, index) and depends on nothing
else: its initial noise is drawn from a CPU generator seeded by a hash of that key, so batch size
and what else runs in the same call do not matter.
"""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from protodb.errors import ProtodbError
from protodb.models.defaults import SD_DEFAULT
from protodb.models.diffusion import sd_dtype
from protodb.models.loading import TINY, TINY_VERSION
from protodb.profiles import Profile, get_profile
from protodb.registry import PluginConfig, Registry

DEFAULT_TEMPLATE = "A good picture of a {}"
DEFAULT_NEGATIVE = "text, low quality, blurry, cartoon, meme, low resolution, bad, poor, faded"


@dataclass(frozen=True)
class GeneratorConfig(PluginConfig):
    """Everything that changes a support image (REFERENCE 1.1 defaults).

    The generator id is a hash of these fields; the runtime (device, dtype, library versions)
    is recorded beside each image as provenance but is not part of the key.
    """

    name: str = "sd"
    model: str = SD_DEFAULT
    revision: str | None = None
    scheduler: str = "dpmsolver++2m"
    final_sigmas_type: str = "sigma_min"
    steps: int = 30
    guidance: float = 8.0
    size: int = 512
    negative_prompt: str = DEFAULT_NEGATIVE
    template: str = DEFAULT_TEMPLATE
    weights: str | None = None  # for the tiny profile: the version of the tiny configs
    # Images per denoiser call. Every call is padded to exactly this many images, so the
    # kernels always see the same shapes and a support image's arithmetic never depends on how
    # many images are sampled together (GEMM and convolution kernels round differently for
    # different batch shapes). Part of the key because another shape rounds differently.
    unet_batch: int = 8

    def __post_init__(self) -> None:
        if self.steps < 1 or self.steps > 1000:
            raise ProtodbError(f"steps={self.steps} is out of range; use 1 to 1000 (paper: 30)")
        if not (math.isfinite(self.guidance) and 1.0 <= self.guidance <= 100.0):
            raise ProtodbError(f"guidance={self.guidance} must be from 1 to 100 (paper: 8.0)")
        if self.size % 8 or self.size < 64:
            raise ProtodbError(f"size={self.size} must be a multiple of 8 and >= 64 (paper: 512)")
        if not 1 <= self.unet_batch <= 64:
            raise ProtodbError(f"unet_batch={self.unet_batch} is out of range; use 1 to 64")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None]
        except ValueError:  # an unmatched brace
            fields = None
        if fields != [""]:
            raise ProtodbError(
                f"template {self.template!r} must contain '{{}}' exactly once and no other "
                "braces, e.g. 'A good picture of a {}'"
            )

    def prompt(self, class_name: str) -> str:
        return self.template.format(class_name)


def tiny_generator_config() -> GeneratorConfig:
    """The tiny twin at 64 px: 10 steps, 4 images per denoiser call (the ``tiny`` profile's)."""
    return GeneratorConfig(model=TINY, weights=TINY_VERSION, steps=10, size=64, unet_batch=4)


def default_generator_config(profile: str | Profile, **overrides) -> GeneratorConfig:
    """The generator config of a profile (Profile.generator_config: SD 1.5 at 512 px on the
    default profile, :func:`tiny_generator_config` on ``tiny``), with ``overrides``
    (GeneratorConfig fields; None leaves the profile's value)."""
    return get_profile(profile).generator_config(**overrides)


def image_seed(class_key: str, generator_id: str, seed: int, index: int) -> int:
    """The noise seed of one support image: a 63-bit hash of its key."""
    digest = hashlib.sha256(f"{class_key}\x1f{generator_id}\x1f{seed}\x1f{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class SupportImage:
    """One generated support image.

    image: uint8 [H, W, 3] RGB; attribution: float32 [h, w] >= 0, the unnormalised class-token
    cross-attention on the latent grid (h = H / 8 for SD); index: position in the support set.
    """

    index: int
    image: np.ndarray
    attribution: np.ndarray


GeneratorFn = Callable[..., list[SupportImage]]
GENERATORS: Registry[GeneratorFn] = Registry("generator")
GENERATORS.register_lazy("world", "protodb.world.generator")


@GENERATORS.register("sd")
def generate_sd(
    class_name: str,
    class_key: str,
    config: GeneratorConfig,
    seed: int,
    indices: Sequence[int],
    *,
    device: str = "cpu",
    batch_size: int = 1,
    progress: Callable[[int], None] | None = None,
    on_step: Callable[[float], None] | None = None,
    capture: bool = True,
) -> list[SupportImage]:
    """Sample support images ``indices`` of a class with Stable Diffusion and capture attribution.

    Returns one SupportImage per index, in order. Images are sampled ``batch_size`` at a time
    (at most ``config.unet_batch``), each call padded to ``config.unet_batch`` images, with the
    prompt encoded once: the result for an index is byte-identical whatever the batch size.
    ``progress(n)`` is called after each call with the number of images it finished;
    ``on_step(f)`` after each denoising step with the images' worth of work it did (the call's
    images / steps), so a bar in images moves at every step.
    ``capture=False`` skips attribution (maps are zeros; for benchmarks: images are identical).
    """
    import contextlib

    import torch

    from protodb import timing
    from protodb.models.diffusion import load_sd
    from protodb.synthesis.attention import capture_cross_attention, class_token_positions

    with timing.stage("load sd"):
        pipe = load_sd(
            config.model, config.revision, device, sd_dtype(device), config.final_sigmas_type
        )
    positions = class_token_positions(pipe.tokenizer, config.template, class_name)
    factor = pipe.vae_scale_factor
    latent_hw = (config.size // factor, config.size // factor)
    channels = pipe.unet.config.in_channels
    rows = config.unet_batch
    with timing.stage("text encoder"), torch.inference_mode():
        cond, uncond = pipe.encode_prompt(
            config.prompt(class_name), device, 1, True, config.negative_prompt
        )
    cond, uncond = cond.expand(rows, -1, -1), uncond.expand(rows, -1, -1)
    step = max(1, min(batch_size, rows))
    out: list[SupportImage] = []
    for start in range(0, len(indices), step):
        batch = list(indices[start : start + step])
        noise = torch.zeros((rows, channels, *latent_hw), dtype=torch.float32)
        for j, i in enumerate(batch):
            g = torch.Generator("cpu").manual_seed(image_seed(class_key, config.id, seed, i))
            noise[j] = torch.randn((channels, *latent_hw), generator=g, dtype=torch.float32)
        latents = noise.to(device=device, dtype=pipe.unet.dtype)
        tracer = (
            capture_cross_attention(pipe.unet, positions, latent_hw, images=rows)
            if capture
            else contextlib.nullcontext()
        )

        def step_done(_pipe, i, _t, kwargs, n=len(batch)):
            if on_step is not None:
                on_step(n / config.steps)
            if i == _pipe.num_timesteps - 1:  # what is left of the call is the VAE decode
                timing.switch("vae decode")
            return kwargs

        with timing.stage("sampling"), torch.inference_mode(), tracer as s:
            result = pipe(
                callback_on_step_end=step_done,
                prompt_embeds=cond,
                negative_prompt_embeds=uncond,
                num_inference_steps=config.steps,
                guidance_scale=config.guidance,
                height=config.size,
                width=config.size,
                latents=latents,
                output_type="np",
            )
        with timing.stage("capture"):
            if capture:
                maps = s.maps().cpu().numpy().astype(np.float32)
            else:
                maps = np.zeros((rows, *latent_hw), np.float32)
        images = (np.clip(result.images, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        for j, i in enumerate(batch):
            out.append(SupportImage(index=i, image=images[j], attribution=maps[j]))
        if progress is not None:
            progress(len(batch))
    return out
