"""Quality figures on the offline TEST WORLD (synthetic classes): mIoU and its ablations.

    python bench/bench_world.py [--quick] [--n 8] [--images 24] [--seed 0]

Builds the world's bank (every class, n support images) and its labelled scenes in a temporary
directory, evaluates the full pipeline and each ablation, and prints one line per figure:
name, value, unit, and the baseline (the README's figure for the full pipeline; the full run
of the same process for each ablation). ``--quick`` evaluates the first 8 scenes only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

try:
    from common import figure
except ImportError:  # run as bench.bench_world
    from bench.common import figure

README_MIOU = 87.5  # protodb world bank --n 8 --seed 0; world dataset --images 24 --seed 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="evaluate the first 8 scenes")
    parser.add_argument("--n", type=int, default=8, help="support images per class")
    parser.add_argument("--images", type=int, default=24, help="scenes in the dataset")
    parser.add_argument("--seed", type=int, default=0, help="support-set and scene seed")
    args = parser.parse_args()

    import protodb
    from protodb.evaluation.evaluate import ABLATIONS
    from protodb.world.dataset import make_dataset

    limit = 8 if args.quick else None
    default = (args.n, args.images, args.seed, limit) == (8, 24, 0, None)
    with tempfile.TemporaryDirectory() as tmp:
        db = protodb.connect(Path(tmp) / "bank", profile="world", device="auto")
        t = time.perf_counter()
        db.build_world(n=args.n, seed=args.seed, progress=False)
        build = time.perf_counter() - t
        make_dataset(Path(tmp) / "data", n=args.images, seed=args.seed)
        report = db.evaluate(
            "world",
            Path(tmp) / "data",
            vocab="world",
            limit=limit,
            ablations=list(ABLATIONS),
            progress=False,
        )
    full = report.full
    base = f"README {README_MIOU}" if default else "- (not the README's settings)"
    figure("world_build_8_classes", build, "s", digits=2)
    figure("world_miou", 100 * full.miou, "% mIoU", base, digits=1)
    figure("world_eval", 1000 * full.seconds / full.n_images, "ms/image", digits=1)
    for row in report.rows:
        if row.miou is None:
            continue  # not applicable on the world (the pre-filter needs a text encoder)
        figure(
            f"world_miou_without_{row.name}",
            100 * row.miou,
            "% mIoU",
            f"world_miou ({100 * row.delta:+.1f})",
            digits=1,
        )


if __name__ == "__main__":
    main()
