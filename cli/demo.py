"""`protodb demo`: the main job, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import user_errors


def demo(
    ctx: typer.Context,
    workdir: Annotated[
        Path, typer.Option("--dir", help="Where the demo bank and outputs go.")
    ] = Path("protodb-demo"),
    n: Annotated[int, typer.Option("--n", help="Support images per class.")] = 4,
) -> None:
    """Build a small bank, pin a vocabulary and segment example images.

    Without model weights (or with --profile world) it runs in the offline TEST WORLD and
    reports the mIoU of its synthetic scenes; --profile tiny uses the tiny random models.
    """
    with user_errors():
        from protodb.demo import run_demo

        o = ctx.obj or {}
        report = run_demo(
            workdir, profile=o.get("profile"), n=n, device=o.get("device"), say=typer.echo
        )
        typer.echo(f"profile: {report.profile}; bank: {report.bank}")
        for s in report.images:
            areas = ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["areas"].items())
            typer.echo(f"  {s['image']}: {areas}\n    -> {s['label_png']}, {s['overlay_png']}")
        typer.echo(
            f"add {report.seconds['add']:.1f} s, segment {report.seconds['segment']:.1f} s; "
            f"outputs in {report.out}"
        )
        if report.miou is not None:
            typer.echo(
                f"test world: mIoU {100 * report.miou:.1f} on these synthetic scenes against their "
                "ground truth (labels in world-scenes/SegmentationClass)"
            )
