"""The matching step against one matrix product of the same size, and its peak extra memory.

    python -m bench.bench_match [--classes 150] [--protos 65] [--dim 768] [--grid 64] [--reps 5]

A vocabulary of ``classes`` classes with ``protos`` fg and ``protos`` bg prototypes each (the
background class is the union of the bg ones: 150 x 65 = 9750 rows), ``dim``-dimensional, matched
against a ``grid`` x ``grid`` feature map. The baseline is the bare similarity product
[P, D] @ [D, grid^2] with P = all rows (what matching cannot avoid); the figure is the median time
of :func:`protodb.query.match.match_index` (per-class max and winning prototype included,
index built once per vocabulary, as the Segmenter does) over the median time of the product,
measured interleaved in the same run (target <= 1.3x). Peak extra memory is read from the kernel's
high-water mark (VmHWM, reset through /proc/self/clear_refs) over the resident set before the
call, for the product and for matching.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench.common import figure


def _status(key: str) -> int:
    """A /proc/self/status field in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_extra(fn) -> float:
    """Bytes of resident memory ``fn()`` needs beyond what is resident before it (its result
    included), via the high-water mark; NaN where /proc/self/clear_refs cannot reset it."""
    import gc

    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return float("nan")
    before = _status("VmRSS")
    out = fn()
    peak = _status("VmHWM")
    del out
    return float(peak - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--protos", type=int, default=65, help="fg (and bg) prototypes a class")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--grid", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from protodb.query.match import PrototypeIndex, match_index

    g = torch.Generator().manual_seed(0)
    c, k, d, n = args.classes, args.protos, args.dim, args.grid
    fg_owner = torch.arange(1, c + 1).repeat_interleave(k)
    owner = torch.cat([fg_owner, torch.zeros(c * k, dtype=torch.long)])
    vectors = F.normalize(torch.randn(len(owner), d, generator=g), dim=1)
    feats = torch.randn(d, n, n, generator=g)
    t = time.perf_counter()
    index = PrototypeIndex.build(vectors, owner, c + 1)
    build = time.perf_counter() - t

    def product():
        return vectors @ F.normalize(feats.reshape(d, n * n), dim=0)

    def matching():
        return match_index(feats, index)

    product(), matching()  # warm up
    base, ours = [], []
    for _ in range(args.reps):
        t = time.perf_counter()
        product()
        base.append(time.perf_counter() - t)
        t = time.perf_counter()
        matching()
        ours.append(time.perf_counter() - t)
    tb, tm = statistics.median(base), statistics.median(ours)
    shape = f"{len(owner)}x{d} @ {d}x{n * n}"
    figure("match_product_ms", 1000 * tb, "ms", f"one product {shape}")
    figure("match_ms", 1000 * tm, "ms", f"one product {shape}: {tm / tb:.2f}x (target <= 1.3x)")
    figure("match_index_build_ms", 1000 * build, "ms", "once per vocabulary and extractor")
    mb = 1 << 20
    pe_base, pe_match = peak_extra(product), peak_extra(matching)
    figure("match_product_peak_extra_mib", pe_base / mb, "MiB", "-", digits=1)
    figure(
        "match_peak_extra_mib",
        pe_match / mb,
        "MiB",
        f"one product's {pe_base / mb:.1f} MiB: {pe_match / pe_base:.2f}x",
        digits=1,
    )


if __name__ == "__main__":
    main()
