"""`protodb world dataset | bank`: the offline TEST WORLD."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from protodb.cli.common import profile_notice, user_errors

world_app = typer.Typer(
    help="The offline TEST WORLD: synthetic classes with ground truth, a tiny SD trained on them.",
    no_args_is_help=True,
)


@world_app.command("dataset")
def world_dataset(
    out: Annotated[Path, typer.Argument(help="Directory to write (VOC layout).")],
    images: Annotated[int, typer.Option("--images", help="Number of scenes.")] = 24,
    seed: Annotated[int, typer.Option("--seed", help="Scene seed.")] = 0,
) -> None:
    """Write the test world's labelled scenes in the VOC layout (for `eval --dataset world`).

    Example: protodb world dataset world-data/ --images 24 --seed 0
    """
    with user_errors():
        from protodb.profiles import test_world

        ds = test_world().make_dataset(out, n=images, seed=seed)
        typer.echo(
            f"test world: {len(ds.ids)} scenes (seed {seed}) in {ds.root}, "
            f"{len(ds.classes)} labels: {', '.join(ds.classes)}"
        )


@world_app.command("refer-set")
def world_refer_set(
    out: Annotated[Path, typer.Argument(help="Directory to write.")],
    images: Annotated[int, typer.Option("--images", help="Number of scenes.")] = 24,
    seed: Annotated[int, typer.Option("--seed", help="Scene seed.")] = 0,
) -> None:
    """Write the test world's referring set: scenes with two things, one expression per thing
    and the mask of the thing it refers to (pairs.jsonl).

    Example: protodb world refer-set refer-data/ --images 24 --seed 0
    """
    with user_errors():
        from protodb.profiles import test_world

        pairs = test_world().make_referring_set(out, n=images, seed=seed)
        typer.echo(f"test world: {2 * images} expressions over {images} scenes in {pairs}")


@world_app.command("bank")
def world_bank(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("--n", help="Support images per class.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Support-set seed.")] = 0,
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary to pin.")] = "world",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Add every test-world class to the bank (profile world-learned unless --profile world,
    the drawn-attention oracle; stuff recorded as stuff) and pin a vocabulary over them in
    label order.

    Example: protodb --bank world-bank/ world bank && protodb --bank world-bank/ eval
    --dataset world --root world-data/ --vocab world --ablate bg,instances,parts,prefilter,stuff
    """
    with user_errors():
        import protodb
        from protodb.errors import ProtodbError

        o = ctx.obj or {}
        from protodb.profiles import PROFILES, get_profile

        profile = o.get("profile") or "world-learned"
        if not get_profile(profile).test_world:
            worlds = [p for p in PROFILES.names() if get_profile(p).test_world]
            raise ProtodbError(
                f"`world bank` runs on profile {' or '.join(worlds)}, not {profile!r}"
            )
        db = protodb.connect(o.get("bank"), profile=profile, device=o.get("device"))
        profile_notice(db)
        v = db.build_world(n=n, seed=seed, vocab=vocab, progress=not quiet)
        typer.echo(f"vocabulary {v.name}: {', '.join(v.class_names)} (bank {db.settings.bank})")


@world_app.command("report")
def world_report(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("--n", min=1, max=64, help="Support images per class.")] = 8,
    images: Annotated[
        int, typer.Option("--images", min=1, max=500, help="Labelled scenes to evaluate.")
    ] = 24,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Support-set and scene seed.")] = 0,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Keep the banks and scenes here (default: a temp dir)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """mIoU of the test world through the learned path (generate, capture, masks, features,
    prototypes, match), its ablations (bg, instances, parts, stuff, MaskCut masks, ensemble
    vs sd alone) and the drawn-attention oracle beside it. Takes a few minutes on 2 cores.

    Example: protodb world report --n 8 --images 24 --seed 0
    """
    with user_errors():
        import json
        import tempfile

        from protodb.errors import ProtodbError
        from protodb.profiles import test_world

        run_report = test_world().report

        if workdir is not None and workdir.exists() and not workdir.is_dir():
            raise ProtodbError(f"--workdir {str(workdir)!r} is a file; give a directory")
        device = (ctx.obj or {}).get("device") or "cpu"
        say = (lambda _: None) if json_out else (lambda s: typer.echo(f"  {s}", err=True))
        if workdir is not None:
            rep = run_report(workdir, n=n, images=images, seed=seed, device=device, say=say)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                rep = run_report(tmp, n=n, images=images, seed=seed, device=device, say=say)
        if json_out:
            typer.echo(json.dumps(rep.to_dict(), indent=2))
        else:
            typer.echo("\n".join(rep.lines()))
