"""Segmentation of target images with a vocabulary, and the files it writes.

For each extractor of the vocabulary: features of the image (short side at the extractor's
input size), per-label scores by :func:`protodb.match.match`, bilinearly upsampled to the image;
scores are averaged over extractors, then non-positive scores are zeroed and the argmax taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protodb.query import QueryConfig
from protodb.vocab import ExtractorPrototypes, Vocabulary


@dataclass
class SegmentResult:
    """labels: uint8 [H, W] (0 = background, i = vocabulary class i); scores: float32
    [1 + C, H, W] in [-1, 1] (averaged over extractors); winners: extractor id -> int32 [H, W],
    the prototype row (of that extractor's assembled prototypes) behind the winning label."""

    vocab: str
    classes: list[str]
    labels: np.ndarray
    scores: np.ndarray
    winners: dict[str, np.ndarray] = field(default_factory=dict)

    def areas(self) -> dict[str, float]:
        """Fraction of pixels per label name (background included), labels present only."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.classes) + 1)
        names = ["background", *self.classes]
        total = self.labels.size
        return {names[i]: round(float(c) / total, 6) for i, c in enumerate(counts) if c}


def select_rows(p: ExtractorPrototypes, config: QueryConfig) -> ExtractorPrototypes:
    """The rows of ``p`` that ``config`` uses: its prototype levels, and bg rows only when
    ``config.background``."""
    keep = [
        i
        for i, r in enumerate(p.rows)
        if r["level"] in config.levels and (config.background or r["polarity"] != "bg")
    ]
    if len(keep) == len(p.rows):
        return p
    return ExtractorPrototypes(
        p.extractor, p.vectors[keep], p.owner[keep], [p.rows[i] for i in keep]
    )


class Segmenter:
    """Segments images with an assembled vocabulary (prototypes kept as device tensors)."""

    def __init__(
        self,
        vocab: Vocabulary,
        prototypes: list[ExtractorPrototypes],
        device: str = "cpu",
        config: QueryConfig | None = None,
    ):
        import torch

        from protodb.features import get_extractor

        self.vocab = vocab
        self.device = device
        self.config = config or QueryConfig()
        self.n_labels = len(vocab.classes) + 1
        self.parts = []
        for p in prototypes:
            p = select_rows(p, self.config)
            self.parts.append(
                (
                    p,
                    get_extractor(p.extractor.config, device),
                    torch.from_numpy(p.vectors).to(device),
                    torch.from_numpy(p.owner).to(device),
                )
            )

    def segment(self, image: np.ndarray) -> SegmentResult:
        """image: uint8 [H, W, 3] RGB -> SegmentResult at the image's size."""
        import torch.nn.functional as F

        from protodb.match import labels_from_scores, match

        h, w = image.shape[:2]
        total = None
        winners_small = []
        for _, extractor, vectors, owner in self.parts:
            feats = extractor.extract(image[None])[0].to(self.device)
            scores, winner = match(feats, vectors, owner, self.n_labels)
            up = F.interpolate(
                scores[None].clamp(-1, 1), size=(h, w), mode="bilinear", align_corners=False
            )[0]
            total = up if total is None else total + up
            winners_small.append(winner)
        total = total / len(self.parts)
        labels = labels_from_scores(total)
        winners = {}
        for (p, _, _, _), winner in zip(self.parts, winners_small, strict=True):
            win = F.interpolate(winner[None].float(), size=(h, w), mode="nearest")[0].long()
            picked = win.gather(0, labels[None])[0]
            winners[p.extractor.extractor_id] = picked.cpu().numpy().astype(np.int32)
        return SegmentResult(
            vocab=self.vocab.name,
            classes=self.vocab.class_names,
            labels=labels.cpu().numpy().astype(np.uint8),
            scores=total.cpu().numpy().astype(np.float32),
            winners=winners,
        )


def write_outputs(result: SegmentResult, image: np.ndarray, out_dir: Path, stem: str) -> dict:
    """Write ``<stem>.png`` (palette PNG, the image's size) and ``<stem>_overlay.png``.

    Returns the image's summary: {"label_png", "overlay_png", "height", "width", "areas"}.
    """
    from PIL import Image

    from protodb.images import palette

    out_dir.mkdir(parents=True, exist_ok=True)
    pal = palette()
    label_path = out_dir / f"{stem}.png"
    h, w = result.labels.shape
    im = Image.frombytes("P", (w, h), np.ascontiguousarray(result.labels).tobytes())
    im.putpalette(pal)
    im.save(label_path, optimize=False)
    colours = np.asarray(pal, dtype=np.uint8).reshape(-1, 3)[result.labels]
    fg = (result.labels > 0)[..., None]
    overlay = np.where(fg, (0.45 * image + 0.55 * colours), 0.6 * image).round().astype(np.uint8)
    overlay_path = out_dir / f"{stem}_overlay.png"
    Image.fromarray(overlay).save(overlay_path)
    return {
        "label_png": str(label_path),
        "overlay_png": str(overlay_path),
        "height": int(result.labels.shape[0]),
        "width": int(result.labels.shape[1]),
        "areas": result.areas(),
    }
