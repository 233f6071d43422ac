"""Model loading: real models by hub id or local path, and the offline ``tiny`` twins.

Real models come through their own libraries (diffusers, transformers, open_clip) and honour
their cache and offline settings (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``). A model that
is neither cached nor reachable raises :class:`ModelNotFoundError` naming the model and how to
get it; there is never a silent fallback to another model.

The ``tiny`` models are the same classes (UNet2DConditionModel, AutoencoderKL, CLIPTextModel,
Dinov2Model, open_clip CLIP) built from tiny configs with deterministic random weights: the
weights depend only on :data:`TINY_SEED` and the config, so every process builds identical
models. They make the machinery testable offline; their outputs mean nothing.

Loaded models are cached per process, keyed by (what, model, revision, device, dtype).
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path
from typing import Any

from protodb.errors import ModelNotFoundError

TINY = "tiny"
TINY_SEED = 20240607
TINY_VERSION = "tiny-v1"

SD_DEFAULT = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DINOV2_DEFAULT = "facebook/dinov2-base"
CLIP_DEFAULT = "ViT-B-16"
CLIP_DEFAULT_PRETRAINED = "openai"


def _missing(what: str, model: str, err: BaseException) -> ModelNotFoundError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    where = (
        "HF_HUB_OFFLINE is set, so only the local cache was searched"
        if offline
        else ("it is not in the local cache and the hub could not be reached")
    )
    return ModelNotFoundError(
        f"{what} model {model!r} is not available: {where} ({type(err).__name__}). "
        f"Download it on a machine with network access (`hf download {model}`) and copy the "
        f"Hugging Face cache (HF_HOME, default ~/.cache/huggingface) here, or pass a local "
        f"directory with --model; for offline tests use --profile tiny."
    )


def _from_pretrained(cls, label: str, model: str, revision: str | None, **kwargs):
    """``cls.from_pretrained(model, revision=revision, **kwargs)`` with the libraries' loading
    noise silenced; a missing model raises the one clear ModelNotFoundError (``_missing``)."""
    _quiet_loading()
    try:
        return cls.from_pretrained(model, revision=revision, **kwargs)
    except (OSError, ValueError) as err:
        raise _missing(label, model, err) from None


def _quiet_loading():
    """Silence the libraries' loading chatter (their warnings become our one clear error)."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()


def _fork_seeded():
    """A context in which torch's CPU RNG is seeded with TINY_SEED and restored afterwards."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def ctx():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            yield

    return ctx()


# --------------------------------------------------------------------------- tokenizer


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


def tiny_sd_components() -> dict[str, Any]:
    """The components of a tiny Stable Diffusion 1.x: 64 px images, 32x32 latents.

    The UNet keeps SD's structure (cross-attention in down, mid and up blocks; two latent
    resolutions, 32 and 16) at a fraction of the width.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with _fork_seeded():
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
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=49406,
                eos_token_id=49407,
                pad_token_id=49407,
            )
        )
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


@functools.lru_cache(maxsize=2)
def load_sd(model: str, revision: str | None, device: str, dtype: str, final_sigmas_type: str):
    """Return a diffusers StableDiffusionPipeline on ``device`` (no safety checker).

    ``model`` is a hub id, a local directory, or ``"tiny"``. ``dtype`` is "float16" or "float32".
    """
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
        _quiet_loading()
        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                model,
                revision=revision,
                dtype=torch_dtype,
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        except (OSError, ValueError) as err:
            raise _missing("Stable Diffusion", model, err) from None
        pipe.scheduler = sd_scheduler(final_sigmas_type)
    pipe = pipe.to(device)
    if model == TINY and torch_dtype != torch.float32:
        pipe = pipe.to(dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------- DINOv2

# The tiny twins of the ViT extractors (DINOv2, DINO, MAE): 2 layers, 32 dims, patch 8, 64 px.
TINY_VIT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    patch_size=8,
    image_size=64,
)


@functools.lru_cache(maxsize=2)
def load_dinov2(model: str, revision: str | None, device: str):
    """Return a transformers Dinov2Model in eval mode. ``model``: hub id, local dir or "tiny"."""
    from transformers import Dinov2Config, Dinov2Model

    if model == TINY:
        with _fork_seeded():
            net = Dinov2Model(Dinov2Config(**TINY_VIT))
    else:
        net = _from_pretrained(Dinov2Model, "DINOv2", model, revision)
    return net.eval().to(device)


# --------------------------------------------------------------------------- CLIP (open_clip)


@functools.lru_cache(maxsize=2)
def load_clip(model: str, pretrained: str | None, device: str):
    """Return an open_clip CLIP model in eval mode.

    ``model`` is an open_clip architecture name (e.g. "ViT-B-16") with ``pretrained`` a tag
    ("openai") or a local weights file, or ``"tiny"`` for a 2-layer twin at 64 px, patch 8.
    """
    import open_clip

    if model == TINY:
        with _fork_seeded():
            net = open_clip.model.CLIP(
                embed_dim=32,
                vision_cfg=open_clip.model.CLIPVisionCfg(
                    image_size=64, layers=2, width=32, head_width=16, patch_size=8
                ),
                text_cfg=open_clip.model.CLIPTextCfg(
                    context_length=77, vocab_size=49408, width=32, heads=2, layers=2
                ),
            )
    else:
        try:
            net = open_clip.create_model(model, pretrained=pretrained, require_pretrained=True)
        except (OSError, RuntimeError, ValueError) as err:
            raise _missing("CLIP", f"{model}/{pretrained}", err) from None
    return net.eval().to(device)


# --------------------------------------------------------------------------- DINO / MAE (ViT)

DINO_DEFAULT = "facebook/dino-vitb8"
MAE_DEFAULT = "facebook/vit-mae-base"


@functools.lru_cache(maxsize=2)
def load_dino(model: str, revision: str | None, device: str):
    """Return a transformers ViTModel (DINO, self-supervised) in eval mode, no pooling layer.

    ``model``: hub id (default ViT-B/8 ``facebook/dino-vitb8``), local dir, or "tiny" (2 layers,
    32 dims, patch 8, 64 px).
    """
    from transformers import ViTConfig, ViTModel

    if model == TINY:
        with _fork_seeded():
            net = ViTModel(
                ViTConfig(**TINY_VIT),
                add_pooling_layer=False,
            )
    else:
        net = _from_pretrained(ViTModel, "DINO", model, revision, add_pooling_layer=False)
    return net.eval().to(device)


@functools.lru_cache(maxsize=2)
def load_mae(model: str, revision: str | None, device: str):
    """Return a transformers ViTMAEModel with ``mask_ratio=0`` (every patch kept) in eval mode.

    ``model``: hub id (default ViT-B/16 ``facebook/vit-mae-base``), local dir, or "tiny".
    """
    from transformers import ViTMAEConfig, ViTMAEModel

    if model == TINY:
        with _fork_seeded():
            net = ViTMAEModel(ViTMAEConfig(**TINY_VIT, mask_ratio=0.0))
    else:
        net = _from_pretrained(ViTMAEModel, "MAE", model, revision, mask_ratio=0.0)
    return net.eval().to(device)


# --------------------------------------------------------------------------- SAM

SAM_DEFAULT = "facebook/sam-vit-base"


@functools.lru_cache(maxsize=2)
def load_sam(model: str, revision: str | None, device: str):
    """Return a transformers SamModel in eval mode (called directly, not through the slow
    mask-generation pipeline). ``model``: hub id (default ViT-B ``facebook/sam-vit-base``),
    local dir, or "tiny" (64 px input, patch 8, 32 dims)."""
    from transformers import (
        SamConfig,
        SamMaskDecoderConfig,
        SamModel,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    if model == TINY:
        with _fork_seeded():
            net = SamModel(
                SamConfig(
                    vision_config=SamVisionConfig(
                        hidden_size=32,
                        output_channels=32,
                        num_hidden_layers=2,
                        num_attention_heads=2,
                        image_size=64,
                        patch_size=8,
                        window_size=4,
                        global_attn_indexes=(1,),
                        mlp_dim=64,
                        num_pos_feats=16,
                    ),
                    prompt_encoder_config=SamPromptEncoderConfig(
                        hidden_size=32, image_size=64, patch_size=8, mask_input_channels=4
                    ),
                    mask_decoder_config=SamMaskDecoderConfig(
                        hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
                    ),
                )
            )
    else:
        net = _from_pretrained(SamModel, "SAM", model, revision)
    return net.eval().to(device)
