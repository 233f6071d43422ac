"""``segment --ray`` against the single-process ``segment``, on the tiny profile, in one run.

    python -m bench.bench_segment_ray [--images 20] [--workers 1 2] [--quick]

Builds a small bank (tiny profile: two classes, n=4, dinov2; about 20 s) and --images
deterministic PNGs (gradients, a disc, noise; 48-105 px), then times, each from a fresh start
of what it needs (models built, vocabulary assembled, files written):

- the single-process run: a new ``ProtoDB`` segmenting the folder (``db.segment``; the models
  are already built in this process, by the bank build, as in a long-lived Python session);
- a Ray run per entry of --workers on a local cluster of this machine started once before them
  (its start-up is printed, not counted): the actor pool started, each actor building the
  models and assembling the vocabulary, the images segmented and written.

Each Ray run's label PNGs are checked byte for byte against the single run's. Prints one figure
per Ray run, ``segment_ray_<n>w`` in images/s, its baseline the single-process run's images/s
(and the ratio), and ``segment_ray_<n>w_after_first``: the rate from the first image finished
to the last (actors started), against the single run's the same way. On tiny images the
actors' start-up (importing torch, building the models) is most of a run; the first figure says
what a small job costs, the second what a long one tends to.
--quick: 8 images, 1 worker.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.common import figure


def make_images(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(n):
        h, w = 48 + 3 * i, 64 + 2 * (i % 5)
        rng = np.random.default_rng(i)
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.zeros((h, w, 3))
        img[..., 0], img[..., 1] = 255 * xx / (w - 1), 255 * yy / (h - 1)
        img[(yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 4) ** 2] = (200, 30, 40)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:03d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.images, args.workers = 8, [1]

    import protodb
    from protodb.scale.cluster import connect, shutdown

    with tempfile.TemporaryDirectory(prefix="bench-seg-ray-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        db = protodb.connect(root / "bank", profile="tiny", device="cpu")
        db.add(["red apple", "grass"], n=4, extractors=("dinov2",), progress=False)
        db.create_vocab("v1", ["red apple", "grass"])
        make_images(root / "images", args.images)
        print(f"# bank and {args.images} images: {time.perf_counter() - start:.1f} s", flush=True)

        start = time.perf_counter()
        single = protodb.connect(root / "bank", profile="tiny", device="cpu")
        done: list[float] = []
        ref = single.segment(
            [root / "images"],
            vocab="v1",
            out=root / "single",
            progress=False,
            on_image=lambda s: done.append(time.perf_counter()),
        )
        t_single = time.perf_counter() - start
        rate_single = len(ref) / t_single
        steady_single = (len(done) - 1) / (done[-1] - done[0])
        print(
            f"# single process: {t_single:.1f} s, {rate_single:.2f} images/s; after its first "
            f"image {steady_single:.2f} images/s",
            flush=True,
        )

        start = time.perf_counter()
        info = connect("local")
        print(
            f"# Ray cluster of this machine ({info.cpus:g} CPUs) started in "
            f"{time.perf_counter() - start:.1f} s (not counted)",
            flush=True,
        )
        try:
            for n in args.workers:
                out = root / f"ray{n}"
                start = time.perf_counter()
                done = []
                got = db.segment(
                    [root / "images"],
                    vocab="v1",
                    out=out,
                    progress=False,
                    ray="local",
                    workers=n,
                    on_image=lambda s, done=done: done.append(time.perf_counter()),
                )
                t = time.perf_counter() - start
                steady = (len(done) - 1) / max(done[-1] - done[0], 1e-9)
                same = all(
                    Path(a["label_png"]).read_bytes() == Path(b["label_png"]).read_bytes()
                    for a, b in zip(ref, got, strict=True)
                )
                if not same:
                    raise SystemExit(f"{n} workers: label PNGs differ from the single run's")
                rate = len(got) / t
                figure(
                    f"segment_ray_{n}w",
                    rate,
                    "images/s",
                    f"single process {rate_single:.2f} images/s ({rate / rate_single:.2f}x); "
                    f"{len(got)} images in {t:.1f} s, tiny profile, labels byte-identical",
                    digits=2,
                )
                figure(
                    f"segment_ray_{n}w_after_first",
                    steady,
                    "images/s",
                    f"single process after its first image {steady_single:.2f} images/s "
                    f"({steady / steady_single:.2f}x)",
                    digits=2,
                )
        finally:
            shutdown(info)


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    main()
