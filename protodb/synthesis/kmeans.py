"""Part prototypes' K-means (REFERENCE 1.5) in bounded memory: a row pool and chunked Lloyd.

The pooled masked features of a support set grow with N (at the paper's size up to
N x 64 x 64 rows of 7680 dims). They are kept in a :class:`RowPool` in their storage dtype
(float16 where the extractor stores float16), in memory up to a byte budget and in a temporary
file beyond it, and read back a chunk at a time. :func:`kmeans` runs scikit-learn's algorithm
(k-means++ with 2 + log k local trials drawn from ``RandomState(seed)``, Lloyd iterations,
relocation of empty clusters to the farthest points, convergence on unchanged labels or a centre
shift within ``tol`` x the mean feature variance, a final assignment) with every distance
computed in float32 chunks on the device: no float32 (or float64) copy of the pool exists.

When the pool holds more than ``budget`` rows, K-means fits on a fixed seeded sample of
``budget`` rows (``numpy.random.default_rng(seed)``, without replacement, in pool order) and
every pooled row is then assigned to its nearest centre; see :func:`kmeans`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_K = 32
DEFAULT_ITER = 300
DEFAULT_TOL = 1e-4
# Rows K-means fits on; a larger pool is sampled down to this many (32,768 rows of 7680 dims
# are 480 MiB in float16). Distances per iteration: budget x K x D multiply-adds.
# protodb.synthesis.prototypes.PartOptions sets it from a byte budget.
DEFAULT_BUDGET = 1 << 15
# float32 values per distance chunk (rows x dims), 32 MiB
CHUNK_VALUES = 1 << 23
# Bytes of pooled rows kept in memory before the pool spills to a temporary file.
DEFAULT_POOL_MEMORY = 256 << 20
# On a GPU the fitted rows stay on the device, converted once, when their float32 copy holds
# at most this many bytes (the paper's size: 34,952 rows of 7680 dims, 1 GiB); beyond it, or
# on the CPU (where no float32 copy of the pool may exist), every pass converts them again.
RESIDENT_BYTES = 2 << 30


class RowPool:
    """Rows [M, D] of one dtype appended in blocks and read back in chunks.

    dtype: storage dtype ("float16" or "float32"); memory_bytes: rows beyond this many bytes go
    to an unnamed temporary file in ``directory`` (read back with plain reads, so they never
    count towards the process's resident memory). Order is the order of appends.
    """

    def __init__(
        self,
        dim: int,
        dtype: str = "float16",
        *,
        memory_bytes: int = DEFAULT_POOL_MEMORY,
        directory: str | None = None,
    ) -> None:
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        self.memory_bytes = int(memory_bytes)
        self.directory = directory
        # ("mem", array, rows) or ("file", byte offset, rows), in order
        self._blocks: list[tuple[str, object, int]] = []
        self._in_memory = 0
        self._file = None
        self._end = 0
        self.rows = 0

    def __len__(self) -> int:
        return self.rows

    @property
    def spilled(self) -> int:
        """Rows held in the temporary file."""
        return sum(r for kind, _, r in self._blocks if kind == "file")

    def append(self, rows: np.ndarray) -> None:
        """Append float rows [m, D] (converted to the storage dtype)."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype).reshape(-1, self.dim)
        if not len(rows):
            return
        if self._in_memory + rows.nbytes <= self.memory_bytes:
            self._blocks.append(("mem", rows, len(rows)))
            self._in_memory += rows.nbytes
        else:
            if self._file is None:
                # closed by close(); unnamed, so it goes with the process in any case
                self._file = tempfile.TemporaryFile(  # noqa: SIM115
                    dir=self.directory, prefix="protodb-pool-"
                )
            self._file.seek(self._end)
            self._file.write(rows.tobytes())
            self._blocks.append(("file", self._end, len(rows)))
            self._end += rows.nbytes
        self.rows += len(rows)

    def _block(self, kind: str, ref, rows: int) -> np.ndarray:
        if kind == "mem":
            return ref  # type: ignore[return-value]
        self._file.seek(ref)  # type: ignore[union-attr]
        data = np.fromfile(self._file, dtype=self.dtype, count=rows * self.dim)
        return data.reshape(rows, self.dim)

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """The pool in order, as arrays of at most ``rows`` rows (storage dtype; views of the
        stored blocks where they are in memory)."""
        rows = max(1, int(rows))
        for kind, ref, n in self._blocks:
            block = self._block(kind, ref, n)
            for s in range(0, n, rows):
                yield block[s : s + rows]

    def take(self, index: np.ndarray) -> RowPool:
        """A new in-memory pool of the rows at ``index`` (int, ascending)."""
        out = RowPool(self.dim, self.dtype.name, memory_bytes=1 << 62)
        index = np.asarray(index, np.int64)
        start = 0
        for kind, ref, n in self._blocks:
            lo, hi = np.searchsorted(index, [start, start + n])
            if hi > lo:
                out.append(self._block(kind, ref, n)[index[lo:hi] - start])
            start += n
        return out

    def close(self) -> None:
        """Drop the rows and the temporary file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._blocks, self._in_memory, self._end, self.rows = [], 0, 0, 0


@dataclass
class KMeansResult:
    """centres: float32 [k', D], k' = min(k, M), each the mean of its members (NaN for a
    cluster left empty after assigning a sampled fit's pool); labels: int64 [M], the centre of
    each pooled row; inertia: sum of squared distances of the fitted rows to their centre at the
    end of Lloyd's iterations; n_iter: Lloyd iterations run; fitted: rows K-means fitted on (M, or
    ``budget`` when the pool was sampled)."""

    centres: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    fitted: int


def sample_index(m: int, budget: int, seed: int = 0) -> np.ndarray:
    """The rows a pool of ``m`` rows is sampled to: all when m <= budget, else ``budget`` rows
    drawn without replacement by ``numpy.random.default_rng(seed)``, sorted. int64 [min(m, b)]."""
    if m <= budget:
        return np.arange(m, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(m, size=budget, replace=False)).astype(np.int64)


class _Chunks:
    """The fitted rows as float32 chunks on the device, centred on their mean (as scikit-learn
    centres the data), with their squared norms; converted from storage a chunk at a time.
    ``resident``: the chunks of the first complete pass are kept (on the device) and every
    later pass reuses them: the same numbers, without reading and copying the pool again."""

    def __init__(
        self, pool: RowPool, device: str, mean, chunk_rows: int, resident: bool = False
    ) -> None:
        self.pool, self.device, self.mean, self.chunk_rows = pool, device, mean, chunk_rows
        self.resident = resident
        self._kept: list | None = None

    def __iter__(self):
        import torch

        if self._kept is not None:
            yield from self._kept
            return
        kept = [] if self.resident else None
        start = 0
        for block in self.pool.chunks(self.chunk_rows):
            x = torch.from_numpy(block).to(self.device, torch.float32) - self.mean
            item = (start, x, (x * x).sum(1))
            if kept is not None:
                kept.append(item)
            yield item
            start += len(block)
        self._kept = kept


def _moments(pool: RowPool, chunk_rows: int) -> tuple[np.ndarray, float]:
    """Mean (float64 [D]) and the mean over features of the per-feature variance."""
    s = np.zeros(pool.dim, np.float64)
    s2 = np.zeros(pool.dim, np.float64)
    for block in pool.chunks(chunk_rows):
        b = block.astype(np.float64)
        s += b.sum(0)
        s2 += (b * b).sum(0)
    n = max(len(pool), 1)
    mean = s / n
    return mean, float(np.mean(np.maximum(s2 / n - mean * mean, 0.0)))


def _sq_dist(x, xn, c, cn):
    """Squared distances float32 [m, k] of rows x [m, D] to centres c [k, D] (norms given)."""
    return (xn[:, None] - 2.0 * (x @ c.T) + cn[None, :]).clamp_min_(0.0)


def _to_centres(data, rows: np.ndarray, chunk_rows: int = 0):
    """Rows at ``rows`` (int, any order) of the data, centred, float32 [len(rows), D] on the
    device."""
    import torch

    rows = np.asarray(rows, np.int64)
    uniq, back = np.unique(rows, return_inverse=True)
    taken = data.pool.take(uniq)
    block = np.concatenate(list(taken.chunks(len(uniq)))) if len(uniq) else None
    taken.close()
    x = torch.from_numpy(block).to(data.device, torch.float32) - data.mean
    return x[torch.from_numpy(back.reshape(-1)).to(data.device)]


def _kmeans_pp(data, m: int, k: int, rs: np.random.RandomState, chunk_rows: int):
    """scikit-learn's greedy k-means++ (2 + log k local trials per centre, uniform weights)."""
    import torch

    trials = 2 + int(np.log(k))
    first = rs.choice(m, p=np.full(m, 1.0 / m))
    centres = [_to_centres(data, np.array([first]), chunk_rows)]

    def dists(c):  # float64 [len(c), m] on the CPU (one copy from the device per pass)
        cn = (c * c).sum(1)
        parts = [_sq_dist(x, xn, c, cn).T.double() for _, x, xn in data]
        return torch.cat(parts, dim=1).cpu().numpy()

    closest = dists(centres[0])[0]
    pot = closest.sum()
    for _ in range(1, k):
        rand = rs.uniform(size=trials) * pot
        cand = np.searchsorted(np.cumsum(closest), rand)
        np.clip(cand, None, m - 1, out=cand)
        cvec = _to_centres(data, cand, chunk_rows)
        d = np.minimum(closest, dists(cvec))
        pots = d.sum(1)
        best = int(np.argmin(pots))
        pot, closest = pots[best], d[best]
        centres.append(cvec[best : best + 1])
    return torch.cat(centres)


def _estep(data, centres, k: int, m: int, want_sums: bool):
    """Labels int64 [m] (CPU), per-row squared distance float32 [m], and (optionally) per
    cluster sums float64 [k, D] and counts float64 [k] of the rows. Everything is gathered on
    the centres' device and copied to the CPU once (no synchronisation per chunk)."""
    import torch

    dev = centres.device
    cn = (centres * centres).sum(1)
    labels = torch.empty(m, dtype=torch.long, device=dev)
    dist = torch.empty(m, dtype=torch.float32, device=dev)
    sums = torch.zeros(k, centres.shape[1], dtype=torch.float64, device=dev) if want_sums else None
    for start, x, xn in data:
        d = _sq_dist(x, xn, centres, cn)
        best, lab = d.min(1)
        labels[start : start + len(x)] = lab
        dist[start : start + len(x)] = best
        if want_sums:
            part = torch.zeros(k, x.shape[1], device=x.device).index_add_(0, lab, x)
            sums += part.double()
    labels, dist = labels.cpu(), dist.cpu()
    counts = torch.bincount(labels, minlength=k).double()
    return labels, dist, None if sums is None else sums.cpu(), counts


def kmeans(
    pool: RowPool,
    k: int = DEFAULT_K,
    *,
    seed: int = 0,
    max_iter: int = DEFAULT_ITER,
    tol: float = DEFAULT_TOL,
    budget: int = DEFAULT_BUDGET,
    device: str = "cpu",
    chunk_values: int = CHUNK_VALUES,
    resident: bool | None = None,
) -> KMeansResult:
    """K-means of the pooled rows (scikit-learn's algorithm, float32 distances in chunks).

    pool: M rows of D dims; k: clusters (min(k, M) are made; k' = 1 is the mean); seed: the
    k-means++ RandomState seed and the sample's seed; max_iter, tol: as scikit-learn (tol is
    relative to the mean feature variance); budget: the most rows fitted: a larger pool is
    fitted on :func:`sample_index` rows, then every row is assigned to its nearest centre;
    device: where the chunks are computed ("cpu", "cuda"); chunk_values: float32 values per
    chunk; resident: keep the fitted rows' float32 chunks after the first pass rather than
    converting them from the pool at every pass (the same result; None: on a GPU when they
    hold at most RESIDENT_BYTES, never on the CPU). Centres are the mean of their members over
    the whole pool (float64 sums).
    """
    import torch

    m, dim = len(pool), pool.dim
    k = min(int(k), m)
    if k == 0:
        return KMeansResult(np.zeros((0, dim), np.float32), np.zeros(0, np.int64), 0.0, 0, 0)
    chunk_rows = max(1, chunk_values // max(dim, 1))
    with torch.inference_mode():
        if k == 1:
            mean, _ = _moments(pool, chunk_rows)
            return KMeansResult(
                mean[None].astype(np.float32), np.zeros(m, np.int64), float("nan"), 0, m
            )
        index = sample_index(m, budget, seed)
        fit = pool if len(index) == m else pool.take(index)
        n = len(fit)
        mean, var = _moments(fit, chunk_rows)
        tol_abs = var * tol
        centre_of = torch.from_numpy(mean).to(device, torch.float32)
        if resident is None:
            resident = str(device) != "cpu" and n * dim * 4 <= RESIDENT_BYTES
        data = _Chunks(fit, device, centre_of, chunk_rows, resident)
        rs = np.random.RandomState(seed)
        centres = _kmeans_pp(data, n, k, rs, chunk_rows)
        labels_old = None
        strict = False
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007 (it: iterations run)
            labels, dist, sums, counts = _estep(data, centres, k, n, True)
            empty = torch.nonzero(counts == 0).flatten()
            if len(empty):  # scikit-learn: move them to the rows farthest from their centre
                far = torch.argsort(dist, descending=True, stable=True)[: len(empty)].numpy()
                rows = _to_centres(data, far, chunk_rows).double().cpu()
                for e, r, vec in zip(empty.tolist(), far.tolist(), rows, strict=True):
                    old = int(labels[r])
                    sums[old] -= vec
                    counts[old] -= 1
                    sums[e] = vec
                    counts[e] = 1
            new = (sums / counts.clamp_min(1)[:, None]).float().to(device)
            new[counts == 0] = centres[counts == 0]
            shift = float(((new - centres) ** 2).sum())
            centres = new
            if labels_old is not None and torch.equal(labels, labels_old):
                strict = True
                break
            if shift <= tol_abs:
                break
            labels_old = labels
        if not strict:  # labels consistent with the final centres
            labels, dist, _, _ = _estep(data, centres, k, n, False)
        inertia = float(dist.double().sum())
        if fit is not pool:
            fit.close()
            labels, _, _, _ = _estep(_Chunks(pool, device, centre_of, chunk_rows), centres, k, m,
                                     False)  # fmt: skip
        sums = torch.zeros(k, dim, dtype=torch.float64)
        start = 0
        for block in pool.chunks(chunk_rows):
            lab = labels[start : start + len(block)]
            sums.index_add_(0, lab, torch.from_numpy(block).double())
            start += len(block)
        counts = torch.bincount(labels, minlength=k).double()
        out = (sums / counts[:, None]).float().numpy()  # NaN for an empty cluster
    return KMeansResult(out, labels.numpy().astype(np.int64), inertia, it, n)
