"""`protodb add`: sample, mask, extract and store prototypes for classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import (
    JsonOpt,
    RayOpt,
    WorkersOpt,
    err,
    flag_errors,
    open_db,
    profile_notice,
    user_errors,
)
from protodb.synthesis.request import DEFAULTS

#: the flag of each protodb.synthesis.request.AddRequest parameter, for the library's errors
FLAGS = {
    "n": "--n",
    "seed": "--seed",
    "parts": "--parts",
    "mask_source": "--mask-source",
    "batch_size": "--batch-size",
    "kind": "--stuff/--thing",
}


def add(
    ctx: typer.Context,
    classes: Annotated[
        list[str] | None,
        typer.Argument(help="Class names, e.g. 'donut with chocolate glaze'.", show_default=False),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from", help="Read class names from a file, one per line.")
    ] = None,
    n: Annotated[
        int, typer.Option("--n", help="Support images per class (paper: 32).")
    ] = DEFAULTS.n,
    seed: Annotated[
        list[int] | None,
        typer.Option("--seed", help="Support-set seed (repeatable: one set per seed; default 0)."),
    ] = None,
    extractor: Annotated[
        list[str] | None,
        typer.Option(
            "--extractor",
            help="Feature extractor: sd, dino, clip, mae, dinov2 (repeatable; default the "
            "paper's ensemble sd + dino + clip; tiny profile: dinov2).",
        ),
    ] = None,
    stuff: Annotated[
        bool | None,
        typer.Option(
            "--stuff/--thing",
            help="Declare the classes stuff or thing (default: the shipped lexicon, else a "
            "guess from the support set).",
            show_default=False,
        ),
    ] = None,
    mask_source: Annotated[
        str,
        typer.Option(
            "--mask-source",
            "--segmenter",
            help="fg/bg masks: otsu (multi-Otsu on attribution), maskcut or sam (eq. (1) over "
            "normalized-cut / SAM proposals).",
        ),
    ] = DEFAULTS.mask_source,
    parts: Annotated[
        int,
        typer.Option(
            "--parts",
            help="K, part prototypes per polarity (K-means; paper: 32). --mask-source, --n "
            "and --parts make a set's recipe: another value builds another set.",
        ),
    ] = DEFAULTS.parts,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Sampling steps (default 30; tiny: 10).")
    ] = None,
    guidance: Annotated[
        float | None, typer.Option("--guidance", help="Classifier-free guidance (default 8).")
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template", help="Prompt template with one {} (default 'A good picture of a {}')."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Stable Diffusion hub id or local directory, for the generator and the sd "
            "extractor.",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            help="Images per generator call (results never depend on it).",
        ),
    ] = DEFAULTS.batch_size,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate support images for classes and store their prototypes in the bank.

    Re-adding an existing (class, generator, seed, extractor, recipe) set generates nothing;
    another --mask-source, --n or --parts is another recipe, so another set.

    With --ray, each (class, seed) is a unit of work on a Ray actor that keeps its models
    loaded; this process alone writes the bank, as it does without Ray.

    Example: protodb --bank bank/ add "red apple" grass --n 4
    """
    with user_errors(), flag_errors(FLAGS):
        names = _class_names(classes, from_file)
        executor = _executor(ray, workers)
        db = open_db(ctx)
        profile_notice(db)
        results = db.add(
            names,
            n=n,
            seed=seed or None,
            extractors=extractor or None,
            steps=steps,
            guidance=guidance,
            template=template,
            model=model,
            batch_size=batch_size,
            progress=not quiet and not as_json,
            on_result=None if as_json else _report,
            kind=None if stuff is None else ("stuff" if stuff else "thing"),
            mask_source=mask_source,
            parts=parts,
            executor=executor,
        )
        if as_json:
            typer.echo(json.dumps([r.__dict__ for r in results], indent=2))
        elif executor is not None:
            _report_workers(executor)


def _class_names(classes: list[str] | None, from_file: Path | None) -> list[str]:
    """The class arguments, then the lines of the --from file."""
    from protodb.errors import ProtodbError

    names = list(classes or [])
    if from_file is not None:
        try:
            text = from_file.read_text("utf-8")
        except OSError as e:
            raise ProtodbError(
                f"cannot read --from file {str(from_file)!r}: {e.strerror}"
            ) from None
        names += [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise ProtodbError("no class given: protodb add CLASS [CLASS...] (or --from FILE)")
    return names


def _executor(ray: str | None, workers: int | None):
    """The RayExecutor of --ray / --workers, or None (this process)."""
    from protodb.errors import ProtodbError

    if workers is not None and ray is None:
        raise ProtodbError(f"--workers {workers} needs --ray; add --ray (a local cluster)")
    if ray is None:
        return None
    from protodb.scale.add import RayExecutor
    from protodb.scale.cluster import check_address, require_ray

    executor = RayExecutor(address=check_address(ray), workers=workers)
    require_ray()
    return executor


def _report(r) -> None:
    """One line per (class, seed) as it is done (an AddResult)."""
    if r.status == "exists":
        typer.echo(
            f"{r.name}: already in the bank (generator {r.generator_id}, seed {r.seed}, "
            f"recipe {r.recipe_id}, {', '.join(r.skipped)}); nothing generated"
        )
        if r.note:
            err(f"note: {r.note}")
        return
    protos = "; ".join(
        f"{e}: {c['fg']} fg / {c['bg']} bg prototypes from {c['used']} images"
        for e, c in r.prototypes.items()
    )
    typer.echo(
        f"{r.name}: added recipe {r.recipe_id} ({r.generated} images generated, "
        f"{r.reused} reused; {protos}; {r.kind} by {r.kind_source}) in {r.seconds:.1f} s"
    )


def _report_workers(executor) -> None:
    """Each Ray actor's throughput, then the run's and the driver's commit time (stderr)."""
    for w in executor.stats:
        err(
            f"worker {w.worker}: {w.units} units in {w.seconds:.1f} s ({w.units_per_s:.3f} units/s)"
        )
    done = sum(w.units for w in executor.stats)
    if executor.stats and executor.seconds > 0:
        err(
            f"all workers: {done} units in {executor.seconds:.1f} s "
            f"({done / executor.seconds:.3f} units/s); the driver spent "
            f"{executor.commit_seconds:.1f} s committing them"
        )
