"""Generative attention on a real image (Ref-Diff, REFERENCE 2).

The image is padded to a centred black square, resized to the model's size and VAE-encoded;
the latent is noised lightly (``strength`` of a ``steps``-step DDIM schedule: t_enc =
int(strength x steps) = 2 of 20 steps) and denoised through the schedule's last t_enc steps
with the expression as the prompt and classifier-free guidance 9 (empty negative prompt).
Meanwhile the subject's token columns of the cross-attention are captured at the layers whose
map is side / ``layer_divisor`` (32 for SD at 1024 px: down_blocks.2 and up_blocks.1) through
:func:`protodb.synthesis.attention.capture_cross_attention` (each layer's own processor wrapped;
conditional half only), averaged over heads, layers, steps and the subject's tokens, resized
back to the square, the padding cropped off and min-max normalised (denominator + 1e-8).

Noising: the latent is noised to the first of the last t_enc DDIM timesteps (t = 51 for SD's
"leading" spacing with offset 1) and denoised at t = 51 and t = 1, the self-consistent form
diffusers' img2img uses; the latent-diffusion sampler Ref-Diff's code builds on noises with the
cumulative alpha of DDIM index t_enc (t = 101) and then denoises from t = 51.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from protodb.errors import ProtodbError
from protodb.models.defaults import SD_DEFAULT
from protodb.profiles import Profile, get_profile
from protodb.refer.geometry import Padding, crop_back, min_max, pad_to_square
from protodb.registry import PluginConfig

CONTEXT_TOKENS = 77  # CLIP's text context (SD's text encoder and open_clip ViT-B/16 alike)


@dataclass(frozen=True)
class ReferAttentionConfig(PluginConfig):
    """Everything that changes the attention map (REFERENCE 2 defaults); recorded with every
    result, its ``id`` a hash of the fields like the generator's."""

    name: str = "refdiff"
    model: str = SD_DEFAULT
    revision: str | None = None
    weights: str | None = None  # tiny / learned profiles: the version of their weights
    size: int = 1024  # the padded square is resized to this before the VAE
    steps: int = 20  # DDIM schedule length
    strength: float = 0.1  # t_enc = int(strength x steps) steps of noise, then denoised
    eta: float = 0.0
    guidance: float = 9.0
    negative_prompt: str = ""
    layer_divisor: int = 32  # capture the layers whose map side is size / layer_divisor
    seed: int = 0  # VAE sample and noise

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= 1000:
            raise ProtodbError(f"steps={self.steps} must be 1 to 1000 (Ref-Diff: 20)")
        if not (0.0 < self.strength <= 1.0) or int(self.strength * self.steps) < 1:
            raise ProtodbError(
                f"strength={self.strength} with {self.steps} steps gives no noising step; "
                "int(strength x steps) must be >= 1 (Ref-Diff: 0.1 of 20)"
            )
        if not (math.isfinite(self.guidance) and 1.0 <= self.guidance <= 100.0):
            raise ProtodbError(f"guidance={self.guidance} must be 1 to 100 (Ref-Diff: 9)")
        if self.size % 8 or self.size < 64:
            raise ProtodbError(f"size={self.size} must be a multiple of 8, >= 64 (Ref-Diff: 1024)")
        if self.layer_divisor < 1:
            raise ProtodbError(f"layer_divisor={self.layer_divisor} must be >= 1 (Ref-Diff: 32)")

    @property
    def t_enc(self) -> int:
        """Steps of noise and of denoising: int(strength x steps)."""
        return int(self.strength * self.steps)


def default_attention_config(profile: str | Profile, **overrides) -> ReferAttentionConfig:
    """The attention config of a profile (its ``attention`` fields over the reference's SD 1.5
    at 1024 px: the tiny twin at 64 px, side / 4; the learned test world at 64 px, side / 8),
    with ``overrides``; a profile without a diffusion model raises its ``no_attention``."""
    p = get_profile(profile)
    if p.attention is None:
        raise ProtodbError(p.no_attention or f"profile {p.name!r} has no diffusion model")
    base = ReferAttentionConfig(**p.attention)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def attn2_layer_factors(unet) -> dict[str, int]:
    """Every cross-attention processor name of a diffusers UNet2DConditionModel -> its
    downsampling factor relative to the latent (down_blocks.i: 2^i; mid_block: 2^(D - 1);
    up_blocks.j: 2^(U - 1 - j))."""
    n_down = len(unet.down_blocks)
    n_up = len(unet.up_blocks)
    out = {}
    for name in unet.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        part = name.split(".")
        if part[0] == "down_blocks":
            out[name] = 2 ** int(part[1])
        elif part[0] == "up_blocks":
            out[name] = 2 ** (n_up - 1 - int(part[1]))
        elif part[0] == "mid_block":
            out[name] = 2 ** (n_down - 1)
    return out


def capture_layers(unet, latent_side: int, map_side: int) -> list[str]:
    """The cross-attention layers whose map is ``map_side`` wide on a ``latent_side`` latent;
    a ProtodbError naming the sides available when there is none."""
    factors = attn2_layer_factors(unet)
    chosen = sorted(n for n, f in factors.items() if latent_side // f == map_side)
    if not chosen:
        sides = sorted({latent_side // f for f in factors.values()}, reverse=True)
        raise ProtodbError(
            f"this UNet has no cross-attention layer with a {map_side}x{map_side} map; its maps "
            f"are {', '.join(map(str, sides))} wide at this size: choose layer_divisor to match"
        )
    return chosen


def check_expression(tokenizer, expression: str) -> int:
    """The expression's token count with start and end; a ProtodbError when it is empty or
    does not fit the text encoder's context (77 tokens)."""
    if not expression.strip():
        raise ProtodbError("the expression is empty; pass the words that describe the region")
    n = len(tokenizer(expression, verbose=False).input_ids)  # no "too long" log line
    limit = min(int(tokenizer.model_max_length), CONTEXT_TOKENS)
    if n > limit:
        raise ProtodbError(
            f"the expression gives {n} tokens, over the text encoder's context of {limit} "
            f"(start and end included); shorten it: {expression[:60]!r}..."
        )
    return n


def subject_positions(tokenizer, expression: str, start: int, end: int) -> list[int]:
    """Prompt positions of the tokens of ``expression[start:end]`` (position 0 = start token)."""
    from protodb.synthesis.attention import class_token_positions

    template = expression[:start] + "{}" + expression[end:]
    return class_token_positions(tokenizer, template, expression[start:end])


def sanitise(expression: str) -> str:
    """The expression as prompt: braces become parentheses (templates use braces), one line."""
    return " ".join(expression.replace("{", "(").replace("}", ")").split())


@dataclass
class AttentionMap:
    """The subject's attention over an image.

    map: float32 [H, W] in [0, 1] (min-max normalised, image size); raw: float32 [s, s], the
    unnormalised average over the padded square's captured grid; layers: processor names
    captured; timesteps: the denoising timesteps run; token_positions: the subject's prompt
    positions; padding: where the image sits in its square; config_id: the config's id."""

    map: np.ndarray
    raw: np.ndarray
    layers: list[str]
    timesteps: list[int]
    token_positions: list[int]
    padding: Padding
    config_id: str


def ddim_scheduler(pipe):
    """A fresh DDIM scheduler on the pipeline's training betas (SD's DDIM settings: leading
    spacing, offset 1, no clipping, alpha_T from the schedule); the pipeline's own scheduler
    is shared and left alone."""
    from diffusers import DDIMScheduler

    c = pipe.scheduler.config
    return DDIMScheduler(
        num_train_timesteps=c.num_train_timesteps,
        beta_start=c.beta_start,
        beta_end=c.beta_end,
        beta_schedule=c.beta_schedule,
        trained_betas=c.get("trained_betas"),
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type=c.get("prediction_type", "epsilon"),
    )


def denoise_timesteps(scheduler, config: ReferAttentionConfig) -> list[int]:
    """The timesteps run: the last t_enc of the ``config.steps``-step schedule ([51, 1] for
    SD's 20 steps at strength 0.1); the latent is noised to the first of them."""
    scheduler.set_timesteps(config.steps)
    ts = [int(t) for t in scheduler.timesteps]
    return ts[len(ts) - config.t_enc :]


def load_pipeline(config: ReferAttentionConfig, device: str):
    from protodb.models.diffusion import load_sd, sd_dtype

    return load_sd(config.model, config.revision, device, sd_dtype(device), "sigma_min")


def generative_attention(
    image: np.ndarray,
    expression: str,
    span: tuple[int, int],
    config: ReferAttentionConfig,
    *,
    device: str = "cpu",
    pipe=None,
) -> AttentionMap:
    """The attention of ``expression[span[0]:span[1]]`` (the subject) over ``image`` (uint8
    [H, W, 3]) with the expression as prompt (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    from protodb.synthesis.attention import capture_cross_attention

    pipe = pipe if pipe is not None else load_pipeline(config, device)
    check_expression(pipe.tokenizer, expression)
    positions = subject_positions(pipe.tokenizer, expression, *span)
    square, pad = pad_to_square(image)
    factor = pipe.vae_scale_factor
    latent_side = config.size // factor
    map_side = config.size // config.layer_divisor
    layers = capture_layers(pipe.unet, latent_side, map_side)
    dtype = pipe.unet.dtype
    x = torch.from_numpy(square).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    x = F.interpolate(x, size=(config.size, config.size), mode="bilinear", align_corners=False)
    g = torch.Generator("cpu").manual_seed(config.seed)
    with torch.inference_mode():
        dist = pipe.vae.encode(x.to(device=device, dtype=pipe.vae.dtype)).latent_dist
        eps = torch.randn(dist.mean.shape, generator=g, dtype=torch.float32)
        z0 = dist.mean.float().cpu() + dist.std.float().cpu() * eps
        z0 = z0 * pipe.vae.config.scaling_factor
        noise = torch.randn(z0.shape, generator=g, dtype=torch.float32)
        sched = ddim_scheduler(pipe)
        timesteps = denoise_timesteps(sched, config)
        z = sched.add_noise(z0, noise, torch.tensor([timesteps[0]])).to(device=device, dtype=dtype)
        cond, uncond = pipe.encode_prompt(expression, device, 1, True, config.negative_prompt)
        context = torch.cat([uncond, cond])
        with capture_cross_attention(pipe.unet, positions, (map_side, map_side), layers) as store:
            for t in timesteps:
                out = pipe.unet(z.repeat(2, 1, 1, 1), t, encoder_hidden_states=context).sample
                u, c = out.float().chunk(2)
                guided = u + config.guidance * (c - u)
                z = sched.step(guided, t, z.float(), eta=config.eta).prev_sample.to(dtype)
        if store.calls != len(layers) * len(timesteps):
            raise RuntimeError(
                f"captured {store.calls} layer calls, expected {len(layers) * len(timesteps)}"
            )
        raw = store.maps()[0].cpu().numpy().astype(np.float32)
    att = min_max(crop_back(raw, pad))
    return AttentionMap(att, raw, layers, timesteps, positions, pad, config.id)
