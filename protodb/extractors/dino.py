"""Extractor ``dino``: DINO ViT-B/8 (transformers ``ViTModel``), keys of the last block, CLS
dropped, 768 dims, stride 8 (REFERENCE 1.4).
"""

from __future__ import annotations

from protodb.extractors.base import EXTRACTORS, Extractor, ExtractorConfig
from protodb.extractors.vit import block_index, key_hook, key_proj, tokens_to_grid


@EXTRACTORS.register("dino")
class DinoExtractor(Extractor):
    """DINO ViT-B/8 (transformers ViTModel): keys of a block (default the last), CLS dropped.

    768 dims, stride 8; position embeddings interpolated for the input size. Tiny: 32 dims.
    """

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.models.vision import load_dino

        self.net = load_dino(config.model, config.revision, device)
        self.patch = int(self.net.config.patch_size)
        self.dim = int(self.net.config.hidden_size)
        layers = self.net.encoder.layer if hasattr(self.net, "encoder") else self.net.layers
        self.block = layers[block_index(config.layer, len(layers))]

    def _forward(self, x):
        keys: list = []
        handle = key_hook(key_proj(self.block), keys)
        try:
            self.net(pixel_values=x, interpolate_pos_encoding=True)
        finally:
            handle.remove()
        return tokens_to_grid(keys[0][:, 1:], x.shape[2], x.shape[3], self.patch)
