"""Peak host memory and time of prototype building and of segment at the paper's sizes.

    python -m bench.bench_memory [--size 512] [--n 8,16,32] [--extractors sd,dino,clip]
                                 [--reduced] [--quick] [--segment/--no-segment]
                                 [--workdir DIR] [--before-limit-gb GiB]

Models: the real architectures (Stable Diffusion 1.5's UNet / VAE / text encoder, DINO
ViT-B/8, CLIP ViT-B/16 with QuickGELU), built from the shipped configs (schemas/models,
open_clip's own) with seeded random weights, saved once under ``--workdir`` and loaded by
protodb's own loaders, as real weights would be. Support images: N seeded smooth random images
of ``--size`` px with a disc fg mask and a bg mask outside a larger disc.

Each configuration runs in a fresh ``spawn`` process: it loads the extractors (all of them,
as ``add`` does), puts one image through each (the weights load memory-mapped and become
resident only when used), records its resident memory (the models' weights and the
libraries), resets
the kernel's high-water mark (/proc/self/clear_refs), does the work, and reports the peak
(VmHWM; ru_maxrss where the reset is not allowed) and the wall time. Figures:

- ``protos_<before|after>_n<N>``: building one class's fg and bg prototypes with every
  extractor: "before" is the all-at-once path (features of all N images in float32, then
  scikit-learn on a float64 copy: protodb.synthesis.prototypes.extract_prototypes_reference);
  "after" is what ``add`` runs (extract_prototypes: 2 images per call on the CPU, running
  sums, float16 pool of masked rows, chunked K-means). Peak memory beyond the models, and time.
- ``segment_<before|after>``: one 640x427 image, windows of 448 and 336 (plus the whole image)
  through every extractor, against a vocabulary of 2 classes x 65 fg + 65 bg prototypes per
  extractor; "before" puts every window of a size through the extractor in one call (the
  behaviour before), "after" 2 windows per call.

``--reduced`` (or ``--size``) shrinks the input size of every extractor (the support images
and the windows' input; grids shrink by the square); the output states the size it ran at.
``--quick``: the smallest run (tests/test_bench.py runs it): the tiny twins at 64 px, N = 2
and 4, the figures meaningless beyond showing that every path runs.
A "before" configuration whose estimated peak (5.4x its float32 features, as measured at N = 8,
plus about 6 GiB of models) would exceed ``--before-limit-gb`` (default: the available memory
less 1.5 GiB) is skipped, saying so: it would push this machine out of memory. A configuration
whose process dies anyway is reported as such and the run goes on.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

from bench.common import (
    DEFAULT_WORKDIR,
    build_models,
    extractor_configs,
    figure,
    peak_rss,
    reset_peak_rss,
    rss,
)

# feature dims and stride per extractor at the real architectures (REFERENCE 1.4)
GEOMETRY = {"sd": (7680, 8), "dino": (768, 8), "clip": (768, 16)}
MB = 1 << 20
# the all-at-once path's peak beyond the models over its float32 features, measured at N = 8,
# 512 px (5,716 MiB for 1.06 GiB), and the models' and libraries' resident GiB at 512 px
BEFORE_FACTOR, MODELS_GB = 5.4, 6.0
# the same for the prototype stage alone (features, pooled rows, scikit-learn's float64
# copies: 11,325 MiB for 1.9 GiB at N = 16, 512 px) over about 1 GiB of libraries
STAGE_FACTOR, LIBS_GB = 5.5, 1.0


# --------------------------------------------------------------------------- inputs


def support_set(n: int, size: int):
    """N seeded smooth RGB images uint8 [N, size, size, 3], fg / bg disc masks bool [N, s, s]."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(1)
    low = torch.rand(n, 3, 8, 8, generator=g)
    images = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:size, :size]
    fg = np.zeros((n, size, size), bool)
    bg = np.zeros((n, size, size), bool)
    for i in range(n):
        cy, cx = rng.uniform(0.35, 0.65, 2) * size
        r = rng.uniform(0.2, 0.3) * size
        d = (yy - cy) ** 2 + (xx - cx) ** 2
        fg[i], bg[i] = d < r * r, d > (r + size / 16) ** 2
    return images, fg, bg


def target_image():
    """One 640x427 (W x H) seeded smooth RGB image, uint8 [427, 640, 3]."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(3)
    low = torch.rand(1, 3, 6, 9, generator=g)
    img = F.interpolate(low, size=(427, 640), mode="bicubic", align_corners=False)[0]
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- one configuration


def synthetic_features(start: int, stop: int, dim: int, grid: int):
    """Seeded stand-ins for one extractor's features of support images start..stop-1: float32
    [B, dim, grid, grid], each cell one of 48 fixed directions plus noise (so K-means finds
    structure, as in real features)."""
    import torch

    centres = torch.randn(48, dim, generator=torch.Generator().manual_seed(5)) * 2
    out = torch.empty(stop - start, dim, grid, grid)
    for j, i in enumerate(range(start, stop)):
        g = torch.Generator().manual_seed(100 + i)
        pick = torch.randint(0, 48, (grid * grid,), generator=g)
        out[j] = (centres[pick] + torch.randn(grid * grid, dim, generator=g)).T.reshape(
            dim, grid, grid
        )
    return out


def _stage(job: dict, fg, bg) -> int:
    """The prototype stage alone on synthetic sd-shaped features; returns the rows built."""
    import numpy as np

    from protodb.synthesis.prototypes import (
        PartOptions,
        PrototypeStream,
        support_prototypes_reference,
    )

    n, dim, grid = job["n"], GEOMETRY["sd"][0], job["size"] // GEOMETRY["sd"][1]
    if job["variant"] == "before":
        feats = np.concatenate(
            [synthetic_features(s, min(n, s + 8), dim, grid).numpy() for s in range(0, n, 8)]
        )
        pf, pb = support_prototypes_reference(feats, fg, bg)
    else:
        stream = PrototypeStream(fg, bg, PartOptions())
        for s in range(0, n, 2):
            stream.add(s, synthetic_features(s, min(n, s + 2), dim, grid))
        pf, pb = stream.finish()
    return len(pf) + len(pb)


def run_config(job: dict, queue) -> None:
    """In a fresh process: load the extractors, then one piece of work; puts a result dict."""
    import gc

    import torch

    torch.set_num_threads(job["threads"])
    from protodb.extractors.factory import get_extractor

    configs = extractor_configs(job["models"], job["size"]) if job["kind"] != "stage" else []
    extractors = [get_extractor(c, "cpu") for c in configs]
    if job["kind"] in ("protos", "stage"):
        images, fg, bg = support_set(job["n"], job["size"])
    else:
        image = target_image()
        segmenter = _segmenter(extractors, configs, job)
    # weights load memory-mapped: one image through each extractor makes them resident, so
    # the baseline below holds the models and the peak beyond it is the work's own
    warm = support_set(1, job["size"])[0]
    for ext in extractors:
        ext.extract(warm)
    gc.collect()
    base = rss()
    reset = reset_peak_rss()
    t = time.perf_counter()
    rows = 0
    if job["kind"] == "stage":
        rows = _stage(job, fg, bg)
    elif job["kind"] == "protos":
        from protodb.synthesis.prototypes import (
            PartOptions,
            extract_prototypes,
            extract_prototypes_reference,
        )

        for ext, cfg in zip(extractors, configs, strict=True):
            if job["variant"] == "before":
                pf, pb, _ = extract_prototypes_reference(ext, images, fg, bg)
            else:
                options = PartOptions(pool_dtype=cfg.store_dtype)
                pf, pb, _ = extract_prototypes(ext, images, fg, bg, options, batch=2)
            rows += len(pf) + len(pb)
            del pf, pb
            gc.collect()
    else:
        res = segmenter.segment(image)
        rows = int(res.labels.max())
    seconds = time.perf_counter() - t
    peak = peak_rss(reset)
    queue.put({"base": base, "peak": peak, "seconds": seconds, "rows": rows, "reset": reset})


def _segmenter(extractors, configs, job):
    """A Segmenter over 2 classes x 65 fg + 65 bg random prototypes per extractor."""
    import numpy as np

    from protodb.bank.vocab import VocabClass, VocabExtractor, Vocabulary
    from protodb.query.assemble import ExtractorPrototypes
    from protodb.query.config import QueryConfig
    from protodb.query.segment import Segmenter

    rng = np.random.default_rng(4)
    parts, vocab_ext = [], []
    for ext, cfg in zip(extractors, configs, strict=True):
        owner = np.concatenate([np.repeat([1, 2], 65), np.zeros(130, np.int64)])
        v = rng.standard_normal((len(owner), ext.dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ve = VocabExtractor(cfg.id, "t", cfg)
        vocab_ext.append(ve)
        parts.append(ExtractorPrototypes(ve, v, owner, []))
    vocab = Vocabulary(
        name="bench",
        classes=[VocabClass(n, n, "g", 0) for n in ("a", "b")],
        extractors=vocab_ext,
        versions={},
        bank_version=1,
    )
    batch = 99 if job["variant"] == "before" else None
    return Segmenter(vocab, parts, "cpu", QueryConfig(prefilter=False), batch=batch)


def measure(job: dict) -> dict | None:
    """Run one configuration in a fresh ``spawn`` process; its result dict, or None when the
    process died (e.g. killed by the kernel for memory), which the caller reports."""
    import queue as queues

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_config, args=(job, queue))
    proc.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except queues.Empty:
            if not proc.is_alive():
                print(
                    f"configuration {job['kind']} {job['variant']} N={job['n']} died "
                    f"(exit {proc.exitcode}; -9 is the kernel's out-of-memory kill)",
                    flush=True,
                )
                return None
    proc.join()
    if proc.exitcode:
        raise SystemExit(f"configuration {job} failed (exit {proc.exitcode})")
    return result


def before_and_after(job: dict, name: str, limit: float, estimate: float, why: str = "") -> dict:
    """Measure ``job``'s "before" and "after" variants: {"before"?: result, "after": result}.

    "before" is skipped, saying so, when its ``estimate`` (GiB) is over ``limit``, and left out
    when its process dies; a dead "after" ends the run (it is the figure the bench is for)."""
    res = {}
    if estimate > limit:
        print(
            f"skipped {name}: estimated peak {estimate:.0f} GiB{why} > --before-limit-gb {limit:g}",
            flush=True,
        )
    elif (got := measure({**job, "variant": "before"})) is not None:
        res["before"] = got
    res["after"] = measure({**job, "variant": "after"})
    if res["after"] is None:
        at = f" at N={job['n']}" if job["n"] else ""
        raise SystemExit(f"{job['kind']} after{at} died; see above")
    return res


def _gib(text: str) -> float:
    """``--before-limit-gb``: a positive, finite number of GiB."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of GiB (e.g. 12)")
    return value


def available_gb() -> float:
    """The kernel's MemAvailable in GiB (16 where /proc/meminfo is absent)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return 16.0


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="input px of every extractor (default: the paper's 512 on a GPU; 128 on a CPU, "
        "where 512 px with the models takes hours, and the header says REDUCED)",
    )
    parser.add_argument("--n", default="8,16,32", help="support set sizes")
    parser.add_argument("--extractors", default="sd,dino,clip")
    parser.add_argument("--reduced", action="store_true", help="256 px (a quarter of the work)")
    parser.add_argument("--quick", action="store_true", help="tiny twins, 64 px, N = 2, 4")
    parser.add_argument("--segment", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--stage",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also the prototype stage alone at --stage-size on synthetic sd-shaped features",
    )
    parser.add_argument("--stage-size", type=int, default=512)
    parser.add_argument(
        "--models",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="prototype building with the models (--no-models --no-segment: --stage only)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument(
        "--before-limit-gb",
        type=_gib,
        default=None,
        help="skip a 'before' configuration whose estimated peak exceeds this many GiB "
        "(default: this machine's available memory less 1.5 GiB)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where the random-weight models are saved (once)",
    )
    args = parser.parse_args(argv)
    if args.before_limit_gb is None:
        args.before_limit_gb = round(available_gb() - 1.5, 1)
    size, ns, names = args.size, [int(x) for x in args.n.split(",")], args.extractors.split(",")
    if size is None:
        import torch

        size = 512 if torch.cuda.is_available() else 128
    if args.reduced:
        size = 256
    if args.quick:
        size, ns = 64, [2, 4]
    unknown = [x for x in names if x not in GEOMETRY]
    if unknown:
        parser.error(f"--extractors {','.join(unknown)}: known {', '.join(GEOMETRY)}")
    t = time.perf_counter()
    if args.quick:
        models, what = dict.fromkeys(names, "tiny"), "the tiny twins (QUICK: a smoke run)"
    elif not (args.models or args.segment):
        models, what = {}, "no model"
    else:
        models, what = build_models(args.workdir, names), "random weights, real architectures"
    print(f"models ready in {time.perf_counter() - t:.0f} s: {models}", file=sys.stderr)
    real = "real size" if size == 512 else "REDUCED size; the paper's is 512 px"
    if not models:
        names = []
    print(
        f"bench_memory: {', '.join(names) or 'no extractor'} at {size} px ({real}), N = {ns}, CPU, "
        f"{args.threads} torch thread(s); {what}",
        flush=True,
    )
    job0 = {"models": models, "size": size, "threads": args.threads}
    if args.stage:
        _stage_figures(args, ns)
    after_peaks = {}
    for n in ns if args.models else ():
        feat_gb = sum(n * GEOMETRY[x][0] * (size // GEOMETRY[x][1]) ** 2 * 4 for x in names)
        feat_gb /= 1 << 30
        res = before_and_after(
            {**job0, "kind": "protos", "n": n},
            f"before at N={n}",
            args.before_limit_gb,
            BEFORE_FACTOR * feat_gb + MODELS_GB,
            f" ({feat_gb:.1f} GiB of float32 features x {BEFORE_FACTOR} + {MODELS_GB:.0f} GiB "
            "of models)",
        )
        _report(f"protos_n{n}", res, size)
        after_peaks[n] = res["after"]["peak"] - res["after"]["base"]
    if len(ns) > 1 and args.models:
        lo, hi = min(ns), max(ns)
        figure(
            "protos_after_extra_growth",
            after_peaks[hi] / max(after_peaks[lo], 1),
            "x",
            f"peak beyond the models at N={hi} over N={lo} (flat = 1.0; target: flat)",
        )
    if args.segment:
        res = before_and_after(
            {**job0, "kind": "segment", "n": 0}, "segment before", args.before_limit_gb, 0.0
        )
        _report("segment_640x427", res, size)
    return 0


def _stage_figures(args, ns: list[int]) -> None:
    """The prototype stage alone (no model) on synthetic features of the sd extractor's shape
    at ``--stage-size`` (512: [N, 7680, 64, 64], the paper's)."""
    size = args.stage_size
    grid = size // GEOMETRY["sd"][1]
    print(
        f"bench_memory stage: prototypes alone on synthetic sd-shaped features [N, 7680, {grid}, "
        f"{grid}] ({size} px), N = {ns}",
        flush=True,
    )
    job = {"models": {}, "size": size, "threads": args.threads, "kind": "stage"}
    extras = {}
    for n in ns:
        feat_gb = n * GEOMETRY["sd"][0] * grid * grid * 4 / (1 << 30)
        res = before_and_after(
            {**job, "n": n},
            f"stage before at N={n}",
            args.before_limit_gb,
            STAGE_FACTOR * feat_gb + LIBS_GB,
        )
        _report(f"stage_n{n}", res, size)
        extras[n] = res["after"]["peak"] - res["after"]["base"]
    if len(ns) > 1:
        lo, hi = min(ns), max(ns)
        figure(
            "stage_after_extra_growth",
            extras[hi] / max(extras[lo], 1),
            "x",
            f"peak beyond the libraries at N={hi} over N={lo} (flat = 1.0)",
        )


def _report(name: str, res: dict, size: int) -> None:
    after = res["after"]
    extra = (after["peak"] - after["base"]) / MB
    base = after["base"] / MB
    if "before" in res:
        b = res["before"]
        bextra = (b["peak"] - b["base"]) / MB
        libs = f"models+libs {b['base'] / MB:.0f} MiB"
        figure(f"{name}_before_peak_extra", bextra, "MiB", libs, 0)
        figure(
            f"{name}_after_peak_extra",
            extra,
            "MiB",
            f"before {bextra:.0f} MiB: {extra / max(bextra, 1e-9):.2f}x ({size} px)",
            0,
        )
        figure(f"{name}_before_s", b["seconds"], "s", "-", 1)
        figure(
            f"{name}_after_s",
            after["seconds"],
            "s",
            f"before {b['seconds']:.1f} s: {after['seconds'] / b['seconds']:.2f}x ({size} px)",
            1,
        )
    else:
        figure(f"{name}_after_peak_extra", extra, "MiB", f"before skipped ({size} px)", 0)
        figure(f"{name}_after_s", after["seconds"], "s", "before skipped", 1)
    figure(f"{name}_after_peak_total", after["peak"] / MB, "MiB", f"models+libs {base:.0f} MiB", 0)


if __name__ == "__main__":
    raise SystemExit(main())
