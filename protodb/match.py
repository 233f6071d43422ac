"""Nearest-prototype matching (REFERENCE 1.6).

Score of class c at a location = max over c's prototypes of cosine(feature, prototype). All
classes at once, with no Python loop over classes or prototypes:

1. rows are grouped by label into blocks of ``B`` rows (a label with more rows spans several
   blocks; the background class, the union of every class's bg rows, usually does), padded
   with rows whose bias is -inf;
2. one matrix product (``addmm`` with that bias) gives the similarities of a chunk of pixels to
   all padded rows, viewed as [blocks, B, pixels] and reduced by a max over B;
3. a scatter-max over blocks gives the per-label max, and a scatter-min over the winning block
   ids gives the prototype behind it.

Memory is bounded by processing pixels in chunks: at most ``budget`` similarity values live at
once, however large the vocabulary.
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
    row behind each score, -1 for none).
    """
    d, h, w = features.shape
    hw = h * w
    n_labels = index.n_labels
    device = index.vectors.device
    f = F.normalize(features.reshape(d, hw).to(device, index.vectors.dtype), dim=0)
    scores = torch.full((n_labels, hw), float("-inf"), device=device)
    winner = torch.full((n_labels, hw), -1, dtype=torch.long, device=device)
    nb = index.block_owner.numel()
    if nb == 0:
        return scores.view(n_labels, h, w), winner.view(n_labels, h, w)
    rows = index.vectors.shape[0]
    n_chunks = -(-hw // max(1, budget // rows))
    chunk = -(-hw // n_chunks)  # even chunks: no small, inefficient tail product
    block_ids = torch.arange(nb, device=device)[:, None]
    # one block per label, in label order: the block max is the label max
    direct = nb == n_labels and bool((index.block_owner == block_ids[:, 0]).all())
    padded = bool(torch.isinf(index.bias).any())
    buffer = torch.empty(rows * min(chunk, hw), device=device, dtype=index.vectors.dtype)
    for start in range(0, hw, chunk):
        fc = f[:, start : start + chunk]
        n = fc.shape[1]
        sims = buffer[: rows * n].view(rows, n)  # reused: no fresh pages per chunk
        if padded:
            torch.addmm(index.bias, index.vectors, fc, out=sims)
        else:
            torch.mm(index.vectors, fc, out=sims)  # [NB * B, n]
        bmax, barg = sims.view(nb, index.block, n).max(dim=1)  # [NB, n]
        if direct:
            best, chosen = bmax, block_ids.expand(nb, n)
        else:
            owner = index.block_owner[:, None].expand(nb, n)
            best = torch.full((n_labels, n), float("-inf"), device=device, dtype=bmax.dtype)
            best.scatter_reduce_(0, owner, bmax, "amax")
            hit = torch.where(bmax == best[index.block_owner], block_ids, nb)
            chosen = torch.full((n_labels, n), nb, dtype=torch.long, device=device)
            chosen.scatter_reduce_(0, owner, hit, "amin")
        ok = chosen < nb
        safe = chosen.clamp(max=nb - 1)
        local = barg.gather(0, safe)
        win = index.row[safe * index.block + local]
        scores[:, start : start + n] = best.float()
        winner[:, start : start + n] = torch.where(ok, win, -1)
    return scores.view(n_labels, h, w), winner.view(n_labels, h, w)


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
