"""The student against the prototype matcher of the same vocabulary, on the learned TEST WORLD.

    python -m bench.bench_student [--quick] [--per-class 4] [--steps 600] [--scenes 24]
                                  [--bank DIR] [--data DIR]

A synthetic dataset of the world vocabulary (``protodb synth``: per-class compositions, seed 1,
attention masks) trains the student (``protodb distill``: a small SegFormer from scratch); both
the student and the vocabulary's prototype matcher (``protodb eval``'s path: the world-learned
bank, sd extractor) are then scored on the same labelled world scenes (exact masks): mIoU of
both and images per second of both, measured in this one run. ``--bank``: a world-learned bank
with vocabulary ``world`` (else built, n=8); ``--data``: an existing synth dataset of it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 image per class, 100 steps")
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--bank")
    parser.add_argument("--data")
    args = parser.parse_args()

    import protodb
    from protodb.evaluation.datasets import open_dataset
    from protodb.evaluation.evaluate import MIoU, evaluate, label_map
    from protodb.grounded.student import Student
    from protodb.world.dataset import make_dataset

    per_class, steps = (1, 100) if args.quick else (args.per_class, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bank = args.bank or str(tmp / "bank")
        db = protodb.connect(bank, profile="world-learned", device="cpu")
        if args.bank is None:
            db.build_world(n=8, seed=0, progress=False)
        data = args.data or str(tmp / "synth")
        made = db.synth(vocab="world", out=data, per_class=per_class, seed=1, progress=False)
        rep = db.distill(vocab="world", data=data, out=tmp / "student", steps=steps,
                         progress=False)  # fmt: skip
        make_dataset(tmp / "scenes", n=args.scenes, seed=0)
        ds = open_dataset("world", tmp / "scenes")
        matcher = evaluate(db, "world", ds, progress=False)
        student = Student.load(tmp / "student")
        lut = label_map(student.classes, ds)
        meter = MIoU(len(ds.classes))
        pairs = [ds.load(s) for s in ds.samples]
        t = time.perf_counter()
        for image, gt in pairs:
            meter.update(lut[student.segment(image)], gt)
        student_s = time.perf_counter() - t
        # the matcher's time without file reads, as the student's
        handle = db.vocab("world", db.default_query_config(prefilter=False))
        handle.segment(pairs[0][0])  # prototypes assembled and models loaded before timing
        t = time.perf_counter()
        for image, _ in pairs:
            handle.segment(image)
        matcher_s = time.perf_counter() - t
    n = len(pairs)
    print(f"# learned test world: student trained on {len(made.ids)} synthetic images "
          f"(synth --per-class {per_class} --seed 1, attention masks) for {steps} steps "
          f"(loss {rep.loss_first:.3f} -> {rep.loss_last:.3f}, {rep.seconds:.0f} s); "
          f"both scored on {n} labelled world scenes (exact masks)")  # fmt: skip
    figure("student_miou", 100 * meter.miou(), "mIoU %",
           f"prototype matcher {100 * matcher.miou:.1f}", digits=1)  # fmt: skip
    speedup = matcher_s / student_s
    figure("student_images_per_s", n / student_s, "images/s",
           f"prototype matcher {n / matcher_s:.2f} ({speedup:.1f}x)", digits=2)  # fmt: skip


if __name__ == "__main__":
    main()
