"""`protodb vocab create | ls | show`: named, pinned class sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import JsonOpt, echo, open_db, user_errors

vocab_app = typer.Typer(
    help="Create and inspect vocabularies (named, pinned class sets).", no_args_is_help=True
)


@vocab_app.command("create")
def vocab_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Vocabulary name (letters, digits, _ . -).")],
    classes: Annotated[
        list[str] | None,
        typer.Argument(help="Classes in label order (label 1 = first).", show_default=False),
    ] = None,
    extractor: Annotated[
        list[str] | None,
        typer.Option("--extractor", help="Extractors to use (default: all the classes share)."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Choose sets of this seed.")] = None,
    generator: Annotated[
        str | None, typer.Option("--generator", help="Choose sets of this generator id.")
    ] = None,
    recipe: Annotated[
        list[str] | None,
        typer.Option(
            "--recipe",
            help="The prototype recipe of a class with several (`protodb show CLASS` lists "
            "them): ID for every class that has it, or CLASS=ID; repeatable. Default: a class's "
            "only recipe, else the plain-add one (otsu masks, K = 32).",
        ),
    ] = None,
    from_dataset: Annotated[
        str | None,
        typer.Option(
            "--from-dataset",
            help="Take the classes of a dataset's class list: voc, context, coco-object, world "
            "(the offline test world), or folder (with --root). Each class's kind (stuff or "
            "thing) is pinned as the dataset defines it (folder: the bank's kinds).",
        ),
    ] = None,
    root: Annotated[
        Path | None, typer.Option("--root", help="With --from-dataset folder: the dataset dir.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pin a vocabulary: its classes, their prototype sets and the bank versions read.

    Example: protodb vocab create v1 "red apple" grass;
    protodb vocab create voc21 --from-dataset voc
    """
    with user_errors():
        from protodb.errors import ProtodbError

        db = open_db(ctx)
        opts = {"extractors": extractor, "seed": seed, "generator_id": generator, "recipes": recipe}
        if from_dataset is not None:
            if classes:
                raise ProtodbError("give classes or --from-dataset, not both")
            v = db.create_vocab_from_dataset(name, from_dataset, root=root, **opts)
        else:
            v = db.create_vocab(name, classes or [], **opts)
        if as_json:
            echo(json.dumps(v.to_dict(), indent=2))
        else:
            echo(f"vocabulary {v.name}: {', '.join(v.class_names)} (bank version {v.bank_version})")


@vocab_app.command("ls")
def vocab_ls(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List vocabularies."""
    with user_errors():
        vs = open_db(ctx).vocabs()
        if as_json:
            echo(json.dumps([v.to_dict() for v in vs], indent=2))
            return
        for v in vs:
            echo(f"{v.name}\t{len(v.classes)} classes\t{', '.join(v.class_names)}")


@vocab_app.command("show")
def vocab_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Vocabulary name.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a vocabulary: label numbers, each class's kind as the query uses it (stuff or
    thing, and where it came from), pinned sets and table versions."""
    with user_errors():
        v = open_db(ctx).vocab(name).info
        if as_json:
            echo(json.dumps(v.to_dict(), indent=2))
            return
        echo(f"vocabulary {v.name} (bank version {v.bank_version}, created {v.created_at})")
        echo("  0: background")
        for i, c in enumerate(v.classes, 1):
            recipe = f", recipe {c.recipe_id}" if c.recipe_id else ""
            kind = f"{c.kind}, {c.kind_source}; " if c.kind else ""
            echo(f"  {i}: {c.name} ({kind}generator {c.generator_id}, seed {c.seed}{recipe})")
        echo(f"  extractors: {', '.join(e.extractor_id for e in v.extractors)}")
