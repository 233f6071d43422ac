"""Nearest-prototype matching (REFERENCE 1.6).

Score of class c at a location = max over c's prototypes of cosine(feature, prototype). All
classes at once, with no Python loop over classes or prototypes:

1. rows are grouped by label into blocks of ``B`` rows (a label with more rows spans several
   blocks; the background class, the union of every class's bg rows, usually does), padded
   with rows whose bias is -inf;
2. one matrix product (``addmm`` with that bias) per chunk of whole blocks gives their
   similarities to every pixel, viewed as [blocks, B, pixels] and reduced by a max over B;
3. a scatter-max over blocks gives the per-label max, and a scatter-min over the winning block
   ids gives the prototype behind it.

Memory is bounded by processing blocks in chunks: at most max(``budget``, B x pixels) similarity
values live at once, however large the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_BUDGET = 1 << 25  # similarity values per chunk (128 MiB in float32)


def block_size(counts: list[int]) -> int:
    """The block size B (rows per block) that pads the fewest rows for these per-label row
    counts (ties to the larger B): e.g. 150 labels of 65 rows plus one of 9750 -> 65."""
    sizes = sorted({min(c, 1024) for c in counts if c > 0})
    if not sizes:
        return 1
    return min(sizes, key=lambda b: (sum(-(-c // b) * b for c in counts), -b))


@dataclass
class PrototypeIndex:
    """Prototypes laid out for :func:`match`.

    vectors: float [NB * B, D] (pad rows zero); bias: float [NB * B, 1], 0 for a real row and
    -inf for a pad row; row: int64 [NB * B], the original row of each padded row (-1 for pad);
    block_owner: int64 [NB], the label of each block; n_rows: P; n_labels; block: B.
    """

    vectors: torch.Tensor
    bias: torch.Tensor
    row: torch.Tensor
    block_owner: torch.Tensor
    n_rows: int
    n_labels: int
    block: int

    @classmethod
    def build(cls, vectors: torch.Tensor, owner: torch.Tensor, n_labels: int) -> PrototypeIndex:
        """vectors float [P, D] (L2-normalised); owner int64 [P] in [0, n_labels)."""
        device = vectors.device
        owner_cpu = owner.cpu()
        p, d = vectors.shape
        counts = torch.bincount(owner_cpu, minlength=n_labels)
        b = block_size(counts.tolist())
        blocks = -(-counts // b)  # ceil
        nb = int(blocks.sum())
        order = torch.argsort(owner_cpu, stable=True)
        first_block = torch.cumsum(blocks, 0) - blocks
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(p) - starts[owner_cpu[order]]
        slot = first_block[owner_cpu[order]] * b + rank  # padded position of each sorted row
        row = torch.full((nb * b,), -1, dtype=torch.long)
        row[slot] = order
        padded = torch.zeros(nb * b, d, dtype=vectors.dtype, device=device)
        padded[slot.to(device)] = vectors[order.to(device)]
        bias = torch.where(row >= 0, 0.0, float("-inf")).to(device, vectors.dtype)[:, None]
        block_owner = torch.repeat_interleave(torch.arange(n_labels), blocks)
        return cls(padded, bias, row.to(device), block_owner.to(device), p, n_labels, b)


def match_index(
    features: torch.Tensor, index: PrototypeIndex, *, budget: int = DEFAULT_BUDGET
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label cosine scores of a feature grid against an indexed prototype set.

    features: float [D, h, w] (any norm). Returns (scores float32 [n_labels, h, w] in [-1, 1],
    -inf for a label with no prototype; winner int64 [n_labels, h, w], the original prototype
    row behind each score, -1 for none). Blocks of rows are processed in chunks so that at most
    max(budget, B * h * w) similarities exist at once, whatever the vocabulary's size.
    """
    d, h, w = features.shape
    hw = h * w
    n_labels = index.n_labels
    device = index.vectors.device
    f = F.normalize(features.reshape(d, hw).to(device, index.vectors.dtype), dim=0)
    nb, b = index.block_owner.numel(), index.block
    if nb == 0:
        scores = torch.full((n_labels, hw), float("-inf"), device=device)
        winner = torch.full((n_labels, hw), -1, dtype=torch.long, device=device)
        return scores.view(n_labels, h, w), winner.view(n_labels, h, w)
    # stage 1: the max of every block, a chunk of whole blocks at a time (contiguous rows,
    # every pixel: the products stay as large as the memory budget allows)
    per_chunk = min(nb, max(1, budget // (b * hw)))
    padded = bool(torch.isinf(index.bias).any())
    buffer = torch.empty(per_chunk * b * hw, device=device, dtype=index.vectors.dtype)
    bmax = torch.empty(nb, hw, device=device, dtype=index.vectors.dtype)
    barg = torch.empty(nb, hw, device=device, dtype=torch.long)
    for b0 in range(0, nb, per_chunk):
        b1 = min(nb, b0 + per_chunk)
        rows = slice(b0 * b, b1 * b)
        sims = buffer[: (b1 - b0) * b * hw].view(-1, hw)  # reused: no fresh pages per chunk
        if padded:
            torch.addmm(index.bias[rows], index.vectors[rows], f, out=sims)
        else:
            torch.mm(index.vectors[rows], f, out=sims)
        torch.max(sims.view(b1 - b0, b, hw), dim=1, out=(bmax[b0:b1], barg[b0:b1]))
    # stage 2: the max over each label's blocks, and the first block that reaches it
    block_ids = torch.arange(nb, device=device)[:, None]
    if nb == n_labels and bool((index.block_owner == block_ids[:, 0]).all()):
        best, chosen = bmax, block_ids.expand(nb, hw)  # one block per label, in order
    else:
        owner = index.block_owner[:, None].expand(nb, hw)
        best = torch.full((n_labels, hw), float("-inf"), device=device, dtype=bmax.dtype)
        best.scatter_reduce_(0, owner, bmax, "amax")
        hit = torch.where(bmax == best[index.block_owner], block_ids, nb)
        chosen = torch.full((n_labels, hw), nb, dtype=torch.long, device=device)
        chosen.scatter_reduce_(0, owner, hit, "amin")
    safe = chosen.clamp(max=nb - 1)
    win = index.row[safe * b + barg.gather(0, safe)]
    winner = torch.where(chosen < nb, win, -1)
    return best.float().view(n_labels, h, w), winner.view(n_labels, h, w)


def match(
    features: torch.Tensor, vectors: torch.Tensor, owner: torch.Tensor, n_labels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label cosine scores of a feature grid.

    features: float [D, h, w]; vectors: float [P, D], L2-normalised; owner: int64 [P] in
    [0, n_labels). Returns (scores float32 [n_labels, h, w] in [-1, 1], -inf for a label with
    no prototype; winner int64 [n_labels, h, w], the prototype row that gave each score, -1 for
    none). Builds the :class:`PrototypeIndex` on the fly; keep one to match many grids.
    """
    index = PrototypeIndex.build(vectors.float().to(features.device), owner, n_labels)
    return match_index(features, index)


def labels_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """scores float [n_labels, H, W] -> labels int64 [H, W]: non-positive scores zeroed, then
    argmax (ties go to the lowest label, so an all-zero pixel is background)."""
    return scores.clamp_min(0).nan_to_num(0.0).argmax(dim=0)
