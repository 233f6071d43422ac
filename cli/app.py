"""The protodb command line. Parse, make one library call, print. No logic lives here."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="protodb",
    help="A prototype database for training-free open-vocabulary segmentation (after OVDiff).\n\n"
    "Example: protodb add 'red apple' grass --n 4 && protodb vocab create v1 'red apple' grass "
    "&& protodb segment photo.jpg --vocab v1 --out labels/",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
vocab_app = typer.Typer(
    help="Create and inspect vocabularies (named, pinned class sets).", no_args_is_help=True
)
app.add_typer(vocab_app, name="vocab")

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


def _db(ctx: typer.Context):
    import protodb

    o = ctx.obj or {}
    db = protodb.connect(
        o.get("bank"), profile=o.get("profile"), device=o.get("device"), at=o.get("at")
    )
    return db


def _tiny_notice(db) -> None:
    if db.settings.profile == "tiny":
        err(
            "profile tiny: tiny models with random weights "
            "(offline testing; outputs are not meaningful)"
        )


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
            help="'default' (real models) or 'tiny' (offline twins); "
            "default $PROTODB_PROFILE or 'default'.",
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
) -> None:
    ctx.obj = {"bank": bank, "profile": profile, "device": device, "at": at}


@app.command()
def add(
    ctx: typer.Context,
    classes: Annotated[
        list[str] | None,
        typer.Argument(help="Class names, e.g. 'donut with chocolate glaze'.", show_default=False),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from", help="Read class names from a file, one per line.")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Support images per class (paper: 32).")] = 32,
    seed: Annotated[int, typer.Option("--seed", help="Support-set seed.")] = 0,
    extractor: Annotated[
        list[str] | None, typer.Option("--extractor", help="Feature extractor (repeatable).")
    ] = None,
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
        str | None, typer.Option("--model", help="Stable Diffusion hub id or local directory.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images sampled per batch.")
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate support images for classes and store their prototypes in the bank.

    Re-adding an existing (class, generator, seed, extractor) set generates nothing.

    Example: protodb --bank bank/ add "red apple" grass --n 4
    """
    with user_errors():
        from protodb.errors import ProtodbError

        names = list(classes or [])
        if from_file is not None:
            try:
                names += [
                    ln.strip() for ln in from_file.read_text("utf-8").splitlines() if ln.strip()
                ]
            except OSError as e:
                raise ProtodbError(
                    f"cannot read --from file {str(from_file)!r}: {e.strerror}"
                ) from None
        if not names:
            raise ProtodbError("no class given: protodb add CLASS [CLASS...] (or --from FILE)")
        db = _db(ctx)
        _tiny_notice(db)

        def report(r) -> None:
            if as_json:
                return
            if r.status == "exists":
                typer.echo(
                    f"{r.name}: already in the bank (generator {r.generator_id}, seed {r.seed}, "
                    f"{', '.join(r.skipped)}); nothing generated"
                )
                if r.note:
                    err(f"note: {r.note}")
            else:
                protos = "; ".join(
                    f"{e}: {c['fg']} fg / {c['bg']} bg prototypes from {c['used']} images"
                    for e, c in r.prototypes.items()
                )
                typer.echo(
                    f"{r.name}: added ({r.generated} images generated, {r.reused} reused; "
                    f"{protos}) in {r.seconds:.1f} s"
                )

        results = db.add(
            names,
            n=n,
            seed=seed,
            extractors=extractor or ["dinov2"],
            steps=steps,
            guidance=guidance,
            template=template,
            model=model,
            batch_size=batch_size,
            progress=not quiet and not as_json,
            on_result=report,
        )
        if as_json:
            typer.echo(json.dumps([r.__dict__ for r in results], indent=2))


@app.command("ls")
def ls(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the classes in the bank with their prototype sets."""
    with user_errors():
        infos = _db(ctx).classes()
        if as_json:
            typer.echo(json.dumps([i.__dict__ for i in infos], indent=2, default=str))
            return
        if not infos:
            typer.echo("the bank holds no classes yet; add one: protodb add CLASS")
        for i in infos:
            exts = sorted({s["extractor_id"] for s in i.sets})
            typer.echo(f"{i.name}\t{i.kind}\t{len(i.sets)} set(s)\t{', '.join(exts)}")


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Class name.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a class: its prototype sets, support counts and mask thresholds."""
    with user_errors():
        info = _db(ctx).show(name)
        if as_json:
            typer.echo(json.dumps(info.__dict__, indent=2, default=str))
            return
        typer.echo(f"{info.name} (kind: {info.kind}, from {info.kind_source})")
        for s in info.sets:
            typer.echo(
                f"  generator {s['generator_id']} seed {s['seed']} extractor {s['extractor_id']}: "
                f"{s['n_used']}/{s['n']} images used, {s['n_fg']} fg / {s['n_bg']} bg prototypes, "
                f"dim {s['dim']}, masks {s['mask_source']} {s['thresholds']}"
            )


@app.command()
def history(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the bank's versions: one per operation, newest last."""
    with user_errors():
        entries = _db(ctx).history()
        if as_json:
            typer.echo(json.dumps([e.__dict__ for e in entries], indent=2, default=str))
            return
        for e in entries:
            what = e.detail.get("class") or e.detail.get("name") or ""
            typer.echo(f"{e.version}\t{e.created_at:%Y-%m-%d %H:%M:%S}\t{e.op}\t{what}")


@vocab_app.command("create")
def vocab_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Vocabulary name (letters, digits, _ . -).")],
    classes: Annotated[list[str], typer.Argument(help="Classes in label order (label 1 = first).")],
    extractor: Annotated[
        list[str] | None,
        typer.Option("--extractor", help="Extractors to use (default: all the classes share)."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Choose sets of this seed.")] = None,
    generator: Annotated[
        str | None, typer.Option("--generator", help="Choose sets of this generator id.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pin a vocabulary: its classes, their prototype sets and the bank versions read.

    Example: protodb vocab create v1 "red apple" grass
    """
    with user_errors():
        v = _db(ctx).create_vocab(
            name, classes, extractors=extractor, seed=seed, generator_id=generator
        )
        if as_json:
            typer.echo(json.dumps(v.to_dict(), indent=2))
        else:
            typer.echo(
                f"vocabulary {v.name}: {', '.join(v.class_names)} (bank version {v.bank_version})"
            )


@vocab_app.command("ls")
def vocab_ls(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List vocabularies."""
    with user_errors():
        vs = _db(ctx).vocabs()
        if as_json:
            typer.echo(json.dumps([v.to_dict() for v in vs], indent=2))
            return
        for v in vs:
            typer.echo(f"{v.name}\t{len(v.classes)} classes\t{', '.join(v.class_names)}")


@vocab_app.command("show")
def vocab_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Vocabulary name.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a vocabulary: label numbers, pinned sets and table versions."""
    with user_errors():
        v = _db(ctx).vocab(name).info
        if as_json:
            typer.echo(json.dumps(v.to_dict(), indent=2))
            return
        typer.echo(f"vocabulary {v.name} (bank version {v.bank_version}, created {v.created_at})")
        typer.echo("  0: background")
        for i, c in enumerate(v.classes, 1):
            typer.echo(f"  {i}: {c.name} (generator {c.generator_id}, seed {c.seed})")
        typer.echo(f"  extractors: {', '.join(e.extractor_id for e in v.extractors)}")


@app.command()
def segment(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Images or directories of images.")],
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary name.")],
    out: Annotated[
        Path, typer.Option("--out", help="Output directory for <stem>.png and <stem>_overlay.png.")
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Segment images with a vocabulary: palette PNG labels (0 = background, i = i-th class).

    Example: protodb segment photos/ --vocab v1 --out labels/
    """
    with user_errors():
        db = _db(ctx)

        def report(s: dict) -> None:
            if not as_json:
                areas = ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["areas"].items())
                typer.echo(f"{s['image']}: {areas} -> {s['label_png']}")

        summaries = db.segment(
            paths, vocab=vocab, out=out, progress=not quiet and not as_json, on_image=report
        )
        if as_json:
            typer.echo(json.dumps(summaries, indent=2))


@app.command()
def demo(
    ctx: typer.Context,
    workdir: Annotated[
        Path, typer.Option("--dir", help="Where the demo bank and outputs go.")
    ] = Path("protodb-demo"),
    n: Annotated[int, typer.Option("--n", help="Support images per class.")] = 4,
) -> None:
    """Build a small bank, pin a vocabulary and segment the example images."""
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


@app.command()
def restore(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Bank version to restore (see history).")],
) -> None:
    """Make an old bank version the latest again (a new version equal to it; history kept).

    Example: protodb restore 3
    """
    with user_errors():
        e = _db(ctx).restore(version)
        typer.echo(f"restored bank version {version} as version {e.version}")


@app.command()
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
        r = _db(ctx).gc(older_than_hours=older_than)
        if as_json:
            typer.echo(json.dumps(r.__dict__, indent=2))
            return
        orphans = sum(r.orphans.values())
        typer.echo(
            f"gc: {orphans} orphan rows removed, {len(r.compacted)} table(s) compacted, "
            f"{r.removed_versions} old versions ({r.removed_bytes / 2**20:.1f} MiB) removed"
        )


@app.command()
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
        r = _db(ctx).export(target, vocab=vocab)
        if as_json:
            typer.echo(json.dumps(r.__dict__, indent=2))
            return
        typer.echo(
            f"exported {r.sets} prototype set(s), {r.supports} support images, vocabularies "
            f"{', '.join(r.vocabs) or 'none'} to {r.target}"
        )


@app.command("import")
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
        r = _db(ctx).import_(source, name=name)
        _share_report(r, "imported", as_json)


@app.command()
def merge(
    ctx: typer.Context,
    other: Annotated[str, typer.Argument(help="Another bank (directory or LanceDB URI).")],
    as_json: JsonOpt = False,
) -> None:
    """Merge another bank's prototype sets, support images and vocabularies into this one.

    Example: protodb merge ../other-bank
    """
    with user_errors():
        r = _db(ctx).merge(other)
        _share_report(r, "merged", as_json)


def _share_report(r, verb: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(r.__dict__, indent=2, default=str))
        return
    typer.echo(
        f"{verb} {r.sets} prototype set(s) ({r.skipped} already present), {r.supports} support "
        f"images, vocabularies: {', '.join(r.vocabs) or 'none'}"
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    sys.exit(main())
