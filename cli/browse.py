"""Read-only commands over the bank: `protodb ls`, `show`, `history` and `sheet`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import JsonOpt, echo, open_db, user_errors


def ls(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the classes in the bank with their prototype sets."""
    with user_errors():
        infos = open_db(ctx).classes()
        if as_json:
            echo(json.dumps([i.__dict__ for i in infos], indent=2, default=str))
            return
        if not infos:
            echo("the bank holds no classes yet; add one: protodb add CLASS")
        for i in infos:
            exts = sorted({s["extractor_id"] for s in i.sets})
            flagged = sum(1 for s in i.sets if s["known_issue"])
            note = f"\t({flagged} set(s) to rebuild: protodb show {i.name!r})" if flagged else ""
            echo(f"{i.name}\t{i.kind}\t{len(i.sets)} set(s)\t{', '.join(exts)}{note}")


def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Class name.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a class: its prototype sets (each with its recipe id, for `vocab create --recipe`),
    support counts and mask thresholds."""
    with user_errors():
        info = open_db(ctx).show(name)
        if as_json:
            echo(json.dumps(info.__dict__, indent=2, default=str))
            return
        echo(f"{info.name} (kind: {info.kind}, from {info.kind_source})")
        for s in info.sets:
            r = s.get("recipe") or {}
            echo(
                f"  generator {s['generator_id']} seed {s['seed']} extractor {s['extractor_id']} "
                f"recipe {s['recipe_id']}: "
                f"{s['n_used']}/{s['n']} images used, {s['n_fg']} fg / {s['n_bg']} bg prototypes, "
                f"dim {s['dim']}, masks {s['mask_source']} {s['thresholds']}, "
                f"parts K={r.get('parts', '?')}"
            )
            if s["known_issue"]:
                echo(f"    ! {s['known_issue']}")


def history(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the bank's versions: one per operation, newest last."""
    with user_errors():
        entries = open_db(ctx).history()
        if as_json:
            echo(json.dumps([e.__dict__ for e in entries], indent=2, default=str))
            return
        for e in entries:
            what = e.detail.get("class") or e.detail.get("name") or ""
            echo(f"{e.version}\t{e.created_at:%Y-%m-%d %H:%M:%S}\t{e.op}\t{what}")


def sheet(
    ctx: typer.Context,
    classes: Annotated[list[str] | None, typer.Argument(help="Classes (default: all).")] = None,
    out: Annotated[Path, typer.Option("--out", help="The PNG to write.")] = Path("sheet.png"),
    n: Annotated[int, typer.Option("--n", min=1, help="Support images per class.")] = 8,
) -> None:
    """Draw a contact sheet of support sets: images, their attention, their fg / bg masks.

    Example: protodb sheet "red apple" grass --out sheet.png
    """
    with user_errors():
        echo(f"sheet: {open_db(ctx).sheet(out, classes, n=n)}")
