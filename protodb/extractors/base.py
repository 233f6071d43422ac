"""Dense feature extractors: the contract, the config and the registry.

An extractor maps RGB images to a dense feature grid: ``extract(images)`` takes uint8
[B, H, W, 3] and returns float32 [B, D, h, w] (unnormalised; features are L2-normalised only at
matching time). Its :class:`ExtractorConfig` names everything that changes a feature; the
extractor id is a hash of it and keys the prototype sets made with it. Each extractor lives in
its own module of this package and registers itself by name; :mod:`~protodb.extractors.factory`
builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protodb.models.defaults import DINOV2_DEFAULT
from protodb.registry import PluginConfig, Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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

    @property
    def of_test_world(self) -> bool:
        """Whether this extractor is the offline test world's (its procedural extractor, or a
        model trained on it, ``protodb:world...``): no CLIP pairs with it, reports say so."""
        return self.name == "world" or self.model.startswith("protodb:world")


class Extractor:
    """Base class. Subclasses set ``patch`` and ``dim`` and implement ``_forward``; ``mean`` and
    ``std`` are the per-channel input normalisation (pixels in [0, 1])."""

    patch: int
    dim: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

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
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    def extract(self, images: np.ndarray):
        """uint8 [B, H, W, 3] -> float32 tensor [B, D, h, w] on the CPU."""
        import torch

        with torch.inference_mode():
            return self._forward(self.preprocess(images)).float().cpu()

    def _forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def known_issue(cls, config: ExtractorConfig) -> str | None:
        """Why features made with ``config`` are known to be wrong (sets built before a fix),
        or None. Such sets stay readable, are flagged by ``ls`` / ``show``, and never share a
        vocabulary with sets of the same extractor built after the fix."""
        return None


EXTRACTORS: Registry[type[Extractor]] = Registry("extractor")
for _name in ("dinov2", "dino", "mae", "clip", "sd"):  # one module each, imported when used
    EXTRACTORS.register_lazy(_name, f"protodb.extractors.{_name}")
EXTRACTORS.register_lazy("world", "protodb.world.extractor")


def known_issue(config: ExtractorConfig) -> str | None:
    """:meth:`Extractor.known_issue` of ``config``'s extractor (None for an unknown name)."""
    if config.name not in EXTRACTORS:
        return None
    return EXTRACTORS.get(config.name).known_issue(config)
