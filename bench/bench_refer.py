"""Referring segmentation (Ref-Diff, REFERENCE 2) on the test world's referring set: mIoU and
oIoU per mode, seconds per (image, expression) and the share of each stage.

    python bench/bench_refer.py [--images 24] [--seed 0] [--profile world-learned] [--bank DIR]

Profile ``world-learned`` (default): the attention is the shipped learned Stable Diffusion's own
(nothing drawn from ground truth); CLIP is the tiny random-weight twin, so every
"+ discriminative" row measures noise added to the generative score. The bank-aware rows use a
bank built on the same profile (support images sampled by the learned model, n=8, seed 0;
vocabulary ``sd``: the learned UNet's features only; ``world``: sd + the world's colour/texture
extractor), built in a temporary directory unless ``--bank`` names one built before (it is
built there if empty). Profile ``tiny``: random weights everywhere, timing only.

Modes: generator-only (the paper's generative-only variant: attention proposals, generative
score), + position (protodb: the position prior's mean ramp over each mask, weight 1),
+ discriminative (0.7 hard + 0.3 soft + 0.05 generative), bank-aware (vocabulary's class
regions and score map as further proposals and score, weight 1), and combinations.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

try:
    from common import figure
except ImportError:  # run as bench.bench_refer
    from bench.common import figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="referring scenes (2 expr each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="world-learned", choices=["world-learned", "tiny"])
    parser.add_argument("--bank", type=Path, default=None, help="reuse / build the bank here")
    parser.add_argument("--no-bank", action="store_true", help="skip the bank-aware rows")
    args = parser.parse_args()

    import protodb
    from protodb.refer.evaluate import evaluate_refer, folder_items
    from protodb.refer.scores import ScoreWeights
    from protodb.world.referring import make_referring_set

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "set"
        make_referring_set(data, n=args.images, seed=args.seed)
        items = folder_items(data)
        bank = args.bank or Path(tmp) / "bank"
        db = protodb.connect(bank, profile=args.profile, device="cpu")
        vocabs: list[str] = []
        if args.profile == "world-learned" and not args.no_bank:
            if "sd" not in {v.name for v in db.vocabs()}:
                db.build_world(n=8, seed=0, extractors=("sd", "world"), progress=False)
                names = db.vocab("world").info.class_names
                db.create_vocab("sd", names, extractors=["sd"], seed=0)
            vocabs = ["sd", "world"]
        base = db.refer_config(discriminative=False)
        pos = replace(base, weights=ScoreWeights(position=1.0))
        disc = db.refer_config(discriminative=True)
        modes = [
            ("generator_only", base, None),
            ("generator_position", pos, None),
            ("discriminative", disc, None),
            ("discriminative_position", replace(disc, weights=ScoreWeights(position=1.0)), None),
        ]
        for v in vocabs:
            modes += [
                (f"bank_{v}", base, v),
                (f"bank_{v}_position", pos, v),
                (f"bank_{v}_discriminative", disc, v),
            ]
        ref = None
        for name, config, vocab in modes:
            rep = evaluate_refer(
                db.referrer(config, vocab=vocab), items, dataset="world-referring", root=data
            )
            miou, oiou = 100 * rep.miou, 100 * rep.oiou
            base_txt = "-" if ref is None else f"generator_only {ref:.1f} ({miou - ref:+.1f})"
            figure(f"refer_{args.profile}_{name}_miou", miou, "% mIoU", base_txt, digits=1)
            figure(f"refer_{args.profile}_{name}_oiou", oiou, "% oIoU", digits=1)
            figure(f"refer_{args.profile}_{name}_best_proposal_miou", 100 * rep.best_proposal_miou,
                   "% mIoU", digits=1)  # fmt: skip
            figure(f"refer_{args.profile}_{name}_pr50", 100 * rep.precision["Pr@0.5"], "%",
                   digits=1)  # fmt: skip
            total = rep.seconds.get("total", 0.0)
            figure(f"refer_{args.profile}_{name}_time", total, "s/pair", digits=3)
            if name in ("generator_only", "discriminative", "bank_sd"):
                for stage, s in rep.seconds.items():
                    if stage != "total" and total:
                        figure(f"refer_{args.profile}_{name}_share_{stage}", 100 * s / total, "%",
                               digits=1)  # fmt: skip
            if ref is None:
                ref = miou
        figure(f"refer_{args.profile}_pairs", len(items), "expressions", digits=0)


if __name__ == "__main__":
    main()
