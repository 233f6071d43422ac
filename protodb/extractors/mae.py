"""Extractor ``mae``: MAE ViT-B/16 (transformers ``ViTMAEModel``, mask ratio 0, patches in
order), keys of the last block (REFERENCE 1.4).
"""

from __future__ import annotations

from protodb.extractors.base import EXTRACTORS, Extractor, ExtractorConfig
from protodb.extractors.vit import block_index, key_hook, key_proj, tokens_to_grid


@EXTRACTORS.register("mae")
class MaeExtractor(Extractor):
    """MAE ViT-B/16 (transformers ViTMAEModel, mask ratio 0, patches in order): keys of the last
    block, CLS dropped. 768 dims, stride 16. Tiny: 32 dims, stride 8."""

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.models.vision import load_mae

        self.net = load_mae(config.model, config.revision, device)
        self.patch = int(self.net.config.patch_size)
        self.dim = int(self.net.config.hidden_size)
        layers = self.net.encoder.layer if hasattr(self.net, "encoder") else self.net.layers
        self.block = layers[block_index(config.layer, len(layers))]

    def _forward(self, x):
        import torch

        b, _, hh, ww = x.shape
        n = (hh // self.patch) * (ww // self.patch)
        # ascending noise: the "shuffle" is the identity, so tokens stay in raster order
        noise = torch.arange(n, dtype=torch.float32, device=x.device).expand(b, n)
        keys: list = []
        handle = key_hook(key_proj(self.block), keys)
        try:
            self.net(pixel_values=x, noise=noise, interpolate_pos_encoding=True)
        finally:
            handle.remove()
        return tokens_to_grid(keys[0][:, 1:], hh, ww, self.patch)
