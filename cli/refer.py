"""`protodb refer`: zero-shot referring segmentation (after Ref-Diff)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import (
    JsonOpt,
    echo,
    err,
    flag_errors,
    open_db,
    profile_notice,
    user_errors,
)


def refer(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="IMAGE... EXPRESSION: images (files, directories, globs) and, last, the "
            "expression; none with --from."
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Output directory: <stem>.png (1-bit mask), <stem>_overlay.png, "
            "<stem>_rle.json (COCO RLE), <stem>_attention.png, <stem>.json (summary, last).",
        ),
    ] = Path("refer-out"),
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help='JSONL of pairs, one {"image": PATH, "expression": TEXT, "id": STEM?} a '
            "line (paths relative to the file); streamed.",
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="The head noun to use (a word of the expression)."),
    ] = None,
    subject_method: Annotated[
        str,
        typer.Option(
            "--subject-method",
            help="auto (spaCy when an English model is installed, else rules), rules or spacy.",
        ),
    ] = "auto",
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Proposals: attention (threshold ladder 5..95 %), maskcut, sam, "
            "attention+maskcut or attention+sam. Default: sam (the reference's SAM ViT-H automatic "
            "masks, see --sam-model); attention on the tiny and world profiles.",
        ),
    ] = None,
    sam_model: Annotated[
        str | None,
        typer.Option(
            "--sam-model",
            help="SAM for the sam sources: hub id, local dir or tiny. Default: "
            "facebook/sam-vit-huge (the reference's ViT-H); e.g. facebook/sam-vit-base is "
            "smaller and faster.",
        ),
    ] = None,
    points_per_side: Annotated[
        int | None,
        typer.Option(
            "--points-per-side",
            help="SAM's N x N grid of point prompts. Default 32 (reference); 4 on the tiny "
            "and world profiles.",
        ),
    ] = None,
    points_per_batch: Annotated[
        int | None,
        typer.Option("--points-per-batch", help="Point prompts SAM decodes at once (64)."),
    ] = None,
    multimask: Annotated[
        bool | None,
        typer.Option(
            "--multimask/--best-mask",
            help="All three SAM masks of a point reach the filters (reference), or only the "
            "one of best predicted IoU.",
        ),
    ] = None,
    pred_iou_thresh: Annotated[
        float | None,
        typer.Option(
            "--pred-iou-thresh", help="Keep SAM masks of predicted IoU above this (0.88)."
        ),
    ] = None,
    stability_score_thresh: Annotated[
        float | None,
        typer.Option(
            "--stability-score-thresh",
            help="Keep SAM masks whose stability score (IoU of the mask at logit +1 and -1) "
            "reaches this (0.95; 0: off).",
        ),
    ] = None,
    box_nms_thresh: Annotated[
        float | None,
        typer.Option(
            "--box-nms-thresh",
            help="Drop a SAM mask whose box overlaps a better one above this IoU (0.7).",
        ),
    ] = None,
    discriminative: Annotated[
        bool,
        typer.Option(
            "--discriminative/--generator-only",
            help="Score proposals with CLIP too (hard + soft), or by attention alone.",
        ),
    ] = True,
    position_weight: Annotated[
        float | None,
        typer.Option(
            "--position-weight",
            help="Weight of the position score (each mask's mean left/right ramp) in the fused "
            "score; default 0: as in Ref-Diff the ramp acts through CLIP only.",
        ),
    ] = None,
    vocab: Annotated[
        str | None,
        typer.Option(
            "--vocab",
            help="Bank-aware mode: when the subject is a class of this vocabulary, its "
            "segmentation regions are further proposals and its score map a further score.",
        ),
    ] = None,
    skip_existing: Annotated[
        bool,
        typer.Option("--skip-existing", help="Skip pairs whose <stem>.json exists (resume)."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The region an expression refers to, in each image: one mask per (image, expression).

    Examples: protodb refer photo.jpg "the dog on the left" --out refer/ ;
    protodb refer --from pairs.jsonl --out refer/ --skip-existing
    """
    with user_errors():
        from dataclasses import replace

        from protodb.errors import ProtodbError

        args = list(args or [])
        if pairs is None:
            if len(args) < 2:
                raise ProtodbError(
                    "give IMAGE... and then the EXPRESSION, e.g. protodb refer photo.jpg "
                    "'the dog on the left' --out refer/ (or --from pairs.jsonl)"
                )
            images, expression = args[:-1], args[-1]
        else:
            if args:
                raise ProtodbError(
                    "with --from give no images or expression on the command line "
                    f"(got {args[0]!r})"
                )
            images, expression = [], None
        db = open_db(ctx)
        config = db.refer_config(discriminative=discriminative, subject_method=subject_method)
        if position_weight is not None:
            config = replace(config, weights=replace(config.weights, position=position_weight))
        given = {
            "source": source,
            "sam_model": sam_model,
            "points_per_side": points_per_side,
            "points_per_batch": points_per_batch,
            "multimask": multimask,
            "pred_iou_thresh": pred_iou_thresh,
            "stability_score_thresh": stability_score_thresh,
            "box_nms_thresh": box_nms_thresh,
        }
        given = {k: v for k, v in given.items() if v is not None}
        with flag_errors({k: "--" + k.replace("_", "-") for k in given}):
            config = replace(config, proposals=replace(config.proposals, **given))
        if not as_json:
            profile_notice(db)
            from protodb.profiles import get_profile

            clip_notice = get_profile(db.settings.profile).refer_clip_notice
            if discriminative and clip_notice:
                err(clip_notice)

        def report(s: dict) -> None:
            if not as_json:
                done = " (done before, skipped)" if s.get("skipped") else ""
                echo(
                    f"{s['image']}: {s['expression']!r} -> subject {s['subject']['word']!r} "
                    f"({s['subject']['method']}), {s['area']} px -> {s['mask_png']}{done}"
                )

        summaries = db.refer_files(
            out,
            images=images,
            expression=expression,
            pairs=pairs,
            subject=subject,
            vocab=vocab,
            config=config,
            progress=not quiet and not as_json,
            on_pair=report,
            skip_existing=skip_existing,
        )
        if as_json:
            typer.echo(json.dumps(summaries, indent=2))
