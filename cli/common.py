"""What every command shares: the JSON flag, user errors as one line on stderr, the library handle
built from the global options, and the notice for offline profiles.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def err(message: str) -> None:
    typer.echo(message, err=True)


@contextlib.contextmanager
def user_errors():
    """Turn protodb's user errors into a message on stderr and a non-zero exit."""
    from protodb.errors import ProtodbError

    try:
        yield
    except ProtodbError as e:
        err(f"error: {e}")
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        err("interrupted; what was committed to the bank stays, re-run to continue")
        raise typer.Exit(130) from None


def open_db(ctx: typer.Context):
    import protodb

    o = ctx.obj or {}
    db = protodb.connect(
        o.get("bank"), profile=o.get("profile"), device=o.get("device"), at=o.get("at")
    )
    return db


def profile_notice(db) -> None:
    if db.settings.profile == "tiny":
        err(
            "profile tiny: tiny models with random weights "
            "(offline testing; outputs are not meaningful)"
        )
    elif db.settings.profile == "world":
        err(
            "profile world: the offline TEST WORLD (synthetic classes, procedural generator "
            "and extractor; not real models)"
        )
    elif db.settings.profile == "world-learned":
        err(
            "profile world-learned: the offline TEST WORLD through the real path (a tiny Stable "
            "Diffusion trained on the synthetic classes; not a real model)"
        )
