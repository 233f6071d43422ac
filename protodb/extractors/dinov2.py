"""Extractor ``dinov2``: DINOv2 (transformers ``Dinov2Model``), last-layer patch tokens."""

from __future__ import annotations

from protodb.extractors.base import EXTRACTORS, Extractor, ExtractorConfig


@EXTRACTORS.register("dinov2")
class Dinov2Extractor(Extractor):
    """DINOv2 (transformers Dinov2Model): last-layer patch tokens, CLS and registers dropped.

    ViT-B/14 by default: 768 dims, stride 14. The tiny twin: 32 dims, stride 8.
    """

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.models.vision import load_dinov2

        self.net = load_dinov2(config.model, config.revision, device)
        self.patch = int(self.net.config.patch_size)
        self.dim = int(self.net.config.hidden_size)
        self.skip = 1 + int(getattr(self.net.config, "num_register_tokens", 0) or 0)

    def _forward(self, x):
        out = self.net(pixel_values=x)
        tokens = out.last_hidden_state[:, self.skip :]
        b, _, hh, ww = x.shape
        h, w = hh // self.patch, ww // self.patch
        return tokens.reshape(b, h, w, -1).permute(0, 3, 1, 2)
