"""Stable Diffusion through diffusers, and its CLIP tokenizer: the real pipeline by hub id or
local path, the DPM-Solver++ scheduler of REFERENCE 1.1, and the tiny twin (UNet2DConditionModel,
AutoencoderKL, CLIPTextModel with the real CLIP BPE vocabulary that open_clip ships).
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import Any

from protodb.errors import ProtodbError
from protodb.models.defaults import SD_DEFAULT
from protodb.models.loading import TINY, fork_seeded, missing_model, quiet_loading, resolve_model


def sd_dtype(device: str) -> str:
    """The dtype Stable Diffusion runs in on ``device``: float16 on CUDA, float32 otherwise."""
    return "float16" if device.startswith("cuda") else "float32"


@functools.lru_cache(maxsize=1)
def clip_bpe() -> tuple[dict[str, int], list[str]]:
    """The CLIP BPE vocabulary and merges, read from the file open_clip ships (works offline).

    Returns (vocab: token -> id, 49408 entries; merges: 48894 "a b" strings), exactly the
    vocabulary of OpenAI CLIP and Stable Diffusion 1.x's tokenizer.
    """
    import open_clip.tokenizer as oct

    path = Path(oct.__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
    with gzip.open(path) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(oct.bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def tiny_tokenizer():
    """A transformers CLIPTokenizer with the real CLIP vocabulary, built offline."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_bpe()
    tok = CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m.split()) for m in merges])
    tok.model_max_length = 77
    return tok


# --------------------------------------------------------------------------- stable diffusion


def tiny_text_config(hidden: int, layers: int = 2, heads: int = 4):
    """A transformers CLIPTextConfig of the real CLIP vocabulary and context (49,408 tokens, 77
    positions, its start / end tokens) at a tiny width: ``hidden`` dims, MLP 2 x hidden."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )


def tiny_sd_components() -> dict[str, Any]:
    """The components of a tiny Stable Diffusion 1.x: 64 px images, 32x32 latents.

    The UNet keeps SD's structure (cross-attention in down, mid and up blocks; two latent
    resolutions, 32 and 16) at a fraction of the width.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    with fork_seeded():
        unet = UNet2DConditionModel(
            sample_size=32,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=16,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=(16, 32),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=16,
            sample_size=64,
        )
        text_encoder = CLIPTextModel(tiny_text_config(32))
    for m in (unet, vae, text_encoder):
        m.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tiny_tokenizer()}


def sd_scheduler(final_sigmas_type: str = "sigma_min"):
    """DPM-Solver++ 2M with Stable Diffusion 1.x's training schedule (scaled-linear betas)."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        algorithm_type="dpmsolver++",
        solver_order=2,
        final_sigmas_type=final_sigmas_type,
        timestep_spacing="linspace",
        steps_offset=1,
    )


@functools.lru_cache(maxsize=4)
def load_sd(model: str, revision: str | None, device: str, dtype: str, final_sigmas_type: str):
    """Return a diffusers StableDiffusionPipeline on ``device`` (no safety checker).

    ``model`` is a hub id, a local directory, or ``"tiny"``. ``dtype`` is "float16" or "float32".
    Pipelines of the same (model, revision, device, dtype) share one set of modules (UNet, VAE,
    text encoder) whatever their scheduler: the generator and the ``sd`` extractor of one model
    hold its weights once.
    """
    base = _load_sd_modules(model, revision, device, dtype)
    if base.scheduler.config.final_sigmas_type == final_sigmas_type:
        return base
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        **{**base.components, "scheduler": sd_scheduler(final_sigmas_type)},
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@functools.lru_cache(maxsize=2)
def _load_sd_modules(model: str, revision: str | None, device: str, dtype: str):
    """The pipeline of :func:`load_sd` with the default ("sigma_min") scheduler."""
    final_sigmas_type = "sigma_min"
    import torch
    from diffusers import StableDiffusionPipeline

    torch_dtype = getattr(torch, dtype)
    if model == TINY:
        pipe = StableDiffusionPipeline(
            **tiny_sd_components(),
            scheduler=sd_scheduler(final_sigmas_type),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    else:
        quiet_loading()
        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                resolve_model(model),
                revision=revision,
                dtype=torch_dtype,
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        except (OSError, ValueError) as err:
            raise missing_model("Stable Diffusion", model, err) from None
        if pipe.unet.dtype != torch_dtype:  # provenance records dtype: it must be what ran
            import diffusers

            raise ProtodbError(
                f"diffusers {diffusers.__version__} loaded {model} in {pipe.unet.dtype}, not "
                f"{dtype}; pip install 'diffusers>=0.40'"
            )
        pipe.scheduler = sd_scheduler(final_sigmas_type)
        if model == SD_DEFAULT:
            from protodb.models.architectures import check_architecture

            check_architecture("sd-unet", pipe.unet, model)
            check_architecture("sd-text-encoder", pipe.text_encoder, model)
            check_architecture("sd-vae", pipe.vae, model)
    pipe = pipe.to(device)
    if model == TINY and torch_dtype != torch.float32:
        pipe = pipe.to(dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def random_sd_pipeline(seed: int = 0):
    """A StableDiffusionPipeline of SD 1.5's real architectures (UNet, VAE and text encoder from
    their shipped configs) with random weights seeded by ``seed``, the CLIP BPE tokenizer and
    protodb's scheduler, on the CPU in float32: for benchmarks that need the real sizes, not the
    weights."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from protodb.models.architectures import architectures, shipped_config

    torch.manual_seed(seed)
    arch = architectures()
    text_cfg = dict(shipped_config(arch["sd-text-encoder"].config))
    text_cfg.pop("model_type", None)
    return StableDiffusionPipeline(
        unet=UNet2DConditionModel.from_config(shipped_config(arch["sd-unet"].config)),
        vae=AutoencoderKL.from_config(shipped_config(arch["sd-vae"].config)),
        text_encoder=CLIPTextModel(CLIPTextConfig(**text_cfg)),
        tokenizer=tiny_tokenizer(),
        scheduler=sd_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
