"""Scores of referring proposals and their fusion (REFERENCE 2).

- generative: mean attention inside the mask minus mean attention outside (+ 1e-6 in each
  denominator);
- position prior: when the expression says "left" (checked first) or "right", the image is
  multiplied by a ramp over x (1 -> 0 over the left two thirds, 0 on the right third; mirrored
  for "right") before CLIP sees it; protodb also reports each mask's mean ramp value as a
  ``position`` score (weight 0 by default: in the reference the prior acts through CLIP only);
- hard discriminative: CLIP image embedding of the mask's bounding-box crop with the pixels
  outside the mask black, resized to CLIP's square input, cosine with the expression's text
  embedding;
- soft discriminative: CLIP on the whole image (resized to its square input) with the mask as
  an attention mask on the ViT's tokens: the class token attends only to itself and to the patch
  tokens the mask covers (>= half of a patch; at least the most covered one), in every block;
  cosine with the normalised mean of the expression's and the subject's text embeddings;
- bank (protodb's bank-aware mode): mean of the class's prototype score inside minus outside;
- fusion: 0.7 hard + 0.3 soft + 0.05 generative (+ position and bank weights, 0 and 1 by
  default), a missing score counting 0; the argmax is the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

EPS = 1e-6


@dataclass(frozen=True)
class ScoreWeights:
    """The weights of the fused score (REFERENCE 2: hard 0.7, soft 0.3, generative 0.05)."""

    hard: float = 0.7
    soft: float = 0.3
    generative: float = 0.05
    position: float = 0.0
    bank: float = 1.0


def inside_minus_outside(value: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """float [H, W] and bool [M, H, W] -> float32 [M]: mean of ``value`` inside each mask minus
    its mean outside (1e-6 added to both pixel counts)."""
    v = np.asarray(value, np.float64).ravel()
    m = masks.reshape(len(masks), -1).astype(np.float64)
    inside = (m @ v) / (m.sum(1) + EPS)
    outside = ((1.0 - m) @ v) / ((1.0 - m).sum(1) + EPS)
    return (inside - outside).astype(np.float32)


def generative_score(attention: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The generative score of every mask (float32 [M]): attention inside minus outside."""
    return inside_minus_outside(attention, masks)


def position_word(expression: str) -> str | None:
    """ "left" if the expression has the word left (leftmost, ...), else "right" likewise, else
    None (top / bottom were tried by the reference and dropped)."""
    words = re.findall(r"[a-z]+", expression.lower())
    if any(w.startswith("left") for w in words):
        return "left"
    if any(w.startswith("right") for w in words):
        return "right"
    return None


def position_ramp(width: int, side: str | None) -> np.ndarray:
    """float32 [W]: for "left", linspace(1, 0) over the left int(2W/3) columns, 0 after; for
    "right" the mirror image; ones for None."""
    if side is None:
        return np.ones(width, np.float32)
    k = int(width * 2 / 3)
    ramp = np.zeros(width, np.float32)
    ramp[:k] = np.linspace(1.0, 0.0, k, dtype=np.float32)
    return ramp if side == "left" else ramp[::-1].copy()


def position_score(masks: np.ndarray, side: str | None) -> np.ndarray:
    """float32 [M]: each mask's mean ramp value (1 for every mask when ``side`` is None)."""
    ramp = position_ramp(masks.shape[2], side)
    area = masks.reshape(len(masks), -1).sum(1)
    along = masks.sum(1) @ ramp
    return (along / np.maximum(area, 1)).astype(np.float32)


def apply_ramp(image: np.ndarray, side: str | None) -> np.ndarray:
    """The image multiplied by the position ramp over x (uint8 [H, W, 3] -> same)."""
    if side is None:
        return image
    ramp = position_ramp(image.shape[1], side)[None, :, None]
    return np.round(image.astype(np.float32) * ramp).astype(np.uint8)


def fuse(scores: dict[str, np.ndarray | None], weights: ScoreWeights) -> np.ndarray:
    """float32 [M]: sum over the named scores of weight x score; None (not computed) adds 0."""
    total = None
    for name, value in scores.items():
        if value is None:
            continue
        term = getattr(weights, name) * np.asarray(value, np.float32)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no score to fuse")
    return total.astype(np.float32)


def choose(total: np.ndarray) -> int:
    """The index of the best proposal (the first of equals)."""
    return int(np.argmax(total))


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom / right exclusive; the whole image for no pixel."""
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return 0, mask.shape[0], 0, mask.shape[1]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


class ClipScorer:
    """Hard and soft discriminative scores with an open_clip model (default ViT-B/16, OpenAI
    weights; ``tiny``: the random-weight twin, whose scores are noise)."""

    def __init__(self, model: str, device: str = "cpu", net=None) -> None:
        import open_clip

        from protodb.models.openclip import load_clip

        arch, _, pretrained = model.partition("/")
        self.net = net if net is not None else load_clip(arch, pretrained or None, device)
        self.device = device
        self.tokenizer = open_clip.get_tokenizer("ViT-B-16")
        size = self.net.visual.image_size
        self.size = int(size[0] if isinstance(size, tuple | list) else size)
        self.patch = int(self.net.visual.conv1.kernel_size[0])

    def text(self, texts: list[str]):
        """L2-normalised text embeddings, float [N, D]."""
        import torch

        with torch.inference_mode():
            e = self.net.encode_text(self.tokenizer(texts).to(self.device)).float()
        return e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def _pixels(self, images: list[np.ndarray]):
        import torch
        import torch.nn.functional as F

        from protodb.extractors.base import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

        out = []
        for im in images:
            x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float() / 255.0
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bicubic", align_corners=False, antialias=True
            )
            out.append(x.clamp(0, 1))
        x = torch.cat(out)
        mean = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    def hard(self, image: np.ndarray, masks: np.ndarray, text) -> np.ndarray:
        """float32 [M]: cosine of each masked bounding-box crop with ``text`` (float [D])."""
        import torch

        crops = []
        for m in masks:
            t, b, left, r = bbox(m)
            crops.append((image * m[..., None])[t:b, left:r])
        with torch.inference_mode():
            e = self.net.encode_image(self._pixels(crops)).float()
        e = e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (e @ text).cpu().numpy().astype(np.float32)

    def token_masks(self, masks: np.ndarray) -> np.ndarray:
        """bool [M, g*g]: the patch tokens each mask covers (>= half a patch, at least its most
        covered patch) on CLIP's g x g grid."""
        import torch
        import torch.nn.functional as F

        g = self.size // self.patch
        m = torch.from_numpy(masks.astype(np.float32))[:, None]
        cover = F.interpolate(m, size=(g, g), mode="area")[:, 0].reshape(len(masks), -1)
        keep = cover >= 0.5
        best = cover.argmax(1)
        keep[torch.arange(len(masks)), best] = True
        return keep.numpy()

    def soft(self, image: np.ndarray, masks: np.ndarray, text) -> np.ndarray:
        """float32 [M]: cosine with ``text`` of the class token of CLIP on the whole image, the
        class token attending only to itself and the mask's patch tokens."""
        import torch

        v = self.net.visual
        tokens = torch.from_numpy(self.token_masks(masks))
        m, n = tokens.shape
        allowed = torch.ones((m, 1 + n, 1 + n), dtype=torch.bool)
        allowed[:, 0, 1:] = tokens
        bias = torch.zeros((m, 1 + n, 1 + n))
        bias[~allowed] = float("-inf")
        heads = v.transformer.resblocks[0].attn.num_heads
        bias = bias.repeat_interleave(heads, dim=0).to(self.device)
        with torch.inference_mode():
            x = v._embeds(self._pixels([image]).expand(m, -1, -1, -1))
            x = v.transformer(x, attn_mask=bias)
            pooled, _ = v._pool(x)
            if v.proj is not None:
                pooled = pooled @ v.proj
        e = pooled.float()
        e = e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (e @ text).cpu().numpy().astype(np.float32)
