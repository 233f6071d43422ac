"""Quality figures on the offline TEST WORLD: mIoU through the learned path, its ablations, and
the drawn-attention oracle beside it (protodb.world.report, the same rows as
``protodb world report``).

    python -m bench.bench_world [--quick] [--n 8] [--images 24] [--seed 0]

Builds the banks (learned: sd + world extractors, otsu; learned with MaskCut masks; oracle) and
the labelled scenes in a temporary directory and prints one line per figure: name, value, unit
and its baseline (the learned path's full run for each learned row, the oracle's for each oracle
row; the README's figure for the two full runs at the default settings). ``--quick`` uses 8
scenes.
"""

from __future__ import annotations

import argparse
import re
import tempfile

from bench.common import figure

# protodb world report --n 8 --images 24 --seed 0 (README "The test world")
README_LEARNED = 27.3
README_ORACLE = 87.5


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 scenes")
    parser.add_argument("--n", type=int, default=8, help="support images per class")
    parser.add_argument("--images", type=int, default=24, help="scenes in the dataset")
    parser.add_argument("--seed", type=int, default=0, help="support-set and scene seed")
    args = parser.parse_args()

    from protodb.world.report import world_report

    images = 8 if args.quick else args.images
    default = (args.n, images, args.seed) == (8, 24, 0)
    with tempfile.TemporaryDirectory() as tmp:
        rep = world_report(tmp, n=args.n, images=images, seed=args.seed)
    readme = {"learned": README_LEARNED, "oracle": README_ORACLE}
    for path in ("learned", "oracle"):
        rows = [r for r in rep.rows if r.path == path]
        full = rows[0]
        base = f"README {readme[path]}" if default and readme[path] else "-"
        figure(f"world_{path}_miou", full.miou, "% mIoU", base, digits=1)
        for r in rows[1:]:
            if r.miou is None:
                continue
            delta = f"world_{path}_miou ({r.miou - full.miou:+.1f})"
            figure(f"world_{path}_{_slug(r.setting)}", r.miou, "% mIoU", delta, digits=1)
    for stage, s in rep.seconds.items():
        figure(f"world_time_{_slug(stage)}", s, "s", digits=1)


if __name__ == "__main__":
    main()
