"""Extractor ``clip``: open_clip ViT-B/16, keys of block 10 after ``ln_1``, CLS dropped, 768 dims,
stride 16, positional embedding interpolated for larger inputs (REFERENCE 1.4).
"""

from __future__ import annotations

from protodb.extractors.base import (
    EXTRACTORS,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    Extractor,
    ExtractorConfig,
)
from protodb.extractors.vit import block_index


@EXTRACTORS.register("clip")
class ClipExtractor(Extractor):
    """CLIP ViT-B/16, OpenAI weights (open_clip): keys of block 10 (the second-to-last), taken
    from the attention input after ln_1, CLS dropped; the positional embedding is bicubically
    interpolated to the input's patch grid. 768 dims, stride 16. Tiny: 32 dims, stride 8.

    ``model`` is "ARCH/PRETRAINED" (e.g. "ViT-B-16-quickgelu/openai"; PRETRAINED may be a local
    file).
    """

    mean = OPENAI_CLIP_MEAN
    std = OPENAI_CLIP_STD

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.models.openclip import load_clip

        arch, _, pretrained = config.model.partition("/")
        net = load_clip(arch, pretrained or None, device)
        self.visual = net.visual
        self.patch = int(self.visual.conv1.kernel_size[0])
        self.dim = int(self.visual.conv1.out_channels)
        blocks = self.visual.transformer.resblocks
        self.index = block_index(config.layer, len(blocks))

    @classmethod
    def known_issue(cls, config: ExtractorConfig) -> str | None:
        """OpenAI weights in an architecture built with nn.GELU: the default before QuickGELU
        (open_clip's ``ViT-B-16`` vs ``ViT-B-16-quickgelu``)."""
        arch, _, pretrained = config.model.partition("/")
        if pretrained == "openai" and not arch.endswith("-quickgelu"):
            return (
                f"built with GELU ({arch}) before the QuickGELU fix; OpenAI's CLIP weights need "
                "QuickGELU: re-add with --extractor clip to rebuild"
            )
        return None

    def _positional(self, gh: int, gw: int):
        import torch
        import torch.nn.functional as F

        pos = self.visual.positional_embedding  # [1 + g*g, D]
        cls, grid = pos[:1], pos[1:]
        g = int(round(grid.shape[0] ** 0.5))
        if (gh, gw) == (g, g):
            return pos
        grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)])

    def _forward(self, x):
        import torch

        v = self.visual
        t = v.conv1(x)  # [B, D, gh, gw]
        b, d, gh, gw = t.shape
        t = t.reshape(b, d, gh * gw).permute(0, 2, 1)
        cls = v.class_embedding.to(t.dtype).expand(b, 1, d)
        t = torch.cat([cls, t], dim=1) + self._positional(gh, gw).to(t.dtype)
        t = v.ln_pre(v.patch_dropout(t))
        batch_first = getattr(v.transformer, "batch_first", True)
        if not batch_first:
            t = t.transpose(0, 1)
        for block in v.transformer.resblocks[: self.index]:
            t = block(t)
        if not batch_first:
            t = t.transpose(0, 1)
        block = v.transformer.resblocks[self.index]
        attn = block.attn
        w = attn.in_proj_weight[d : 2 * d]
        bias = attn.in_proj_bias[d : 2 * d] if attn.in_proj_bias is not None else None
        keys = torch.nn.functional.linear(block.ln_1(t), w, bias)
        return keys[:, 1:].reshape(b, gh, gw, d).permute(0, 3, 1, 2)
