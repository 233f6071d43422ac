"""The grounding head on the learned TEST WORLD: seen vs unseen classes (REFERENCE 3 in miniature).

    python -m bench.bench_grounding [--quick] [--per-class 4] [--steps 300] [--scenes 24]
                                    [--bank DIR] [--masks attention]

Trains a head (protodb.grounded.train.train_grounding) on synthetic images of six seen world classes
(red disc, yellow star, purple square, grass, sky, sand), masks from the training-free
``attention`` source (the paper used Mask R-CNN masks), and scores it on procedural captioned
world scenes with EXACT masks: per-class IoU, mean over the seen classes and over the two unseen
ones (orange triangle, water), and their harmonic mean (hIoU, the ZS3 protocol's, shared with
``protodb eval --unseen``: protodb.evaluation.zs3). Baseline in the same run: the untrained head
(same architecture and features, its initial weights).
``--bank``: a world-learned bank with vocabulary ``world`` (else one is built, n=8).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import figure

SEEN = ["red disc", "yellow star", "purple square", "grass", "sky", "sand"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 image per class, 30 steps")
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--masks", default="attention")
    parser.add_argument("--bank")
    parser.add_argument("--save", help="also keep the head in this directory")
    args = parser.parse_args()

    import protodb
    from protodb.grounded.grounding import GroundingHead, new_head
    from protodb.grounded.run import vocab_generator
    from protodb.grounded.train import score_on_scenes

    per_class, steps = (1, 30) if args.quick else (args.per_class, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        bank = args.bank or str(Path(tmp) / "bank")
        db = protodb.connect(bank, profile="world-learned", device="cpu")
        if args.bank is None:
            db.build_world(n=8, seed=0, progress=False)
        out = args.save or str(Path(tmp) / "head")
        t = time.perf_counter()
        rep = db.train_grounding(vocab="world", seen=SEEN, out=out, per_class=per_class,
                                 steps=steps, masks=args.masks, progress=False)  # fmt: skip
        train_s = time.perf_counter() - t
        head = GroundingHead.load(out)
        gen = vocab_generator(db.open_existing(), db.vocab("world").info)
        t = time.perf_counter()
        trained = score_on_scenes(head, gen, n=args.scenes)
        score_s = (time.perf_counter() - t) / args.scenes
        # the untrained head (same architecture and features, initial weights) as the baseline
        import torch

        from protodb.grounded.grounding import Example, Features

        probe = Example(Features([torch.zeros(c, 1, 1) for c in head.config.channels],
                                 torch.zeros(77, head.config.text_dim)), [], None)  # fmt: skip
        blank = new_head(probe, dim=head.config.dim, info={"seen": SEEN})
        untrained = score_on_scenes(blank, gen, n=args.scenes)
    print(f"# learned test world: head trained on {rep.images} synthetic images of {len(SEEN)} "
          f"seen classes ({args.masks} masks; the paper used Mask R-CNN masks), {steps} steps, "
          f"loss {rep.loss_first:.3f} -> {rep.loss_last:.3f}; scored on {args.scenes} procedural "
          "scenes with exact masks")  # fmt: skip
    for split, seen in (("seen", True), ("unseen", False)):
        base = untrained.mean(seen)
        figure(f"grounding_miou_{split}", 100 * (trained.mean(seen) or 0.0), "mIoU %",
               f"untrained head {100 * (base or 0.0):.1f}", digits=1)  # fmt: skip
    hiou, base_h = trained.zs3().hiou, untrained.zs3().hiou  # ZS3: 2 s u / (s + u)
    figure("grounding_hiou", 100 * (hiou or 0.0), "hIoU %",
           f"untrained head {100 * (base_h or 0.0):.1f}", digits=1)  # fmt: skip
    print("#   " + ", ".join(f"{k}{'' if k in SEEN else ' (unseen)'} {100 * v:.1f}"
                          for k, v in sorted(trained.ious.items())))  # fmt: skip
    figure("grounding_train", train_s, "s", f"{rep.images} images, {steps} steps")
    figure("grounding_seconds", score_s, "s/image")


if __name__ == "__main__":
    main()
