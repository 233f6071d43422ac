"""Managing the bank: `protodb restore`, `gc`, `export`, `import` and `merge`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from protodb.cli.common import JsonOpt, open_db, user_errors


def restore(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Bank version to restore (see history).")],
) -> None:
    """Make an old bank version the latest again (a new version equal to it; history kept).

    Example: protodb restore 3
    """
    with user_errors():
        e = open_db(ctx).restore(version)
        typer.echo(f"restored bank version {version} as version {e.version}")


def gc(
    ctx: typer.Context,
    older_than: Annotated[
        float,
        typer.Option("--older-than", help="Keep untagged versions younger than this (hours)."),
    ] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Remove orphans and old untagged versions, compact prototypes clustered by class.

    Refuses to run while another process writes; never removes a version a vocabulary pins.

    Example: protodb gc --older-than 24
    """
    with user_errors():
        r = open_db(ctx).gc(older_than_hours=older_than)
        if as_json:
            typer.echo(json.dumps(r.__dict__, indent=2))
            return
        orphans = sum(r.orphans.values())
        typer.echo(
            f"gc: {orphans} orphan rows removed, {len(r.compacted)} table(s) compacted, "
            f"{r.removed_versions} old versions ({r.removed_bytes / 2**20:.1f} MiB) removed"
        )


def export(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="A .protodb file, or a new directory / LanceDB URI.")
    ],
    vocab: Annotated[
        str | None, typer.Option("--vocab", help="Export this vocabulary (default: the bank).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a vocabulary (or the whole bank) with a manifest of provenance and hashes.

    Example: protodb export --vocab v1 v1.protodb
    """
    with user_errors():
        r = open_db(ctx).export(target, vocab=vocab)
        if as_json:
            typer.echo(json.dumps(r.__dict__, indent=2))
            return
        typer.echo(
            f"exported {r.sets} prototype set(s), {r.supports} support images, vocabularies "
            f"{', '.join(r.vocabs) or 'none'} to {r.target}"
        )


def import_(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A .protodb file or an export directory / URI.")],
    name: Annotated[
        str | None, typer.Option("--as", help="Import the vocabulary under this name.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import an export: everything is checked first; a refused import changes nothing.

    Example: protodb import v1.protodb --as team_v1
    """
    with user_errors():
        r = open_db(ctx).import_(source, name=name)
        _share_report(r, "imported", as_json)


def merge(
    ctx: typer.Context,
    other: Annotated[str, typer.Argument(help="Another bank (directory or LanceDB URI).")],
    as_json: JsonOpt = False,
) -> None:
    """Merge another bank's prototype sets, support images and vocabularies into this one.

    Example: protodb merge ../other-bank
    """
    with user_errors():
        r = open_db(ctx).merge(other)
        _share_report(r, "merged", as_json)


def _share_report(r, verb: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(r.__dict__, indent=2, default=str))
        return
    typer.echo(
        f"{verb} {r.sets} prototype set(s) ({r.skipped} already present), {r.supports} support "
        f"images, vocabularies: {', '.join(r.vocabs) or 'none'}"
    )
