"""Mask quality of synthetic images per source, on the learned TEST WORLD.

    python -m bench.bench_synth [--quick] [--per-class 4] [--n 8] [--seed 0] [--bank DIR]

Builds the learned world's bank (``protodb world bank``: every world class, n support images,
sd extractor, otsu masks; or reuses --bank), samples ``per-class`` compositions per class (1-3
things on a stuff class, the caption form the learned model was trained on), generates them
with the vocabulary's generator and scores each mask source against REFERENCE masks: the
colour-nearest pixels of each entity's class (protodb.grounded.reference; the learned generator's
images have no ground truth, the world's class colours stand in for it). Prints per source the
mIoU over classes and the seconds per image of that source, and the generation seconds per
image. ``--quick``: 1 composition per class.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 composition per class")
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--n", type=int, default=8, help="support images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bank", help="a world-learned bank with vocabulary 'world' to reuse")
    parser.add_argument("--grounding", help="a grounding head directory to score too")
    args = parser.parse_args()

    import numpy as np

    import protodb
    from protodb.grounded.compose import sample_compositions
    from protodb.grounded.entity_masks import agreement, attention_masks, vocab_masks
    from protodb.grounded.reference import MaskScore, reference_masks
    from protodb.grounded.run import vocab_generator
    from protodb.grounded.sampling import generate

    per_class = 1 if args.quick else args.per_class
    with tempfile.TemporaryDirectory() as tmp:
        bank = args.bank or str(Path(tmp) / "bank")
        db = protodb.connect(bank, profile="world-learned", device="cpu")
        if args.bank is None:
            db.build_world(n=args.n, seed=args.seed, progress=False)
        handle = db.vocab("world")
        classes = handle.info.class_names
        kind_of = {c.class_key: c.kind for c in db.classes()}
        kinds = [kind_of[c.class_key] for c in handle.info.classes]
        config = vocab_generator(db.open_existing(), handle.info)
        comps = sample_compositions(classes, kinds, per_class, args.seed)
        head = None
        if args.grounding:
            from protodb.grounded.grounding import GroundingHead

            head = GroundingHead.load(args.grounding)
        t = time.perf_counter()
        made = generate(comps, config, args.seed)
        gen_s = (time.perf_counter() - t) / len(made)
        scores = {k: MaskScore() for k in ("attention", "vocab", "grounding", "stuff-only")}
        secs = {k: 0.0 for k in scores}
        agree = []
        for g in made:
            names = [e.name for e in g.composition.entities]
            labels = [e.label for e in g.composition.entities]
            ref = reference_masks(g.image, names, labels)
            t = time.perf_counter()
            att = attention_masks(g.image, g.attention, labels)
            secs["attention"] += time.perf_counter() - t
            t = time.perf_counter()
            voc = vocab_masks(handle.segment(g.image).labels, labels)
            secs["vocab"] += time.perf_counter() - t
            # baseline: every pixel to the stuff entity, nothing to the things
            base = att.__class__(
                "stuff-only",
                np.stack(
                    [np.full(g.image.shape[:2], kind_of[n.casefold()] == "stuff") for n in names]
                ),
                labels,
            )
            for key, m in (("attention", att), ("vocab", voc), ("stuff-only", base)):
                scores[key].add(names, m, ref)
            if head is not None:
                t = time.perf_counter()
                gm = head.entity_masks(g.image, g.composition, config)
                secs["grounding"] += time.perf_counter() - t
                scores["grounding"].add(names, gm, ref)
            agree.append(agreement(att, voc))
    n = len(made)
    print(
        f"# learned test world: {n} images ({per_class} per class, seed {args.seed}); "
        "reference = colour-nearest pixels of each entity's class (not ground truth)"
    )
    figure("synth_generate", gen_s, "s/image")
    for key in ("attention", "vocab", "grounding"):
        if key == "grounding" and head is None:
            continue
        figure(
            f"synth_miou_{key}",
            100 * scores[key].miou,
            "mIoU %",
            f"stuff-only {100 * scores['stuff-only'].miou:.1f}",
            digits=1,
        )
        figure(f"synth_seconds_{key}", secs[key] / n, "s/image")
        print(
            "#   " + ", ".join(f"{k} {100 * v:.1f}" for k, v in sorted(scores[key].ious().items()))
        )
    figure("synth_agreement", float(np.mean(agree)), "mean IoU attention vs vocab")


if __name__ == "__main__":
    main()
