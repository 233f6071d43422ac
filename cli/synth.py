"""`protodb synth`: a labelled synthetic dataset made with a vocabulary's generator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import JsonOpt, flag_errors, open_db, profile_notice, user_errors

#: the flag of each parameter of protodb.grounded.run.synthesize, for the library's errors
FLAGS = {
    "min_agreement": "--min-agreement",
    "seed": "--seed",
    "per_prompt": "--per-prompt",
    "per_class": "--per-class",
}


def synth(
    ctx: typer.Context,
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary: its classes, generator.")],
    out: Annotated[Path, typer.Option("--out", help="Dataset directory (new, or resumed).")],
    per_class: Annotated[
        int | None,
        typer.Option(
            "--per-class",
            help="Compositions per class: 1-3 things on a stuff class, by a seeded sampler.",
        ),
    ] = None,
    prompt: Annotated[
        list[str] | None,
        typer.Option("--prompt", help="A prompt naming vocabulary classes (repeatable)."),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from", help="A text file of prompts, one a line.")
    ] = None,
    per_prompt: Annotated[int, typer.Option("--per-prompt", help="Images per prompt.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of compositions and noise.")] = 0,
    masks: Annotated[
        str,
        typer.Option("--masks", help="Masks written: attention, vocab or grounding."),
    ] = "attention",
    proposals: Annotated[
        str,
        typer.Option(
            "--proposals",
            help="Foreground of the attention masks: otsu (thresholds), or eq. (1) over "
            "maskcut / sam proposals.",
        ),
    ] = "otsu",
    min_agreement: Annotated[
        float | None,
        typer.Option(
            "--min-agreement",
            help="Refuse images whose attention and vocabulary masks agree less (mean IoU).",
        ),
    ] = None,
    grounding: Annotated[
        Path | None,
        typer.Option("--grounding", help="Grounding head directory (for --masks grounding)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate images with a mask per named entity: a VOC-layout dataset with COCO RLE JSON
    and the provenance of every image; keyed (same key, same bytes) and resumable.

    Example: protodb synth --vocab v1 --per-class 8 --out synth/ --min-agreement 0.3
    """
    with user_errors(), flag_errors(FLAGS):
        from protodb.grounded.compose import read_prompts

        prompts = list(prompt or [])
        if from_file is not None:
            prompts += read_prompts(from_file)
        db = open_db(ctx)
        if not as_json and not quiet:
            profile_notice(db)
        report = db.synth(
            vocab=vocab,
            out=out,
            per_class=per_class,
            prompts=prompts if (prompt is not None or from_file is not None) else None,
            per_prompt=per_prompt,
            seed=seed,
            masks=masks,
            proposals=proposals,
            min_agreement=min_agreement,
            grounding=grounding,
            progress=not quiet and not as_json,
        )
        data = report.to_dict()
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        mean = data["mean_agreement"]
        typer.echo(
            f"synth: {report.made} images made ({report.accepted} kept, {report.rejected} "
            f"below --min-agreement), {report.skipped} already there; {len(report.ids)} images "
            f"in {out}" + ("" if mean is None else f"; mean agreement {mean:.2f}")
        )
