"""`protodb distill`: a fast student segmenter trained on a synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import JsonOpt, open_db, user_errors


def distill(
    ctx: typer.Context,
    vocab: Annotated[str, typer.Option("--vocab", help="The vocabulary the data was made with.")],
    data: Annotated[Path, typer.Option("--data", help="A dataset written by `protodb synth`.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to save the student to.")],
    steps: Annotated[int, typer.Option("--steps", help="Training steps.")] = 300,
    batch: Annotated[int, typer.Option("--batch", help="Images per step.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation and batches.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a small SegFormer on a synthetic dataset (one forward pass per image at query
    time) and save it in transformers' format; use it with `protodb segment --student`.

    Example: protodb distill --vocab v1 --data synth/ --out student/
    """
    with user_errors():
        report = open_db(ctx).distill(
            vocab=vocab,
            data=data,
            out=out,
            steps=steps,
            batch=batch,
            seed=seed,
            progress=not quiet and not as_json,
        )
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
            return
        typer.echo(
            f"student of {report.vocab}: {report.images} images, {report.steps} steps (loss "
            f"{report.loss_first:.3f} -> {report.loss_last:.3f}) in {report.seconds:.1f} s; "
            f"saved to {report.out}"
        )
