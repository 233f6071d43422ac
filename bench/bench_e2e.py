"""End-to-end figures on the tiny profile: add, re-add, segment.

    python -m bench.bench_e2e [--n 4] [--images 5]

Prints one line per figure: name, value, unit, and the baseline it is compared with (measured in
the same run; these machines are noisy, so read ratios, not absolute seconds).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="support images per class")
    parser.add_argument("--images", type=int, default=5, help="images to segment")
    args = parser.parse_args()

    import protodb

    with tempfile.TemporaryDirectory() as tmp:
        db = protodb.connect(Path(tmp) / "bank", profile="tiny", device="cpu")
        t = time.perf_counter()
        db.add(["red apple", "grass"], n=args.n, progress=False)
        first = time.perf_counter() - t
        t = time.perf_counter()
        db.add(["red apple", "grass"], n=args.n, progress=False)
        again = time.perf_counter() - t
        db.create_vocab("v1", ["red apple", "grass"])
        handle = db.vocab("v1")
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(args.images)]
        handle.segment(images[0])  # warm: assemble + build the extractor
        t = time.perf_counter()
        for im in images:
            handle.segment(im)
        per_image = (time.perf_counter() - t) / len(images)
    figure("add_first_2_classes", first, "s", digits=2)
    figure("add_again_2_classes", again, "s", f"add_first ({again / first:.3f}x)")
    figure("segment_240x320", per_image * 1000, "ms/image", digits=1)


if __name__ == "__main__":
    main()
