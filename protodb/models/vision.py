"""Vision transformers through transformers: DINOv2, DINO, MAE and SAM by hub id or local path,
and their tiny twins (one tiny ViT config for DINOv2, DINO and MAE).
"""

from __future__ import annotations

import functools

from protodb.models.defaults import (
    DINO_DEFAULT,
    DINOV2_DEFAULT,
    MAE_DEFAULT,
    SAM_DEFAULT,
    SAM_REFER_DEFAULT,
)
from protodb.models.loading import TINY, fork_seeded, from_pretrained

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
        with fork_seeded():
            net = Dinov2Model(Dinov2Config(**TINY_VIT))
    else:
        net = from_pretrained(Dinov2Model, "DINOv2", model, revision)
    _check_default("dinov2", net, model, DINOV2_DEFAULT)
    return net.eval().to(device)


@functools.lru_cache(maxsize=2)
def load_dino(model: str, revision: str | None, device: str):
    """Return a transformers ViTModel (DINO, self-supervised) in eval mode, no pooling layer.

    ``model``: hub id (default ViT-B/8 ``facebook/dino-vitb8``), local dir, or "tiny" (2 layers,
    32 dims, patch 8, 64 px).
    """
    from transformers import ViTConfig, ViTModel

    if model == TINY:
        with fork_seeded():
            net = ViTModel(
                ViTConfig(**TINY_VIT),
                add_pooling_layer=False,
            )
    else:
        net = from_pretrained(ViTModel, "DINO", model, revision, add_pooling_layer=False)
    _check_default("dino", net, model, DINO_DEFAULT)
    return net.eval().to(device)


@functools.lru_cache(maxsize=2)
def load_mae(model: str, revision: str | None, device: str):
    """Return a transformers ViTMAEModel with ``mask_ratio=0`` (every patch kept) in eval mode.

    ``model``: hub id (default ViT-B/16 ``facebook/vit-mae-base``), local dir, or "tiny".
    """
    from transformers import ViTMAEConfig, ViTMAEModel

    if model == TINY:
        with fork_seeded():
            net = ViTMAEModel(ViTMAEConfig(**TINY_VIT, mask_ratio=0.0))
    else:
        net = from_pretrained(ViTMAEModel, "MAE", model, revision, mask_ratio=0.0)
    _check_default("mae", net, model, MAE_DEFAULT)
    return net.eval().to(device)


# --------------------------------------------------------------------------- SAM


@functools.lru_cache(maxsize=2)
def load_sam(model: str, revision: str | None, device: str):
    """Return a transformers SamModel in eval mode (called directly, not through the slow
    mask-generation pipeline). ``model``: hub id (the segmenters' default ViT-B
    ``facebook/sam-vit-base``; referring proposals: ViT-H ``facebook/sam-vit-huge``), local dir,
    or "tiny" (64 px input, patch 8, 32 dims)."""
    from transformers import (
        SamConfig,
        SamMaskDecoderConfig,
        SamModel,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    if model == TINY:
        with fork_seeded():
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
        net = from_pretrained(SamModel, "SAM", model, revision)
    _check_default("sam", net, model, SAM_DEFAULT)
    _check_default("sam-vit-h", net, model, SAM_REFER_DEFAULT)
    return net.eval().to(device)


def _check_default(kind: str, net, model: str, default: str) -> None:
    """The architecture facts of a default model (see protodb.models.architectures)."""
    if model == default:
        from protodb.models.architectures import check_architecture

        check_architecture(kind, net, model)
