"""The protodb command line. Parse, make one library call, print. No logic lives here.

This module holds the root app and its global options, and lists every command with the module
that defines it; each command group is its own module (add, browse, vocab, segment, evaluate,
world, demo, manage, refer), sharing cli/common.py; cli/quick.py runs the plain listings (ls,
history, show, vocab ls / show) without typer's parsing, to start faster.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from protodb.cli import (
    add,
    browse,
    demo,
    distill,
    evaluate,
    grounding,
    manage,
    quick,
    refer,
    segment,
    synth,
    vocab,
    world,
)
from protodb.cli.common import crash_message, crash_report, err
from protodb.cli.usage import OneLineUsageGroup

app = typer.Typer(
    name="protodb",
    cls=OneLineUsageGroup,
    help="A prototype database for training-free open-vocabulary segmentation (after OVDiff).\n\n"
    "Example: protodb add 'red apple' grass --n 4 && protodb vocab create v1 'red apple' grass "
    "&& protodb segment photo.jpg --vocab v1 --out labels/",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(vocab.vocab_app, name="vocab")


@app.callback()
def root(
    ctx: typer.Context,
    bank: Annotated[
        str | None,
        typer.Option(
            "--bank",
            help="Bank directory or LanceDB URI "
            "(default: $PROTODB_BANK, else the per-user data dir).",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="'default' (real models), 'tiny' (offline twins), 'world' (the offline "
            "test world: synthetic classes) or 'world-learned' (the test world through a tiny "
            "SD trained on it); default $PROTODB_PROFILE or 'default'.",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device", help="auto, cpu, cuda or cuda:N (default $PROTODB_DEVICE or auto)."
        ),
    ] = None,
    at: Annotated[
        int | None,
        typer.Option("--at", min=1, help="Read the bank as it was at this version (see history)."),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the traceback of an unexpected error (a bug) here instead of only in the "
            "crash log (also $PROTODB_DEBUG=1).",
        ),
    ] = False,
) -> None:
    ctx.obj = {"bank": bank, "profile": profile, "device": device, "at": at, "debug": debug}


app.command()(add.add)
app.command("ls")(browse.ls)
app.command()(browse.show)
app.command()(browse.history)
app.command()(browse.sheet)
app.command()(segment.segment)
app.command("eval")(evaluate.eval_)
app.command()(synth.synth)
app.command()(distill.distill)
app.add_typer(grounding.grounding_app, name="grounding")
app.add_typer(world.world_app, name="world")
app.command()(segment.explain)
app.command()(refer.refer)
app.command()(demo.demo)
app.command()(manage.restore)
app.command()(manage.gc)
app.command()(manage.export)
app.command("import")(manage.import_)
app.command()(manage.merge)


def main() -> None:
    """Console-script entry point. A user mistake is one line from the command itself; an
    unexpected exception (a bug) is one line naming the crash log that holds its traceback,
    exit code 1 (the traceback inline with --debug or PROTODB_DEBUG=1)."""
    try:
        call = quick.parse(sys.argv[1:])
        if call is not None:  # a plain listing: the same command, without typer's parsing
            quick.run(call)
        app()
    except Exception as exc:  # noqa: BLE001 - the last line of defence, see the docstring
        if "--debug" in sys.argv[1:] or os.environ.get("PROTODB_DEBUG", "") not in ("", "0"):
            raise
        err(crash_message(exc, crash_report(exc, sys.argv)))
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
