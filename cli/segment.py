"""`protodb segment` and `protodb explain`, with the query options (protodb.cli.query_options)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import JsonOpt, RayOpt, WorkersOpt, flag_errors, open_db, user_errors
from protodb.cli.query_options import (
    EtaOpt,
    PamrOpt,
    PrefilterOpt,
    StuffOpt,
    WindowsOpt,
    query_config,
)


def segment(
    ctx: typer.Context,
    paths: Annotated[
        list[str], typer.Argument(help="Images, directories of images or glob patterns.")
    ],
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary name.")],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="Output directory: <stem>.png (labels), <stem>_overlay.png, <stem>_rle.json "
            "(COCO RLE), <stem>.json (summary). With --ray also s3://BUCKET/PREFIX.",
        ),
    ],
    windows: WindowsOpt = True,
    prefilter: PrefilterOpt = None,
    eta: EtaOpt = None,
    pamr: PamrOpt = False,
    stuff_filter: StuffOpt = True,
    save_scores: Annotated[
        bool, typer.Option("--save-scores", help="Also write <stem>_scores.npy (float32 maps).")
    ] = False,
    skip_existing: Annotated[
        bool,
        typer.Option("--skip-existing", help="Skip images whose <stem>.json exists (resume)."),
    ] = False,
    student: Annotated[
        Path | None,
        typer.Option(
            "--student", help="Segment with this student (from `protodb distill` on --vocab)."
        ),
    ] = None,
    coco: Annotated[
        str | None,
        typer.Option(
            "--coco",
            help="Also write one COCO file of the whole run (images, categories with isthing, "
            "one RLE annotation per image and class present, with its mean score), readable by "
            "pycocotools; built from the per-image files, so --skip-existing resumes keep it "
            "whole. --out must be local.",
        ),
    ] = None,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Segment images with a vocabulary: palette PNG labels (0 = background, i = i-th class).

    Ends with a summary: images, seconds per image and each class's share of the pixels
    (--json: {"images": [per-image summaries], "run": that summary}).

    Example: protodb segment photos/ 'more/*.jpg' --vocab v1 --out labels/ --skip-existing

    One COCO file for the run: protodb segment photos/ --vocab v1 --out labels/ --coco run.json

    On Ray (inputs and --out may be s3://BUCKET/PREFIX there):
    protodb segment s3://b/photos/ --vocab v1 --out s3://b/labels/ --ray HOST:PORT --workers 4
    """
    with user_errors():
        db = open_db(ctx)
        config = None
        if student is None:  # a student has no query options
            config = query_config(
                db,
                windows=windows,
                prefilter=prefilter,
                eta=eta,
                pamr=pamr,
                stuff_filter=stuff_filter,
            )

        def report(s: dict) -> None:
            if not as_json:
                areas = ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["areas"].items())
                done = " (done before, skipped)" if s.get("skipped") else ""
                typer.echo(f"{s['image']}: {areas} -> {s['label_png']}{done}")

        start = time.perf_counter()
        with flag_errors({"coco": "--coco"}):
            summaries = db.segment(
                paths,
                vocab=vocab,
                out=out,
                progress=not quiet and not as_json,
                on_image=report,
                config=config,
                skip_existing=skip_existing,
                save_scores=save_scores,
                student=student,
                ray=ray,
                workers=workers,
                coco=coco,
            )
        from protodb.query.run_summary import summarize_run

        run = summarize_run(summaries, time.perf_counter() - start)
        if as_json:
            typer.echo(json.dumps({"images": summaries, "run": run.to_dict()}, indent=2))
        else:
            typer.echo(run.table())


def explain(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="The image.")],
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary name.")],
    at: Annotated[
        list[str],
        typer.Option(
            "--at",
            help="The pixel as X,Y (column, row), from 0; repeat for several pixels (the image "
            "is segmented once).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Picture of the support regions behind the pixel: a .png (.jpg, .webp) file, "
            "or a folder (one that exists, or a path without suffix) for IMAGE_explain.png.",
        ),
    ] = Path("explain.png"),  # several --at: <stem>_<x>_<y>.png beside it
    windows: WindowsOpt = True,
    prefilter: PrefilterOpt = None,
    eta: EtaOpt = None,
    pamr: PamrOpt = False,
    stuff_filter: StuffOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Say which class won a pixel, through which prototype (extractor, level, polarity), and
    draw the support-image regions that prototype came from.

    Example: protodb explain photo.jpg --vocab v1 --at 120,80 --at 10,40 --out why.png
    """
    with user_errors():
        from protodb.errors import ProtodbError

        points = []
        for text in at:
            try:
                x, y = (int(v) for v in text.split(","))
            except ValueError:
                raise ProtodbError(
                    f"--at {text!r} must be X,Y in pixels, e.g. --at 120,80"
                ) from None
            points.append((x, y))
        db = open_db(ctx)
        config = query_config(
            db, windows=windows, prefilter=prefilter, eta=eta, pamr=pamr, stuff_filter=stuff_filter
        )
        with flag_errors({"out": "--out"}):
            found = db.explain(image, vocab=vocab, at=points, out=out, config=config)
        if as_json:
            data = [e.to_dict() for e in found]
            typer.echo(json.dumps(data[0] if len(data) == 1 else data, indent=2))
        else:
            for e in found:
                typer.echo(e.describe())
                typer.echo(f"picture: {e.picture}")
