"""`protodb grounding train`: the grounding head of grounded diffusion (REFERENCE 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import JsonOpt, open_db, profile_notice, user_errors

grounding_app = typer.Typer(
    help="The grounding head: masks of named entities from the diffusion model's features.",
    no_args_is_help=True,
)


@grounding_app.command("train")
def grounding_train(
    ctx: typer.Context,
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary: generator and classes.")],
    classes: Annotated[
        Path, typer.Option("--classes", help="Text file of the seen classes, one a line.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory to save the head to.")],
    per_class: Annotated[
        int, typer.Option("--per-class", help="Synthetic images per seen class.")
    ] = 4,
    steps: Annotated[int, typer.Option("--steps", help="Training steps.")] = 300,
    masks: Annotated[
        str, typer.Option("--masks", help="Training masks: attention or vocab.")
    ] = "attention",
    seed: Annotated[int, typer.Option("--seed", help="Seed of images and training.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a grounding head on synthetic images of the seen classes (masks from `synth`'s
    training-free sources; the paper used Mask R-CNN masks) and save it (safetensors + config).

    Example: protodb grounding train --vocab world --classes seen.txt --out head/
    """
    with user_errors():
        from protodb.grounded.train import read_classes

        seen = read_classes(classes)
        db = open_db(ctx)
        if not as_json and not quiet:
            profile_notice(db)
        report = db.train_grounding(
            vocab=vocab,
            seen=seen,
            out=out,
            per_class=per_class,
            steps=steps,
            masks=masks,
            seed=seed,
            progress=not quiet and not as_json,
        )
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
            return
        typer.echo(
            f"grounding head {report.head_id}: {report.images} images of {len(report.seen)} seen "
            f"classes, {report.steps} steps (loss {report.loss_first:.3f} -> "
            f"{report.loss_last:.3f}) in {report.seconds:.1f} s; saved to {report.out}"
        )
