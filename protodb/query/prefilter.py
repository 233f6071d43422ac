"""The CLIP category pre-filter (REFERENCE 1.7): which classes of a vocabulary are in an image.

1. Every thing class gets the prompt ``a <class>``; the image embedding (image resized to the
   CLIP input size, 224 for ViT-B/16) is compared to the prompts by raw cosine similarity (no
   logit scale), soft-maxed over the thing classes.
2. Candidates: the classes with probability >= 1/|C| (C = thing classes), at most ``eta`` of
   them (the top eta by probability when more pass); when none passes, the top eta. Softmax
   makes "none passes" impossible in exact arithmetic, but the rule is kept as the reference
   states it.
   The single-class prompts are the same for every image: :func:`class_text` encodes them
   once per vocabulary.
3. Multi-label prompts ``a X and a Y and ...`` for every non-empty subset of the candidates
   (2^k - 1 prompts, encoded in batches); the subset whose prompt is most similar to the image
   is the final set of thing classes.
4. Stuff classes bypass the filter and are always kept.

Order: candidates are listed in vocabulary order; subset s (s = 1 .. 2^k - 1) holds candidate i
when bit i of s is set, and its prompt names its members in vocabulary order. Ties go to the
earlier class / subset. The text and image encoders are callables, so the real open_clip model
and a stand-in share this selection code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

TextEncoder = Callable[[list[str]], torch.Tensor]  # prompts -> float [N, D]
ImageEncoder = Callable[[np.ndarray], torch.Tensor]  # uint8 [H, W, 3] -> float [D]

TEXT_BATCH = 256
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class Selection:
    """What the pre-filter kept for one image.

    keep: labels kept (1-based vocabulary labels, stuff included, sorted); things: the thing
    labels in the order of ``probs``; probs: softmax probability of each thing class;
    candidates: thing labels that entered the subset search (vocabulary order); rule:
    "threshold", "top-eta" (more than eta passed) or "none-passed" (top eta taken); prompts:
    the multi-label prompts in search order; prompt_scores: their cosine to the image;
    winner: the winning subset's labels.
    """

    keep: list[int]
    things: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    rule: str = "threshold"
    prompts: list[str] = field(default_factory=list)
    prompt_scores: list[float] = field(default_factory=list)
    winner: list[int] = field(default_factory=list)


def candidate_indices(probs: Sequence[float], eta: int) -> tuple[list[int], str]:
    """Indices into ``probs`` of the candidates (ascending) and the rule that chose them:
    probability >= 1/len(probs); more than ``eta`` -> the top eta; none -> the top eta."""
    p = np.asarray(probs, dtype=np.float64)
    passed = np.flatnonzero(p >= 1.0 / len(p))
    if len(passed) == 0:
        rule, pool = "none-passed", np.arange(len(p))
    elif len(passed) > eta:
        rule, pool = "top-eta", passed
    else:
        return passed.tolist(), "threshold"
    top = sorted(pool.tolist(), key=lambda i: (-p[i], i))[:eta]
    return sorted(top), rule


def subset_prompts(names: Sequence[str]) -> list[tuple[list[int], str]]:
    """Every non-empty subset of ``names`` with its prompt: subset s = 1 .. 2^k - 1 holds name i
    when bit i of s is set -> [(indices, "a X and a Y ..."), ...]."""
    out = []
    for s in range(1, 1 << len(names)):
        members = [i for i in range(len(names)) if s >> i & 1]
        out.append((members, " and ".join(f"a {names[i]}" for i in members)))
    return out


def _encode(encode_text: TextEncoder, prompts: list[str], batch: int) -> torch.Tensor:
    parts = [encode_text(prompts[i : i + batch]).float() for i in range(0, len(prompts), batch)]
    return F.normalize(torch.cat(parts), dim=-1)


def class_text(
    names: Sequence[str], stuff: Sequence[bool], encode_text: TextEncoder, batch: int = TEXT_BATCH
) -> torch.Tensor:
    """The unit embeddings of the single-class prompts ``a <class>`` of the thing classes, in
    vocabulary order: float [things, D]. The same for every image, so a caller segmenting many
    images computes it once and passes it to :func:`select_classes` (same batches, so the same
    numbers as computing it there)."""
    prompts = [f"a {n}" for n, s in zip(names, stuff, strict=True) if not s]
    return _encode(encode_text, prompts, batch)


def select_classes(
    names: Sequence[str],
    stuff: Sequence[bool],
    image_embedding: torch.Tensor,
    encode_text: TextEncoder,
    *,
    eta: int = 10,
    batch: int = TEXT_BATCH,
    things_text: torch.Tensor | None = None,
) -> Selection:
    """Run the pre-filter for one image.

    names: the vocabulary's class names (label i + 1 = names[i]); stuff: bool per class;
    image_embedding: float [D]; encode_text: prompts -> float [N, D]; things_text: the
    :func:`class_text` of ``names`` (computed here when None). Returns a :class:`Selection`
    (labels are 1-based).
    """
    stuff_labels = [i + 1 for i, s in enumerate(stuff) if s]
    things = [i for i, s in enumerate(stuff) if not s]
    if not things:
        return Selection(keep=stuff_labels)
    img = F.normalize(image_embedding.float().reshape(-1), dim=0)
    text = class_text(names, stuff, encode_text, batch) if things_text is None else things_text
    probs = (text.to(img.device) @ img).softmax(0)
    idx, rule = candidate_indices(probs.tolist(), eta)
    cands = [things[i] for i in idx]
    subsets = subset_prompts([names[i] for i in cands])
    prompts = [p for _, p in subsets]
    scores = _encode(encode_text, prompts, batch).to(img.device) @ img
    best = int(scores.argmax())
    winner = [cands[i] + 1 for i in subsets[best][0]]
    return Selection(
        keep=sorted(winner + stuff_labels),
        things=[i + 1 for i in things],
        probs=probs.tolist(),
        candidates=[i + 1 for i in cands],
        rule=rule,
        prompts=prompts,
        prompt_scores=scores.tolist(),
        winner=winner,
    )


class ClipEncoders:
    """The text and image encoders of an open_clip model (see protodb.models.openclip.load_clip).

    ``model``: "ViT-B-16-quickgelu" (with ``pretrained`` "openai", the paper's) or "tiny" (random
    weights, 64 px). Images are resized (bilinear, antialiased) to the model's input size, 224 for
    ViT-B/16, and normalised with CLIP's mean and std.
    """

    def __init__(self, model: str, pretrained: str | None, device: str = "cpu") -> None:
        import open_clip

        from protodb.models.openclip import load_clip

        self.net = load_clip(model, pretrained, device)
        self.device = device
        self.tokenizer = open_clip.get_tokenizer("ViT-B-16")
        size = self.net.visual.image_size
        self.size = tuple(size) if isinstance(size, tuple | list) else (size, size)

    def text(self, prompts: list[str]) -> torch.Tensor:
        """prompts -> float [N, D]."""
        with torch.inference_mode():
            return self.net.encode_text(self.tokenizer(prompts).to(self.device)).float()

    def image(self, image: np.ndarray) -> torch.Tensor:
        """uint8 [H, W, 3] RGB -> float [D]."""
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        with torch.inference_mode():
            return self.net.encode_image(((x - mean) / std).to(self.device))[0].float()
