"""The architecture facts that the published weights of each real-profile model require.

A library upgrade can change a default under protodb's feet: open_clip's ``ViT-B-16`` builds
``nn.GELU`` while OpenAI's weights were trained with QuickGELU, and such a model loads its
weights without complaint and computes wrong features. Each real-profile model therefore has
here the facts its weights need (activation, patch size, width, layer count, positional
embeddings, cross-attention width, ...), read from a built module by :func:`facts`.

- The loaders check a default model's facts when they load it (:func:`check_architecture`).
- :func:`build` makes each model from its shipped architecture config with no weights, the way
  its loader builds it (open_clip's own config for CLIP, ``schemas/models/*.json`` for the hub
  models), on the ``meta`` device: the tests check the same facts with nothing downloaded, and
  benchmarks at the paper's sizes start from these configs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from protodb.errors import ProtodbError
from protodb.models.defaults import (
    CLIP_DEFAULT,
    DINO_DEFAULT,
    DINOV2_DEFAULT,
    MAE_DEFAULT,
    SAM_DEFAULT,
    SAM_REFER_DEFAULT,
    SD_DEFAULT,
)


@dataclass(frozen=True)
class Architecture:
    """One real-profile model: label, the id it is loaded by, its shipped config (a file in
    ``schemas/models``; None where the library ships it) and the facts its weights require."""

    label: str
    model: str
    config: str | None
    expected: dict[str, Any]


def _arch() -> dict[str, Architecture]:
    vit_b = {"width": 768, "layers": 12}
    return {
        "sd-unet": Architecture(
            "Stable Diffusion UNet",
            SD_DEFAULT,
            "sd15-unet.json",
            {
                "cross_attention_dim": 768,
                "attn2_layers": 16,
                "in_channels": 4,
                "sample_size": 64,
                "block_out_channels": [320, 640, 1280, 1280],
            },
        ),
        "sd-text-encoder": Architecture(
            "Stable Diffusion text encoder",
            SD_DEFAULT,
            "sd15-text-encoder.json",
            {"activation": "quick_gelu", "width": 768, "layers": 12, "positions": 77},
        ),
        "sd-vae": Architecture(
            "Stable Diffusion VAE",
            SD_DEFAULT,
            "sd15-vae.json",
            {"latent_channels": 4, "downsampling": 8, "scaling_factor": 0.18215},
        ),
        "clip": Architecture(
            "CLIP",
            f"{CLIP_DEFAULT}/openai",
            None,
            {
                "activation": "QuickGELU",
                "text_activation": "QuickGELU",
                "patch": 16,
                **vit_b,
                "positions": 197,
            },
        ),
        "dino": Architecture(
            "DINO", DINO_DEFAULT, "dino-vitb8.json", {"patch": 8, **vit_b, "positions": 785}
        ),
        "dinov2": Architecture(
            "DINOv2", DINOV2_DEFAULT, "dinov2-base.json", {"patch": 14, **vit_b, "positions": 1370}
        ),
        "mae": Architecture(
            "MAE", MAE_DEFAULT, "vit-mae-base.json", {"patch": 16, **vit_b, "positions": 197}
        ),
        "sam": Architecture(
            "SAM",
            SAM_DEFAULT,
            "sam-vit-base.json",
            {"patch": 16, **vit_b, "heads": 12, "global_attn": [2, 5, 8, 11], "image_size": 1024},
        ),
        "sam-vit-h": Architecture(
            "SAM ViT-H",
            SAM_REFER_DEFAULT,
            "sam-vit-huge.json",
            {
                "patch": 16,
                "width": 1280,
                "layers": 32,
                "heads": 16,
                "global_attn": [7, 15, 23, 31],
                "image_size": 1024,
            },
        ),
    }


ARCHITECTURES: dict[str, Architecture] = {}


def architectures() -> dict[str, Architecture]:
    """Every real-profile model, by kind (sd-unet, sd-text-encoder, sd-vae, clip, dino, dinov2,
    mae, sam, sam-vit-h)."""
    if not ARCHITECTURES:
        ARCHITECTURES.update(_arch())
    return ARCHITECTURES


@cache
def shipped_config(name: str) -> dict[str, Any]:
    """A shipped architecture config (``schemas/models/<name>``), parsed."""
    text = resources.files("protodb.schemas").joinpath(f"models/{name}").read_text("utf-8")
    return json.loads(text)


def build(kind: str):
    """The model of ``kind`` built from its shipped architecture config, without weights, on
    the ``meta`` device (CLIP: on the CPU, from open_clip's config, as ``load_clip`` builds it).
    """
    import torch

    if kind not in architectures():
        raise ProtodbError(f"unknown architecture {kind!r}; known: {', '.join(architectures())}")
    arch = architectures()[kind]
    if kind == "clip":
        import open_clip

        return open_clip.create_model(arch.model.split("/")[0], pretrained=None)
    cfg = dict(shipped_config(arch.config))
    with torch.device("meta"):
        if kind == "sd-unet":
            from diffusers import UNet2DConditionModel

            return UNet2DConditionModel.from_config(cfg)
        if kind == "sd-vae":
            from diffusers import AutoencoderKL

            return AutoencoderKL.from_config(cfg)
        cfg.pop("model_type")
        if kind == "sd-text-encoder":
            from transformers import CLIPTextConfig, CLIPTextModel

            return CLIPTextModel(CLIPTextConfig(**cfg))
        if kind == "dino":
            from transformers import ViTConfig, ViTModel

            return ViTModel(ViTConfig(**cfg), add_pooling_layer=False)
        if kind == "dinov2":
            from transformers import Dinov2Config, Dinov2Model

            return Dinov2Model(Dinov2Config(**cfg))
        if kind == "mae":
            from transformers import ViTMAEConfig, ViTMAEModel

            return ViTMAEModel(ViTMAEConfig(**cfg))
        if kind in ("sam", "sam-vit-h"):
            from transformers import SamConfig, SamModel

            return SamModel(SamConfig(**cfg))
    raise AssertionError(f"no builder for {kind!r}")  # every kind above has one


def _count(module, pattern: str) -> int:
    """How many submodules have a name matching ``pattern`` (whole name)."""
    import re

    return sum(1 for n, _ in module.named_modules() if re.fullmatch(pattern, n))


def _vit_facts(m) -> dict[str, Any]:
    """Patch, width, transformer layers (their module path differs across transformers
    versions and ViT families) and positional-embedding rows of a transformers ViT."""
    c = m.config
    return {
        "patch": int(c.patch_size),
        "width": int(c.hidden_size),
        "layers": _count(m, r"(encoder\.layer|layers)\.\d+"),
        "positions": int(m.embeddings.position_embeddings.shape[1]),
    }


def _facts(kind: str) -> Callable[[Any], dict[str, Any]]:
    def unet(m):
        attn2 = [n for n, _ in m.named_modules() if n.endswith("attn2")]
        c = m.config
        return {
            "cross_attention_dim": c.cross_attention_dim,
            "attn2_layers": len(attn2),
            "in_channels": c.in_channels,
            "sample_size": c.sample_size,
            "block_out_channels": list(c.block_out_channels),
        }

    def text(m):
        c = m.config
        return {
            "activation": c.hidden_act,
            "width": c.hidden_size,
            "layers": _count(m, r"(.*\.)?encoder\.layers\.\d+"),
            "positions": c.max_position_embeddings,
        }

    def vae(m):
        c = m.config
        return {
            "latent_channels": c.latent_channels,
            "downsampling": 2 ** (len(c.block_out_channels) - 1),
            "scaling_factor": c.scaling_factor,
        }

    def clip(m):
        v = m.visual
        return {
            "activation": type(v.transformer.resblocks[0].mlp.gelu).__name__,
            "text_activation": type(m.transformer.resblocks[0].mlp.gelu).__name__,
            "patch": int(v.conv1.kernel_size[0]),
            "width": int(v.conv1.out_channels),
            "layers": len(v.transformer.resblocks),
            "positions": int(v.positional_embedding.shape[0]),
        }

    def sam(m):
        c = m.config.vision_config
        return {
            "patch": c.patch_size,
            "width": c.hidden_size,
            "layers": _count(m, r"(.*\.)?vision_encoder\.layers\.\d+"),
            "heads": c.num_attention_heads,
            "global_attn": list(c.global_attn_indexes),
            "image_size": c.image_size,
        }

    return {
        "sd-unet": unet,
        "sd-text-encoder": text,
        "sd-vae": vae,
        "clip": clip,
        "dino": _vit_facts,
        "dinov2": _vit_facts,
        "mae": _vit_facts,
        "sam": sam,
        "sam-vit-h": sam,
    }[kind]


def facts(kind: str, module) -> dict[str, Any]:
    """The architecture facts of a built ``module`` of ``kind`` (the keys of its expected
    facts)."""
    return _facts(kind)(module)


def mismatches(kind: str, module) -> dict[str, tuple[Any, Any]]:
    """fact -> (found, expected) for every fact of ``module`` that its weights do not allow."""
    found = facts(kind, module)
    return {
        k: (found.get(k), v) for k, v in architectures()[kind].expected.items() if found.get(k) != v
    }


def check_architecture(kind: str, module, model: str) -> None:
    """Raise ProtodbError naming every fact of ``module`` (loaded as ``model``) that differs
    from what the published weights of the default ``kind`` model were trained with."""
    bad = mismatches(kind, module)
    if bad:
        what = "; ".join(f"{k} is {f!r}, its weights need {e!r}" for k, (f, e) in bad.items())
        raise ProtodbError(
            f"{architectures()[kind].label} {model!r} was built with another architecture than "
            f"its weights: {what}. An installed library changed a default; pin the versions "
            "protodb was tested with (pip install -e .) and report it"
        )
