"""Nearest-prototype matching (REFERENCE 1.6).

Score of class c at a location = max over c's prototypes of cosine(feature, prototype). All
classes at once: one matrix product, then a per-class max over a padded [C, Pmax] index, with no
Python loop over classes or prototypes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segment_index(owner: torch.Tensor, n_labels: int) -> torch.Tensor:
    """owner int64 [P] (label of each prototype) -> int64 [n_labels, Pmax] of prototype rows,
    padded with P (an extra row of -inf similarities)."""
    p = owner.numel()
    counts = torch.bincount(owner, minlength=n_labels)
    pmax = max(int(counts.max()) if p else 0, 1)
    order = torch.argsort(owner, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(p) - starts[owner[order]]
    index = torch.full((n_labels, pmax), p, dtype=torch.long)
    index[owner[order], rank] = order
    return index


def match(
    features: torch.Tensor, vectors: torch.Tensor, owner: torch.Tensor, n_labels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label cosine scores of a feature grid.

    features: float [D, h, w]; vectors: float [P, D], L2-normalised; owner: int64 [P] in
    [0, n_labels). Returns (scores float32 [n_labels, h, w] in [-1, 1], -inf for a label with
    no prototype; winner int64 [n_labels, h, w], the prototype row that gave each score, -1 for
    none).
    """
    d, h, w = features.shape
    f = F.normalize(features.reshape(d, h * w).float(), dim=0)
    sims = vectors.float() @ f  # [P, hw]
    sims = torch.cat([sims, torch.full((1, h * w), float("-inf"), device=sims.device)])
    index = segment_index(owner.cpu(), n_labels).to(sims.device)
    scores, arg = sims[index].max(dim=1)  # [n_labels, hw]
    winner = index.gather(1, arg)
    winner = torch.where(winner == owner.numel(), torch.full_like(winner, -1), winner)
    return scores.view(n_labels, h, w), winner.view(n_labels, h, w)


def labels_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """scores float [n_labels, H, W] -> labels int64 [H, W]: non-positive scores zeroed, then
    argmax (ties go to the lowest label, so an all-zero pixel is background)."""
    return scores.clamp_min(0).nan_to_num(0.0).argmax(dim=0)
