"""Seconds per class of ``add`` (generate, masks, features, prototypes, bank write), by stage.

    python -m bench.bench_synthesis --random-weights [--device cpu|cuda] [--n 32] [--steps 30]
                                    [--size 512] [--extractors sd,dino,clip] [--json]
                                    [--repeats 2] [--workdir DIR] [--threads T]
    python -m bench.bench_synthesis --tiny | --quick     # the tiny twins (a smoke run)

Models (``--random-weights``, the default): the real architectures (Stable Diffusion 1.5's
UNet / VAE / text encoder, DINO ViT-B/8, CLIP ViT-B/16 with QuickGELU) built from the
configs shipped in the repository with seeded random weights, saved once under ``--workdir``
(bench/common.py build_models; the build time is reported, not counted) and loaded by
protodb's own loaders on ``--device``, as real weights would be (every weight read once, so
memory-mapped weights are resident before the clock starts; on CUDA one short sampling and
extraction warm the kernels up). No weight is downloaded.

What is timed: the library's own ``add`` of one class into a fresh bank
(protodb.synthesis.add.add_class, the function ``protodb add`` and ProtoDB.add call; no copy
of the pipeline here), with the models already loaded. Its stage breakdown is the one
``add`` records itself (AddResult.timings, protodb.timing: exclusive seconds per stage, the
CUDA device synchronised at every stage boundary). Then, in the same run, the same support
images of the first denoiser call (same class, seed and indices; every call has the same
shape) are sampled again, without and with the attention capture, alternated ``--repeats``
times: the capture's overhead is the difference of the best sampling seconds of each mode
(all after the add, so none pays a first call's costs; on the CPU the process's CPU seconds,
which a shared machine's load moves far less than wall seconds), and the images must be
identical to the add's.

Peak memory: on CUDA torch.cuda.max_memory_allocated over the add (and the models' resident
bytes before it); on the CPU the process's peak resident memory over the add (VmHWM, reset
before the add where the kernel allows) and the resident memory before it (the models).

Size: by default the paper's, N = 32 support images, 30 DPM-Solver++ steps, 512 px, on CUDA
(one call, well within 5 minutes on an H200: build the models, load, warm up, add, re-sample).
On the CPU the default is REDUCED (N = 2, 2 steps, 256 px: 3-6 minutes on one busy core) and
the output says so; ``--n``, ``--steps``, ``--size`` set the size on either device.
Sampling batches ``min(--unet-batch, N)`` images per denoiser call (8: N = 32 is 4 full calls;
a smaller N is one call of N images, never padded).

Output: a table of the stages (seconds, share of the class's seconds), then the figure lines
of bench/common.py (``synthesis_*``); ``--json``: one JSON object instead.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
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

FULL = {"n": 32, "steps": 30, "size": 512}
REDUCED = {"n": 2, "steps": 2, "size": 256}
QUICK = {"n": 2, "steps": 1, "size": 64}
CLASS = "red apple"
MB = 1 << 20


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--random-weights",
        action="store_true",
        help="the real architectures with seeded random weights (the default)",
    )
    source.add_argument("--tiny", action="store_true", help="the tiny twins (profile tiny)")
    source.add_argument(
        "--quick", action="store_true", help="the tiny twins at N = 2, 1 step, 64 px (a smoke run)"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--n", type=int, default=None, help="support images (paper: 32)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (paper: 30)")
    parser.add_argument("--size", type=int, default=None, help="image px (paper: 512)")
    parser.add_argument("--unet-batch", type=int, default=8, help="images per denoiser call")
    parser.add_argument("--extractors", default="sd,dino,clip")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where the random-weight models are saved (once)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="samplings without and with capture, alternated, for the overhead (best of each)",
    )
    parser.add_argument("--bank", type=Path, default=None, help="bank directory (default: temp)")
    args = parser.parse_args(argv)
    args.names = [x for x in args.extractors.split(",") if x]
    unknown = [x for x in args.names if x not in ("sd", "dino", "clip")]
    if unknown:
        parser.error(f"--extractors {','.join(unknown)}: use sd, dino, clip")
    return args


def resolve_size(args, device: str) -> tuple[dict, str]:
    """The (n, steps, size) to run and a line saying whether it is the paper's."""
    given = {k: getattr(args, k) for k in FULL if getattr(args, k) is not None}
    if args.quick:
        base, why = QUICK, "QUICK smoke run"
    elif device.startswith("cuda") or given:
        base, why = FULL, None
    else:
        base, why = REDUCED, "REDUCED for the CPU (the paper's size takes hours there)"
    size = {**base, **given}
    full = "N = 32, 30 steps, 512 px"
    if size == FULL:
        return size, f"the paper's size ({full})"
    return size, f"{why or 'REDUCED'}; the full size is {full} (--device cuda)"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import numpy as np
    import torch

    from protodb import timing
    from protodb.errors import ProtodbError
    from protodb.models.diffusion import load_sd, sd_dtype
    from protodb.models.loading import TINY, TINY_VERSION
    from protodb.names import class_key
    from protodb.settings import resolve_device
    from protodb.synthesis.add import add_class
    from protodb.synthesis.generate import GeneratorConfig, generate_sd

    try:
        device = resolve_device(args.device or "auto")  # as add resolves it
    except ProtodbError as err:
        print(err, file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    size, size_note = resolve_size(args, device)
    n, steps, px = size["n"], size["steps"], size["size"]
    unet_batch = max(1, min(args.unet_batch, n))
    tiny = args.tiny or args.quick
    log = print if not args.json else (lambda *a, **k: print(*a, **k, file=sys.stderr))

    # ---- models: built once (not counted), then loaded by protodb's loaders (counted apart)
    t = time.perf_counter()
    if tiny:
        models = dict.fromkeys(["sd", *args.names], TINY)
        what = "tiny twins"
    else:
        models = build_models(args.workdir, sorted({"sd", *args.names}))
        what = "real architectures, random weights"
    build_s = time.perf_counter() - t
    if tiny:
        gen = GeneratorConfig(model=TINY, weights=TINY_VERSION, steps=steps, size=px)
    else:
        gen = GeneratorConfig(model=models["sd"], steps=steps, size=px)
    gen = replace(gen, unet_batch=unet_batch)
    exts = extractor_configs({x: models[x] for x in args.names}, px)

    from protodb.extractors.factory import get_extractor

    t = time.perf_counter()
    pipe = load_sd(gen.model, gen.revision, device, sd_dtype(device), gen.final_sigmas_type)
    extractors = [get_extractor(e, device) for e in exts]
    make_resident(pipe, *extractors)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t
    log(
        f"bench_synthesis: {what} on {device} ({sd_dtype(device)} Stable Diffusion); "
        f"N = {n}, {steps} steps, {px} px: {size_note}; extractors {', '.join(args.names)}; "
        f"{torch.get_num_threads()} torch CPU thread(s); models built in {build_s:.1f} s, "
        f"loaded in {load_s:.1f} s",
        flush=True,
    )

    # ---- warm-up on CUDA (kernel selection, allocator): one short sampling and extraction
    warm_s = 0.0
    if device.startswith("cuda"):
        t = time.perf_counter()
        generate_sd("warm up", "warm up", replace(gen, steps=1), 0, [0], device=device)
        dummy = np.zeros((min(2, n), px, px, 3), np.uint8)
        for ext in extractors:
            ext.extract(dummy)
        torch.cuda.synchronize()
        warm_s = time.perf_counter() - t

    # ---- the timed add of one class into a fresh bank
    with tempfile.TemporaryDirectory() as tmp:
        import protodb

        bank = protodb.connect(args.bank or Path(tmp) / "bank", device=device).bank
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base_mem = torch.cuda.memory_allocated()
        else:
            base_mem = rss()
            reset = reset_peak_rss()
        res = add_class(
            bank, CLASS, generator=gen, extractors=exts, seed=0, n=n, device=device,
            batch_size=unet_batch, progress=False, kind="thing",
        )  # fmt: skip
        if device.startswith("cuda"):
            peak_mem = torch.cuda.max_memory_allocated()
        else:
            peak_mem = peak_rss(reset)
        if res.status != "added" or len(res.built) != len(exts):
            print(f"add did not build every set: {res}", file=sys.stderr)
            return 1
        stored = sorted(bank.supports(class_key(CLASS), gen.id, 0).to_pylist(), key=_index)
        from protodb.images import decode_png

        with_capture = np.stack([decode_png(r["image_png"]) for r in stored])

        # ---- the first denoiser call's images sampled again, without and with the attention
        # capture, alternated (after the add, so neither pays a first call's costs; the best
        # of each mode, so a busy machine's slow moments count least; one call, as every call
        # has the same shape); the images must be the add's
        best = {False: math.inf, True: math.inf}
        identical = True
        idx = list(range(unet_batch))
        # on the CPU this process's CPU seconds: a shared machine's load moves wall seconds
        # by tens of percent between two runs of the same work
        clock = None if device.startswith("cuda") else time.process_time
        for _ in range(max(1, args.repeats)):
            for capture in (False, True):
                again = timing.StageTimer(device, clock)
                with timing.active(again), timing.stage("sampling"):
                    made = generate_sd(
                        CLASS, class_key(CLASS), gen, 0, idx, device=device,
                        batch_size=unet_batch, capture=capture,
                    )  # fmt: skip
                best[capture] = min(best[capture], again.seconds["sampling"])
                images = np.stack([s.image for s in made])
                identical &= bool(np.array_equal(images, with_capture[: len(idx)]))

    times = dict(res.timings)
    plain, captured = best[False], best[True]
    calls = math.ceil(n / unet_batch)
    out = {
        "device": device,
        "models": what,
        "sd_dtype": sd_dtype(device),
        "n": n,
        "steps": steps,
        "size": px,
        "full_size": size == FULL,
        "size_note": size_note,
        "extractors": args.names,
        "torch_threads": torch.get_num_threads(),
        "unet_batch": unet_batch,
        "denoiser_calls": calls,
        "padded_images": calls * unet_batch - n,
        "build_s": build_s,
        "load_s": load_s,
        "warmup_s": warm_s,
        "seconds_per_class": res.seconds,
        "stages": times,
        "repeats": max(1, args.repeats),
        "resampled_images": unet_batch,
        "resampling_clock": "wall" if device.startswith("cuda") else "cpu",
        "resampling_without_capture_s": plain,
        "resampling_with_capture_s": captured,
        "capture_overhead_s": captured - plain,
        "capture_overhead": (captured - plain) / plain if plain > 0 else None,
        "images_identical_without_capture": identical,
        "peak_memory_bytes": peak_mem,
        "memory_before_bytes": base_mem,
        "memory_kind": "cuda max_memory_allocated" if device.startswith("cuda") else "peak RSS",
        "prototypes": {e.name: res.prototypes[e.id] for e in exts},
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        report(out)
    return 0


def _index(row: dict) -> int:
    return row["index"]


def make_resident(*holders) -> None:
    """Read every parameter and buffer of the models ``holders`` hold (a pipeline's
    components, an extractor's modules) once: weights loaded memory-mapped become resident
    here, not in the first timed call."""
    import torch

    modules = []
    for h in holders:
        if isinstance(h, torch.nn.Module):
            modules.append(h)
        for v in [*vars(h).values(), *getattr(h, "components", {}).values()]:
            if isinstance(v, torch.nn.Module):
                modules.append(v)
            elif hasattr(v, "components"):  # a pipeline an extractor holds
                modules += [m for m in v.components.values() if isinstance(m, torch.nn.Module)]
    seen = set()
    with torch.no_grad():
        for m in modules:
            for t in [*m.parameters(), *m.buffers()]:
                if id(t) not in seen:
                    seen.add(id(t))
                    t.sum()


# the order of the table; stages not listed follow in the order add recorded them
ORDER = (
    "sampling", "vae decode", "text encoder", "capture", "supports write", "masks",
    "features sd", "features dino", "features clip", "prototypes sd", "prototypes dino",
    "prototypes clip", "bank write sd", "bank write dino", "bank write clip",
)  # fmt: skip


def report(out: dict) -> None:
    """The table and the figure lines."""
    total = out["seconds_per_class"]
    stages = out["stages"]
    names = [s for s in ORDER if s in stages] + [s for s in stages if s not in ORDER]
    print(
        f"\nadd of one class: {out['n']} images, {out['steps']} steps, {out['size']} px on "
        f"{out['device']} ({out['models']}; {out['size_note']})"
    )
    print(f"{'stage':<34}{'seconds':>10}{'share':>8}")
    for name in names:
        s = stages[name]
        label = name
        if name == "sampling":
            label = "sampling (denoising, with capture)"
        print(f"{label:<34}{s:>10.2f}{100 * s / total:>7.1f}%")
    print(f"{'total (seconds per class)':<34}{total:>10.2f}{100.0:>7.1f}%")
    over = out["capture_overhead"]
    over_txt = "n/a" if over is None else f"{100 * over:+.1f}%"
    print(
        f"{out['resampled_images']} images sampled again (best of {out['repeats']}, "
        f"{out['resampling_clock']} seconds): without capture "
        f"{out['resampling_without_capture_s']:.2f} s, with "
        f"{out['resampling_with_capture_s']:.2f} s -> capture overhead "
        f"{out['capture_overhead_s']:+.2f} s ({over_txt}; target <= 10 %); images identical: "
        f"{out['images_identical_without_capture']}"
    )
    kind = out["memory_kind"]
    print(
        f"peak memory ({kind}): {out['peak_memory_bytes'] / MB:.0f} MiB "
        f"(before the add: {out['memory_before_bytes'] / MB:.0f} MiB)"
    )
    print(
        f"denoiser calls: {out['denoiser_calls']} x {out['unet_batch']} images "
        f"({out['padded_images']} padded); models built in {out['build_s']:.1f} s, loaded in "
        f"{out['load_s']:.1f} s, warm-up {out['warmup_s']:.1f} s (not counted)\n",
        flush=True,
    )
    tag = "" if out["full_size"] else f" (REDUCED: N={out['n']}, {out['steps']} steps, "
    tag += "" if out["full_size"] else f"{out['size']} px)"
    figure("synthesis_s_per_class", total, "s", f"-{tag}", 2)
    for name in names:
        figure(f"synthesis_{name.replace(' ', '_')}_s", stages[name], "s", digits=2)
    if over is not None:
        figure(
            "synthesis_capture_overhead", 100 * over, "%",
            f"sampling without capture {out['resampling_without_capture_s']:.2f} "
            f"{out['resampling_clock']} s "
            "(target <= 10 %)", 1,
        )  # fmt: skip
    unit = "MiB (cuda allocated)" if out["device"].startswith("cuda") else "MiB (peak RSS)"
    figure(
        "synthesis_peak_memory", out["peak_memory_bytes"] / MB, unit,
        f"before the add {out['memory_before_bytes'] / MB:.0f} MiB", 0,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
