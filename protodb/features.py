"""Dense feature extractors, by name.

An extractor maps RGB images to a dense feature grid: ``extract(images)`` takes uint8
[B, H, W, 3] and returns float32 [B, D, h, w] (unnormalised; features are L2-normalised only at
matching time). Its :class:`ExtractorConfig` names everything that changes a feature; the
extractor id is a hash of it and keys the prototype sets made with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from protodb.errors import ProtodbError
from protodb.models import DINOV2_DEFAULT, TINY, TINY_VERSION
from protodb.registry import PluginConfig, Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ExtractorConfig(PluginConfig):
    """name: registry name; model: hub id, local path or "tiny"; layer: which output;
    input_size: short side in pixels (rounded to the patch grid); store_dtype: how prototype
    vectors are stored ("float16" or "float32")."""

    name: str = "dinov2"
    model: str = DINOV2_DEFAULT
    revision: str | None = None
    layer: str = "last_hidden_state"
    input_size: int = 448
    store_dtype: str = "float16"
    weights: str | None = None


class Extractor:
    """Base class. Subclasses set ``patch`` and ``dim`` and implement ``_forward``."""

    patch: int
    dim: int

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        self.config = config
        self.device = device

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Input size (H', W') for an image: short side = input_size, both multiples of patch."""
        scale = self.config.input_size / min(height, width)
        p = self.patch
        return (max(p, round(height * scale / p) * p), max(p, round(width * scale / p) * p))

    def preprocess(self, images: np.ndarray):
        """uint8 [B, H, W, 3] -> float32 tensor [B, 3, H', W'] resized and normalised."""
        import torch
        import torch.nn.functional as F

        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 [B, H, W, 3], got {images.dtype} {images.shape}")
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        size = self.grid_size(images.shape[1], images.shape[2])
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    def extract(self, images: np.ndarray):
        """uint8 [B, H, W, 3] -> float32 tensor [B, D, h, w] on the CPU."""
        import torch

        with torch.inference_mode():
            return self._forward(self.preprocess(images)).float().cpu()

    def _forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError


EXTRACTORS: Registry[type[Extractor]] = Registry("extractor")


@EXTRACTORS.register("dinov2")
class Dinov2Extractor(Extractor):
    """DINOv2 (transformers Dinov2Model): last-layer patch tokens, CLS and registers dropped.

    ViT-B/14 by default: 768 dims, stride 14. The tiny twin: 32 dims, stride 8.
    """

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.models import load_dinov2

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


def default_extractor_config(profile: str, name: str = "dinov2", **overrides) -> ExtractorConfig:
    """The config of extractor ``name`` for a profile (tiny: 64 px input, tiny weights)."""
    EXTRACTORS.get(name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if profile == "world" or name == "world":  # the offline test world (protodb.world)
        from protodb.world import world_extractor_config

        if profile != "world" or name != "world":
            raise ProtodbError(
                f"extractor {name!r} with profile {profile!r}: the test world's extractor "
                "'world' and profile 'world' go together; use --profile world (no --extractor)"
            )
        return world_extractor_config(**overrides)
    if profile == "tiny":
        base = ExtractorConfig(name=name, model=TINY, weights=TINY_VERSION, input_size=64)
    else:
        base = ExtractorConfig(name=name)
    return replace(base, **overrides)


def default_extractor_names(profile: str) -> list[str]:
    """The extractors ``add`` uses when none is named: ["world"] on the world profile, else
    ["dinov2"]."""
    return ["world"] if profile == "world" else ["dinov2"]


_CACHE: dict[tuple[str, str], Extractor] = {}


def get_extractor(config: ExtractorConfig, device: str = "cpu") -> Extractor:
    """Build (or reuse, per process) the extractor for ``config`` on ``device``."""
    key = (config.id, device)
    if key not in _CACHE:
        cls = EXTRACTORS.get(config.name)
        _CACHE[key] = cls(config, device)
    return _CACHE[key]
