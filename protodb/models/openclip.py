"""CLIP through open_clip (the clip extractor and the pre-filter), and its tiny twin.

OpenAI's CLIP weights were trained with QuickGELU, and open_clip's plain ``ViT-B-16`` builds
``nn.GELU``; the default is therefore ``ViT-B-16-quickgelu``, which reads the same cached
weights. A model is built exactly as named, so sets made before this default changed (extractor
model ``ViT-B-16/openai``, GELU) keep being queried as they were built; ``ls`` / ``show`` flag
them (:func:`protodb.extractors.clip.ClipExtractor.known_issue`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from protodb.models.defaults import CLIP_DEFAULT, CLIP_DEFAULT_PRETRAINED
from protodb.models.loading import TINY, fork_seeded, missing_model


def paired_clip(extractor_models: Iterable[str]) -> tuple[str, str | None]:
    """The pre-filter's open_clip (model, pretrained) for prototypes made with these extractor
    models: the tiny twin when any is a tiny twin (random features; and no download), else the
    paper's ViT-B/16 with OpenAI's weights."""
    if any(m == TINY for m in extractor_models):
        return TINY, None
    return CLIP_DEFAULT, CLIP_DEFAULT_PRETRAINED


@functools.lru_cache(maxsize=2)
def load_clip(model: str, pretrained: str | None, device: str):
    """Return an open_clip CLIP model in eval mode.

    ``model`` is an open_clip architecture name (e.g. "ViT-B-16") with ``pretrained`` a tag
    ("openai") or a local weights file, or ``"tiny"`` for a 2-layer twin at 64 px, patch 8.
    """
    import open_clip

    if model == TINY:
        with fork_seeded():
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
            raise missing_model("CLIP", f"{model}/{pretrained}", err) from None
        if (model, pretrained) == (CLIP_DEFAULT, CLIP_DEFAULT_PRETRAINED):
            from protodb.models.architectures import check_architecture

            check_architecture("clip", net, f"{model}/{pretrained}")
    return net.eval().to(device)
