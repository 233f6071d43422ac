"""Referring segmentation (Ref-Diff, REFERENCE 2) on the test world's referring set: mIoU and
oIoU per mode, seconds per (image, expression) and the share of each stage.

    python -m bench.bench_refer [--images 24] [--seed 0] [--profile world-learned] [--bank DIR]
    python -m bench.bench_refer --arch512 [--device cuda] [--pairs 2] [--points-per-side 32]

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
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.common import figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="referring scenes (2 expr each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="world-learned", choices=["world-learned", "tiny"])
    parser.add_argument("--bank", type=Path, default=None, help="reuse / build the bank here")
    parser.add_argument("--no-bank", action="store_true", help="skip the bank-aware rows")
    parser.add_argument(
        "--arch512",
        action="store_true",
        help="instead: seconds per pair at 512 px with SD 1.5's, CLIP ViT-B/16's and SAM "
        "ViT-H's real architectures (random weights), refer's default SAM proposals (32 x 32 "
        "points), on --device",
    )
    parser.add_argument(
        "--points-per-side", type=int, default=None, help="--arch512: SAM grid (default: 32)"
    )
    parser.add_argument("--quick", action="store_true", help="8 scenes, no bank-aware rows")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", type=int, default=2, help="--arch512: pairs timed")
    args = parser.parse_args()
    if args.arch512:
        arch512(args)
        return
    if args.quick:
        args.images, args.no_bank = 8, True

    import protodb
    from protodb.profiles import get_profile
    from protodb.refer.evaluate import evaluate_refer, folder_items
    from protodb.refer.scores import ScoreWeights
    from protodb.world.referring import make_referring_set

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "set"
        make_referring_set(data, n=args.images, seed=args.seed)
        items = folder_items(data)
        kinds: dict[str, set[str]] = {"position": set(), "size": set(), "class": set()}
        for line in (data / "pairs.jsonl").read_text().splitlines():
            row = json.loads(line)
            kind = {"left": "position", "right": "position", "big": "size", "small": "size"}
            kinds[kind.get(row["relation"], "class")].add(Path(row["mask"]).stem)
        bank = args.bank or Path(tmp) / "bank"
        db = protodb.connect(bank, profile=args.profile, device="cpu")
        vocabs: list[str] = []
        if get_profile(args.profile).test_world and not args.no_bank:  # world-learned
            if not bank.exists() or "sd" not in {v.name for v in db.vocabs()}:
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
            for kind, ids in kinds.items():  # by what tells the two things apart
                part = [r["iou"] for r in rep.rows if r["id"] in ids]
                if part:
                    figure(f"refer_{args.profile}_{name}_miou_{kind}",
                           100 * sum(part) / len(part), "% mIoU", digits=1)  # fmt: skip
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


def arch512(args) -> None:
    """Seconds per (image, expression) at 512 px through the real architectures (random
    weights: the figures are time only), the first pair excluded as warm-up."""
    import numpy as np
    import open_clip
    import torch

    from protodb.models.diffusion import random_sd_pipeline
    from protodb.refer.attention import default_attention_config
    from protodb.refer.proposals import ProposalConfig
    from protodb.refer.refer import ReferConfig, Referrer
    from protodb.world.referring import draw_referring_scene

    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    pipe = random_sd_pipeline(0).to(args.device, dtype)
    clip = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None).eval().to(args.device)
    proposals = ProposalConfig()  # refer's defaults: SAM ViT-H, 32 x 32 points, multimask
    if args.points_per_side:
        proposals = replace(proposals, points_per_side=args.points_per_side)
    sam = random_sam(proposals.sam_model).to(args.device)
    config = ReferConfig(
        attention=default_attention_config("default", size=512), proposals=proposals
    )
    referrer = Referrer(config, args.device, pipe=pipe, clip_net=clip, sam_net=sam)
    totals: dict[str, float] = {}
    wall = 0.0
    import time

    for i in range(args.pairs + 1):
        image, refs = draw_referring_scene(np.random.default_rng([args.seed, i]), (384, 512))
        t = time.perf_counter()
        r = referrer.refer(image, refs[0].expression)
        if i == 0:
            continue  # warm-up
        wall += time.perf_counter() - t
        for k, v in r.seconds.items():
            totals[k] = totals.get(k, 0.0) + v
    n = args.pairs
    dev = args.device.split(":")[0]
    print(
        f"# SAM {proposals.sam_model} (random weights), {proposals.points_per_side} x "
        f"{proposals.points_per_side} points; proposals of the last pair: {len(r.proposals)}"
    )
    figure(f"refer_arch512_{dev}_time", wall / n, "s/pair", digits=2)
    for k, v in totals.items():
        figure(f"refer_arch512_{dev}_share_{k}", 100 * v / wall, "%", digits=1)


def random_sam(model: str):
    """SAM built from its shipped architecture config (schemas/models) with random weights."""
    from transformers import SamConfig, SamModel

    from protodb.models.architectures import architectures, shipped_config

    (arch,) = [a for a in architectures().values() if a.model == model and a.config]
    cfg = dict(shipped_config(arch.config))
    cfg.pop("model_type")
    return SamModel(SamConfig(**cfg)).eval()


if __name__ == "__main__":
    main()
