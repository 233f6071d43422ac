"""Extractor ``world`` and the world profile's extractor config: local colour and texture
statistics, for which nearest-prototype matching means something (no learned weights).
"""

from __future__ import annotations

from protodb.extractors.base import EXTRACTORS, Extractor, ExtractorConfig
from protodb.world.classes import WORLD, WORLD_VERSION


def world_extractor_config(**overrides) -> ExtractorConfig:
    """The world profile's extractor config: stride 4, short side 64, float32 storage."""
    base = dict(
        name=WORLD, model=WORLD, layer="colour+texture", input_size=64, store_dtype="float32"
    )
    base.update({k: v for k, v in overrides.items() if v is not None})
    base["weights"] = WORLD_VERSION
    return ExtractorConfig(**base)


@EXTRACTORS.register(WORLD)
class WorldExtractor(Extractor):
    """TEST WORLD extractor: local colour and texture statistics (no learned weights).

    Per cell of a stride-4 grid, over an 8x8 neighbourhood: three opponent colour means
    (R-G, (R+G)/2-B, luminance-0.45), their summed local standard deviation, mean absolute
    horizontal / vertical / diagonal luminance differences, and a constant 0.25 (so unrelated
    regions still score a little above zero, as with real features). 8 dims, float32.
    """

    patch = 4
    dim = 8

    def _forward(self, x):
        import torch
        import torch.nn.functional as F

        mean = torch.tensor((0.485, 0.456, 0.406), device=x.device).view(1, 3, 1, 1)
        std = torch.tensor((0.229, 0.224, 0.225), device=x.device).view(1, 3, 1, 1)
        rgb = x * std + mean  # back to [0, 1]
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        lum = (r + g + b) / 3
        opp = torch.cat([r - g, (r + g) / 2 - b, lum - 0.45], 1)

        def pool(t):
            return F.avg_pool2d(t, 8, stride=4, padding=2, count_include_pad=False)

        m = pool(opp)
        sd = (pool(opp**2) - m**2).clamp_min(0).sqrt().sum(1, keepdim=True)
        dx = F.pad((lum[..., :, 1:] - lum[..., :, :-1]).abs(), (0, 1, 0, 0), mode="replicate")
        dy = F.pad((lum[..., 1:, :] - lum[..., :-1, :]).abs(), (0, 0, 0, 1), mode="replicate")
        dd = F.pad((lum[..., 1:, 1:] - lum[..., :-1, :-1]).abs(), (0, 1, 0, 1), mode="replicate")
        tex = pool(torch.cat([dx, dy, dd], 1))
        const = torch.full_like(sd, 0.25)
        return torch.cat([2 * m, sd, 3 * tex, const], 1)
