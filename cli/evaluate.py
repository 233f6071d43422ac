"""`protodb eval`: mIoU of a vocabulary on a dataset, with ablations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import JsonOpt, flag_errors, open_db, user_errors
from protodb.cli.query_options import (
    EtaOpt,
    PamrOpt,
    PrefilterOpt,
    StuffOpt,
    WindowsOpt,
    query_config,
)


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100 * x:5.1f}"


def eval_(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="voc, context, coco-object, folder (images/, labels/, classes.txt), or world "
            "(the offline TEST WORLD made by `protodb world dataset`).",
        ),
    ],
    root: Annotated[Path, typer.Option("--root", help="The dataset's directory.")],
    vocab: Annotated[
        str | None,
        typer.Option(
            "--vocab",
            help="Vocabulary with the dataset's classes (--task refer: optional, the bank-aware "
            "mode).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Evaluate the first N images only.")
    ] = None,
    ablate: Annotated[
        str | None,
        typer.Option(
            "--ablate",
            help="Also report the mIoU with components removed (Table 3): all, or a "
            "comma-separated subset of bg,instances,parts,prefilter,stuff.",
        ),
    ] = None,
    windows: WindowsOpt = True,
    prefilter: PrefilterOpt = None,
    eta: EtaOpt = None,
    pamr: PamrOpt = False,
    stuff_filter: StuffOpt = True,
    bg_threshold: Annotated[
        float | None,
        typer.Option(
            "--bg-threshold",
            help="--ablate bg: without bg prototypes, a pixel whose best fg score is at most "
            "this is background (default 0.72, the paper's Table 3).",
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the JSON report to this file.")
    ] = None,
    task: Annotated[
        str,
        typer.Option(
            "--task",
            help="segment (a vocabulary's mIoU) or refer (referring segmentation: --dataset "
            "refcoco, refcoco+, refcocog or folder; mIoU, oIoU, Pr@0.5..0.9).",
        ),
    ] = "segment",
    split: Annotated[
        str, typer.Option("--split", help="--task refer: the RefCOCO split (val, testA, ...).")
    ] = "val",
    discriminative: Annotated[
        bool,
        typer.Option(
            "--discriminative/--generator-only",
            help="--task refer: CLIP scores too, or attention alone.",
        ),
    ] = True,
    student: Annotated[
        Path | None,
        typer.Option("--student", help="Score the student `protodb distill` saved here instead."),
    ] = None,
    unseen: Annotated[
        str | None,
        typer.Option(
            "--unseen",
            help="ZS3: the unseen classes, comma-separated, or voc (VOC's 15/5 split: potted "
            "plant, sheep, sofa, train, monitor); adds mIoU on seen (the rest, background too), on "
            "unseen, and their harmonic mean hIoU.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """mIoU of a vocabulary (or --student) on a labelled dataset, per-class IoUs (REFERENCE 1.9).

    The query options and their defaults are segment's (the same images give the same labels);
    the report records the query config it ran with.

    Example: protodb eval --dataset voc --root VOCdevkit/VOC2012 --vocab voc21 --limit 100
    (a student: protodb eval --dataset voc --root VOCdevkit/VOC2012 --student s/ --unseen voc)
    """
    with user_errors(), flag_errors({"unseen": "--unseen"}):
        from protodb.errors import ProtodbError
        from protodb.evaluation.evaluate import AblationReport, parse_ablations
        from protodb.evaluation.zs3 import format_zs3

        if task == "refer":
            if student is not None or unseen is not None:
                raise ProtodbError("--student and --unseen score --task segment; drop them")
            _eval_refer(ctx, dataset, root, vocab, limit, split, discriminative, report, quiet,
                        as_json)  # fmt: skip
            return
        if task != "segment":
            raise ProtodbError(f"--task {task!r} is unknown; use segment or refer")
        if vocab is None and student is None:
            raise ProtodbError("--vocab is required for --task segment (or --student DIR)")

        names = parse_ablations(ablate) if ablate else []
        db = open_db(ctx)
        config = None  # a student has no query engine
        with flag_errors({"bg_threshold": "--bg-threshold"}):
            if student is None:
                config = query_config(
                    db, windows=windows, prefilter=prefilter, eta=eta, pamr=pamr,
                    stuff_filter=stuff_filter, bg_threshold=bg_threshold,
                )  # fmt: skip
        result = db.evaluate(
            dataset,
            root,
            vocab=vocab,
            limit=limit,
            config=config,
            ablations=names,
            progress=not quiet and not as_json,
            student=student,
            unseen=unseen,
        )
        if _report_and_json(result.to_dict(), report, as_json):
            return
        full = result.full if isinstance(result, AblationReport) else result
        world = ""
        if full.test_world:
            world = " (offline TEST WORLD: synthetic classes, not a benchmark)"
        typer.echo(
            f"dataset {full.dataset}{world}: {full.n_images} images from {full.root}, "
            f"vocabulary {full.vocab}"
        )
        typer.echo(f"query: {full.config_line()}")
        typer.echo("  label  IoU    class")
        for c in full.classes:
            absent = "  (absent from both: counted 0)" if c.iou is None else ""
            typer.echo(f"  {c.label:5d}  {_pct(c.iou)}  {c.name}{absent}")
        typer.echo(
            f"mIoU {100 * full.miou:.1f} over {len(full.classes)} classes "
            f"(pixel accuracy {100 * full.pixel_accuracy:.1f}%, {full.seconds:.1f} s)"
        )
        if full.zs3 is not None:
            typer.echo(f"{format_zs3(full.zs3)} [{full.zs3.source}]")
        for note in full.notes:
            typer.echo(f"note: {note}")
        if isinstance(result, AblationReport):
            typer.echo("ablations (mIoU without the component; change from the full mIoU):")
            for r in result.rows:
                delta = "" if r.delta is None else f"{100 * r.delta:+6.1f}"
                typer.echo(f"  -{r.name:<10} {_pct(r.miou)} {delta:>6}  {r.removes}")
                if r.note:
                    typer.echo(f"  {'':11} {r.note}")
        if report is not None:
            typer.echo(f"report: {report}")


def _eval_refer(ctx, dataset, root, vocab, limit, split, discriminative, report, quiet, as_json):
    from protodb.cli.common import profile_notice

    db = open_db(ctx)
    config = db.refer_config(discriminative=discriminative)
    if not as_json:
        profile_notice(db)
    result = db.evaluate_refer(
        dataset,
        root,
        split=split,
        limit=limit,
        vocab=vocab,
        config=config,
        progress=not quiet and not as_json,
    )
    if _report_and_json(result.to_dict(), report, as_json):
        return
    prec = "  ".join(f"{k} {_pct(v).strip()}" for k, v in result.precision.items())
    typer.echo(f"dataset {result.dataset}: {result.n} expressions from {result.root}")
    typer.echo(f"mIoU {100 * result.miou:.1f}  oIoU {100 * result.oiou:.1f}  {prec}")
    typer.echo(f"{result.seconds.get('total', 0.0):.2f} s per expression")
    if report is not None:
        typer.echo(f"report: {report}")


def _report_and_json(data: dict, report: Path | None, as_json: bool) -> bool:
    """Write ``data`` to the --report file (when given) and, with --json, print it; True when
    printed (the caller prints nothing more)."""
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    return as_json
