"""Prototypes: class, instance and part, for fg and bg (REFERENCE 1.5).

For one polarity (fg or bg) of one support set:

- masks go to the feature grid by a bilinear resize then ``!= 0`` (an OR over the pixels that
  touch a cell);
- a support image whose fg mask is empty on the grid is skipped (for both polarities);
- instance prototype = mean feature inside that image's mask; class prototype = mean of all
  masked features pooled over the set (the mask-size-weighted mean of instances);
- part prototypes = K-means (K = 32, k-means++, 300 iterations, tol 1e-4, seed 0) on the pooled
  masked features; K shrinks to the number of pooled features when fewer;
- rows that are not finite are dropped.

Streaming (:class:`PrototypeStream`): features arrive a batch of support images at a time and
are folded in at once: running float64 sums give the class and instance rows, and only the
masked rows are kept, in the extractor's storage dtype (float16 by default), for the part
prototypes (protodb.synthesis.kmeans: scikit-learn's K-means with float32 distances computed in
chunks on the device; beyond ``PartOptions.budget_bytes`` of pooled rows, fitted on a fixed seeded
sample). Memory no longer holds N feature maps: float32 [32, 7680, 64, 64] (3.8 GiB) at the
paper's size. :func:`support_prototypes_reference` keeps the all-at-once computation.

Every prototype links back to support regions: an instance to its image's mask, a part to the
grid cells assigned to its cluster (``cells``: int16 [N, h, w], part id or -1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protodb.synthesis.request import DEFAULT_PARTS

LEVELS = ("class", "instance", "part")
POLARITIES = ("fg", "bg")


@dataclass
class Prototypes:
    """The prototypes of one polarity of one support set (P rows, D dims).

    vectors: float32 [P, D]; level: str [P] in LEVELS; part: int [P] (part id, -1 unless a part);
    support: int [P] (support index of an instance, -1 otherwise); weight: float32 [P] (number of
    grid cells behind the row); cells: int16 [N, h, w] part id per grid cell of each support
    image, -1 outside the mask; used: bool [N], images that contributed.
    """

    polarity: str
    vectors: np.ndarray
    level: np.ndarray
    part: np.ndarray
    support: np.ndarray
    weight: np.ndarray
    cells: np.ndarray
    used: np.ndarray

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def mask_to_grid(masks: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """bool [N, H, W] -> bool [N, h, w]: bilinear resize of the 0/1 mask, then ``!= 0``."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(masks.astype(np.float32))[:, None]
    small = F.interpolate(t, size=grid_hw, mode="bilinear", align_corners=False)[:, 0]
    return (small != 0).numpy()


def kmeans_parts(points: np.ndarray, k: int = DEFAULT_PARTS, seed: int = 0):
    """The reference K-means (scikit-learn, float64 copy of the points): float32 [M, D] ->
    (centres float32 [k', D], labels int [M]), k' = min(k, M)."""
    from sklearn.cluster import KMeans

    k = min(k, points.shape[0])
    if k == 0:
        return np.zeros((0, points.shape[1]), np.float32), np.zeros(0, np.int64)
    if k == 1:
        return points.mean(0, keepdims=True).astype(np.float32), np.zeros(len(points), np.int64)
    km = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=300, tol=1e-4, random_state=0)
    labels = km.fit_predict(points.astype(np.float64))
    centres = np.stack([points[labels == c].mean(0) for c in range(k)]).astype(np.float32)
    return centres, labels


def build_prototypes_reference(
    features: np.ndarray,
    mask: np.ndarray,
    keep: np.ndarray,
    polarity: str,
    parts: int = DEFAULT_PARTS,
) -> Prototypes:
    """Prototypes of one polarity, all at once (the computation before streaming, kept as the
    reference that tests and bench/bench_memory.py compare :class:`PrototypeStream` against:
    it holds every feature in float32 and fits K-means with scikit-learn on a float64 copy).

    features: float32 [N, D, h, w]; mask: bool [N, h, w] on the feature grid; keep: bool [N],
    images allowed to contribute (those with a non-empty fg on the grid).
    """
    n, d, h, w = features.shape
    feats = features.transpose(0, 2, 3, 1)  # [N, h, w, D]
    mask = mask & keep[:, None, None]
    vectors, level, part, support, weight = [], [], [], [], []
    counts = mask.reshape(n, -1).sum(1)
    pooled = feats[mask]  # [M, D]
    if pooled.shape[0]:
        vectors.append(pooled.mean(0))
        level.append("class")
        part.append(-1)
        support.append(-1)
        weight.append(float(pooled.shape[0]))
    for i in range(n):
        if not keep[i]:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            inst = feats[i][mask[i]].mean(0) if counts[i] else np.full(d, np.nan, np.float32)
        vectors.append(inst)
        level.append("instance")
        part.append(-1)
        support.append(i)
        weight.append(float(counts[i]))
    cells = np.full((n, h, w), -1, np.int16)
    if pooled.shape[0]:
        centres, labels = kmeans_parts(pooled, parts)
        cells[mask] = labels.astype(np.int16)
        for c in range(centres.shape[0]):
            vectors.append(centres[c])
            level.append("part")
            part.append(c)
            support.append(-1)
            weight.append(float((labels == c).sum()))
    vec = np.asarray(vectors, np.float32).reshape(-1, d)
    finite = np.isfinite(vec).all(1)
    return Prototypes(
        polarity=polarity,
        vectors=vec[finite],
        level=np.asarray(level, dtype=object)[finite].astype(str),
        part=np.asarray(part, np.int32)[finite],
        support=np.asarray(support, np.int32)[finite],
        weight=np.asarray(weight, np.float32)[finite],
        cells=cells,
        used=keep & (counts > 0),
    )


def support_prototypes_reference(
    features: np.ndarray, fg: np.ndarray, bg: np.ndarray, parts: int = DEFAULT_PARTS
) -> tuple[Prototypes, Prototypes]:
    """fg and bg prototypes of a support set, all at once (the reference computation).

    features: float32 [N, D, h, w]; fg, bg: bool [N, H, W] image-resolution masks.
    """
    grid = features.shape[2:]
    fg_g = mask_to_grid(fg, grid)
    bg_g = mask_to_grid(bg, grid)
    keep = fg_g.reshape(len(fg_g), -1).any(1)
    return (
        build_prototypes_reference(features, fg_g, keep, "fg", parts),
        build_prototypes_reference(features, bg_g, keep, "bg", parts),
    )


# --------------------------------------------------------------------------- streamed


@dataclass(frozen=True)
class PartOptions:
    """How part prototypes are fitted (protodb.synthesis.kmeans).

    parts: K; pool_dtype: storage dtype of the pooled masked features ("float16" or "float32",
    the extractor's ``store_dtype``); budget_bytes: the most pooled rows K-means fits on, in
    bytes of storage (default 512 MiB: 34,952 rows of the sd extractor's 7680 float16 dims,
    349,525 of a 768-dim ViT's, so only the sd extractor at the paper's size is ever sampled);
    a larger pool is fitted on a fixed seeded sample of that many rows, every row then
    assigned to its nearest centre (protodb.synthesis.kmeans.kmeans); pool_memory: bytes of
    pooled rows kept in memory per polarity before the rest goes to a temporary file (default
    256 MiB); device: where distances are computed; seed: k-means++ and sample seed."""

    parts: int = DEFAULT_PARTS
    pool_dtype: str = "float16"
    budget_bytes: int = 512 << 20
    pool_memory: int = 256 << 20
    device: str = "cpu"
    seed: int = 0

    def budget_rows(self, dim: int) -> int:
        """The K-means budget in rows of ``dim`` dims (at least K)."""
        size = np.dtype(self.pool_dtype).itemsize * max(dim, 1)
        return max(self.parts, self.budget_bytes // size)


class PolarityStream:
    """The prototypes of one polarity, folded in a batch of support images at a time.

    mask: bool [N, h, w] on the feature grid; keep: bool [N], images allowed to contribute.
    :meth:`add` takes the features of images start..start+B-1 (in order, each once);
    :meth:`finish` returns what :func:`build_prototypes_reference` returns for the same
    features: class and instance rows from float64 running sums of the float32 features (equal
    up to float rounding), part rows from :func:`protodb.synthesis.kmeans.kmeans` on the masked
    rows pooled in ``options.pool_dtype``. Memory: the pool (bounded by ``pool_memory``, the
    rest on disk), the K-means sample and D floats per instance.
    """

    def __init__(
        self, mask: np.ndarray, keep: np.ndarray, polarity: str, options: PartOptions
    ) -> None:
        self.mask = mask & keep[:, None, None]
        self.keep = keep
        self.polarity = polarity
        self.options = options
        self.counts = self.mask.reshape(len(mask), -1).sum(1)
        self.total: np.ndarray | None = None  # float64 [D]
        self.instances: dict[int, np.ndarray] = {}
        self.pool = None
        self.pool_memory = options.pool_memory
        self.next = 0
        self.dim = 0

    def add(self, start: int, features: np.ndarray) -> None:
        """features: float32 [B, D, h, w] of support images start..start+B-1."""
        from protodb.synthesis.kmeans import RowPool

        if start != self.next:
            raise ValueError(f"features of image {start} given, expected image {self.next}")
        b, d = features.shape[:2]
        if self.pool is None:
            self.dim = d
            self.total = np.zeros(d, np.float64)
            self.pool = RowPool(d, self.options.pool_dtype, memory_bytes=self.pool_memory)
        for j in range(b):
            i = start + j
            if not self.keep[i]:
                continue
            if not self.counts[i]:
                self.instances[i] = np.full(d, np.nan, np.float32)
                continue
            flat = features[j].reshape(d, -1)
            rows = flat[:, self.mask[i].reshape(-1)].T  # float32 [c, D], row-major cells
            s = rows.sum(0, dtype=np.float64)
            self.total += s
            self.instances[i] = (s / len(rows)).astype(np.float32)
            self.pool.append(rows)
        self.next = start + b

    def finish(self) -> Prototypes:
        """The Prototypes (rows: class, instances in image order, parts); the pool is freed."""
        from protodb.synthesis.kmeans import kmeans

        n, (h, w) = len(self.mask), self.mask.shape[1:]
        if self.next != n:
            raise ValueError(f"features of {self.next} images of {n} given")
        d = self.dim
        m = int(self.counts.sum())
        vectors, level, part, support, weight = [], [], [], [], []
        if m:
            vectors.append((self.total / m).astype(np.float32))
            level.append("class")
            part.append(-1)
            support.append(-1)
            weight.append(float(m))
        for i in range(n):
            if self.keep[i]:
                vectors.append(self.instances[i])
                level.append("instance")
                part.append(-1)
                support.append(i)
                weight.append(float(self.counts[i]))
        cells = np.full((n, h, w), -1, np.int16)
        if m:
            o = self.options
            km = kmeans(
                self.pool,
                o.parts,
                seed=o.seed,
                budget=o.budget_rows(d),
                device=o.device,
            )
            cells[self.mask] = km.labels.astype(np.int16)
            counts = np.bincount(km.labels, minlength=len(km.centres))
            for c in range(km.centres.shape[0]):
                vectors.append(km.centres[c])
                level.append("part")
                part.append(c)
                support.append(-1)
                weight.append(float(counts[c]))
        if self.pool is not None:
            self.pool.close()
        vec = np.asarray(vectors, np.float32).reshape(-1, d)
        finite = np.isfinite(vec).all(1)
        return Prototypes(
            polarity=self.polarity,
            vectors=vec[finite],
            level=np.asarray(level, dtype=object)[finite].astype(str),
            part=np.asarray(part, np.int32)[finite],
            support=np.asarray(support, np.int32)[finite],
            weight=np.asarray(weight, np.float32)[finite],
            cells=cells,
            used=self.keep & (self.counts > 0),
        )


class PrototypeStream:
    """fg and bg prototypes of a support set, built as its features arrive.

    fg, bg: bool [N, H, W] image-resolution masks. ``add(start, features)`` with float32
    [B, D, h, w] (numpy or a CPU torch tensor) of images start..start+B-1, in order; the first
    call fixes the grid (h, w) and maps the masks onto it. ``finish()`` -> (fg, bg)
    Prototypes, equal to :func:`support_prototypes_reference` on the concatenated features
    (class and instance rows up to float rounding, part rows as scikit-learn's K-means on the
    pooled rows as stored: float16 by default). Only the masked rows are kept, never a batch.
    """

    def __init__(self, fg: np.ndarray, bg: np.ndarray, options: PartOptions | None = None) -> None:
        self.fg, self.bg = fg, bg
        self.options = options or PartOptions()
        self.streams: tuple[PolarityStream, PolarityStream] | None = None

    @property
    def dim(self) -> int:
        return self.streams[0].dim if self.streams else 0

    def add(self, start: int, features) -> None:
        if not isinstance(features, np.ndarray):
            features = features.numpy()
        if self.streams is None:
            grid = features.shape[2:]
            fg_g = mask_to_grid(self.fg, grid)
            bg_g = mask_to_grid(self.bg, grid)
            keep = fg_g.reshape(len(fg_g), -1).any(1)
            self.streams = (
                PolarityStream(fg_g, keep, "fg", self.options),
                PolarityStream(bg_g, keep, "bg", self.options),
            )
        for s in self.streams:
            s.add(start, features)

    def finish(self) -> tuple[Prototypes, Prototypes]:
        if self.streams is None:
            raise ValueError("no features were given")
        fg, bg = (s.finish() for s in self.streams)
        return fg, bg


def build_prototypes(
    features: np.ndarray,
    mask: np.ndarray,
    keep: np.ndarray,
    polarity: str,
    parts: int = DEFAULT_PARTS,
    options: PartOptions | None = None,
) -> Prototypes:
    """Prototypes of one polarity from all features at once, through :class:`PolarityStream`.

    features: float32 [N, D, h, w]; mask: bool [N, h, w] on the feature grid; keep: bool [N],
    images allowed to contribute (those with a non-empty fg on the grid).
    """
    options = options or PartOptions(parts=parts)
    stream = PolarityStream(mask, keep, polarity, options)
    stream.add(0, features)
    return stream.finish()


def support_prototypes(
    features: np.ndarray,
    fg: np.ndarray,
    bg: np.ndarray,
    parts: int = DEFAULT_PARTS,
    options: PartOptions | None = None,
) -> tuple[Prototypes, Prototypes]:
    """fg and bg prototypes of a support set from all features at once (one batch of a
    :class:`PrototypeStream`).

    features: float32 [N, D, h, w]; fg, bg: bool [N, H, W] image-resolution masks.
    """
    stream = PrototypeStream(fg, bg, options or PartOptions(parts=parts))
    stream.add(0, features)
    return stream.finish()


def extract_prototypes(
    extractor,
    images: np.ndarray,
    fg: np.ndarray,
    bg: np.ndarray,
    options: PartOptions | None = None,
    *,
    batch: int = 2,
    on_batch=None,
) -> tuple[Prototypes, Prototypes, int]:
    """Features of the support images -> (fg, bg, D), streamed: ``batch`` images per extractor
    call, each call's features folded into a :class:`PrototypeStream` and dropped.

    extractor: a protodb.extractors.base.Extractor; images: uint8 [N, H, W, 3]; fg, bg: bool
    [N, H, W]; on_batch(b): called after each call with its number of images. Under an active
    :mod:`protodb.timing` timer, the extractor's calls are charged to "features NAME", the
    folding in and K-means to "prototypes NAME" (NAME: the extractor config's name).
    """
    from protodb import timing

    name = getattr(getattr(extractor, "config", None), "name", "extractor")
    stream = PrototypeStream(fg, bg, options)
    for start in range(0, len(images), max(1, batch)):
        chunk = images[start : start + max(1, batch)]
        with timing.stage(f"features {name}"):
            features = extractor.extract(chunk)
        with timing.stage(f"prototypes {name}"):
            stream.add(start, features)
        del features
        if on_batch is not None:
            on_batch(len(chunk))
    with timing.stage(f"prototypes {name}"):
        fg_p, bg_p = stream.finish()
    return fg_p, bg_p, stream.dim


def extract_prototypes_reference(
    extractor, images: np.ndarray, fg: np.ndarray, bg: np.ndarray, *, batch: int = 8
) -> tuple[Prototypes, Prototypes, int]:
    """The path before streaming, kept as the baseline of bench/bench_memory.py: every
    support image's features concatenated in float32 (8 per call), then
    :func:`support_prototypes_reference`."""
    feats = [extractor.extract(images[s : s + batch]).numpy() for s in range(0, len(images), batch)]
    features = np.concatenate(feats)
    del feats
    fg_p, bg_p = support_prototypes_reference(features, fg, bg)
    return fg_p, bg_p, int(features.shape[1])
