"""Cost of attention capture: generation with vs without it, same model, settings and inputs.

    python -m bench.bench_capture [--images 8] [--steps 10] [--repeats 3] [--size 64]

Runs the tiny-profile Stable Diffusion twin on the CPU (or --profile default --device cuda for
the real SD 1.5). Alternates the two modes and keeps each mode's best time, so the ratio is
measured in one run under the same load. Target: ratio <= 1.10. The images must be identical
with and without capture (the capture wraps each layer's own attention processor).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from protodb.synthesis.generate import default_generator_config, generate_sd

    cfg = default_generator_config(args.profile, steps=args.steps, unet_batch=args.images)
    idx = list(range(args.images))

    def run(capture: bool):
        t = time.perf_counter()
        out = generate_sd(
            "red apple", "red apple", cfg, 0, idx, device=args.device,
            batch_size=args.images, capture=capture,
        )  # fmt: skip
        return time.perf_counter() - t, out

    run(False)  # warm: load the model
    best = {True: float("inf"), False: float("inf")}
    for _ in range(args.repeats):
        for capture in (False, True):
            seconds, out = run(capture)
            best[capture] = min(best[capture], seconds)
            images = np.stack([s.image for s in out])
            if capture:
                with_images = images
            else:
                without_images = images
    assert np.array_equal(with_images, without_images), "capture changed the images"
    ratio = best[True] / best[False]
    figure("generate_without_capture", best[False], "s", digits=2)
    figure(
        "generate_with_capture", best[True], "s", f"without capture ({ratio:.3f}x; target <= 1.10)",
        digits=2,
    )  # fmt: skip


if __name__ == "__main__":
    main()
