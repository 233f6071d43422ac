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
    elif db.settings.profile == "world":
        err(
            "profile world: the offline TEST WORLD (synthetic classes, procedural generator "
            "and extractor; not real models)"
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
            help="'default' (real models), 'tiny' (offline twins) or 'world' (the offline "
            "test world: synthetic classes); default $PROTODB_PROFILE or 'default'.",
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
    seed: Annotated[
        list[int] | None,
        typer.Option("--seed", help="Support-set seed (repeatable: one set per seed; default 0)."),
    ] = None,
    extractor: Annotated[
        list[str] | None,
        typer.Option(
            "--extractor",
            help="Feature extractor: sd, dino, clip, mae, dinov2 (repeatable; default the "
            "paper's ensemble sd + dino + clip; tiny profile: dinov2).",
        ),
    ] = None,
    stuff: Annotated[
        bool | None,
        typer.Option(
            "--stuff/--thing",
            help="Declare the classes stuff or thing (default: the shipped lexicon, else a "
            "guess from the support set).",
            show_default=False,
        ),
    ] = None,
    mask_source: Annotated[
        str,
        typer.Option(
            "--mask-source",
            "--segmenter",
            help="fg/bg masks: otsu (multi-Otsu on attribution), maskcut or sam (eq. (1) over "
            "normalized-cut / SAM proposals).",
        ),
    ] = "otsu",
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
        int,
        typer.Option(
            "--batch-size",
            min=1,
            help="Images per generator call (results never depend on it).",
        ),
    ] = 8,
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
                    f"{protos}; {r.kind} by {r.kind_source}) in {r.seconds:.1f} s"
                )

        results = db.add(
            names,
            n=n,
            seed=seed or [0],
            extractors=extractor or None,
            steps=steps,
            guidance=guidance,
            template=template,
            model=model,
            batch_size=batch_size,
            progress=not quiet and not as_json,
            on_result=report,
            kind=None if stuff is None else ("stuff" if stuff else "thing"),
            mask_source=mask_source,
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
    from_dataset: Annotated[
        str | None,
        typer.Option(
            "--from-dataset",
            help="Take the classes of a dataset's class list: voc, context, coco-object, world "
            "(the offline test world), or folder (with --root).",
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

        db = _db(ctx)
        opts = {"extractors": extractor, "seed": seed, "generator_id": generator}
        if from_dataset is not None:
            if classes:
                raise ProtodbError("give classes or --from-dataset, not both")
            v = db.create_vocab_from_dataset(name, from_dataset, root=root, **opts)
        else:
            v = db.create_vocab(name, classes or [], **opts)
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


PrefilterOpt = Annotated[
    bool | None,
    typer.Option(
        "--prefilter/--no-prefilter",
        help="CLIP category pre-filter (REFERENCE 1.7). Default: on for the default profile "
        "(as in the paper), off for --profile tiny (its CLIP has random weights).",
    ),
]
WindowsOpt = Annotated[
    bool,
    typer.Option(
        "--windows/--no-windows",
        help="Sliding windows 448 and 336 (stride 224) plus the whole image, else the whole "
        "image only.",
    ),
]
EtaOpt = Annotated[
    int | None,
    typer.Option(
        "--eta", help="Pre-filter: at most this many candidate classes (default 10, the paper's)."
    ),
]
PamrOpt = Annotated[bool, typer.Option("--pamr", help="Refine the scores with PAMR.")]
StuffOpt = Annotated[
    bool,
    typer.Option(
        "--stuff-filter/--no-stuff-filter",
        help="Stuff classes give no bg prototypes; thing bg prototypes close (cosine > 0.85) to "
        "a stuff fg prototype are dropped.",
    ),
]


def _query_config(db, *, windows, prefilter, eta, pamr, stuff_filter):
    config = db.default_query_config(
        windows=windows, prefilter=prefilter, eta=eta, pamr=pamr, stuff_filter=stuff_filter
    )
    if prefilter is None:
        why = {
            "default": "profile default",
            "tiny": "profile tiny default: random CLIP",
            "world": "profile world default: the test world has no text encoder",
        }.get(db.settings.profile, f"profile {db.settings.profile}")
        err(f"pre-filter {'on' if config.prefilter else 'off'} ({why}; --prefilter to change)")
    return config


@app.command()
def segment(
    ctx: typer.Context,
    paths: Annotated[
        list[str], typer.Argument(help="Images, directories of images or glob patterns.")
    ],
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary name.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Output directory: <stem>.png (labels), <stem>_overlay.png, <stem>_rle.json "
            "(COCO RLE), <stem>.json (summary).",
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Segment images with a vocabulary: palette PNG labels (0 = background, i = i-th class).

    Example: protodb segment photos/ 'more/*.jpg' --vocab v1 --out labels/ --skip-existing
    """
    with user_errors():
        db = _db(ctx)
        config = _query_config(
            db, windows=windows, prefilter=prefilter, eta=eta, pamr=pamr, stuff_filter=stuff_filter
        )

        def report(s: dict) -> None:
            if not as_json:
                areas = ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["areas"].items())
                done = " (done before, skipped)" if s.get("skipped") else ""
                typer.echo(f"{s['image']}: {areas} -> {s['label_png']}{done}")

        summaries = db.segment(
            paths,
            vocab=vocab,
            out=out,
            progress=not quiet and not as_json,
            on_image=report,
            config=config,
            skip_existing=skip_existing,
            save_scores=save_scores,
        )
        if as_json:
            typer.echo(json.dumps(summaries, indent=2))


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100 * x:5.1f}"


@app.command("eval")
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
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary with the dataset's classes.")],
    limit: Annotated[
        int | None, typer.Option("--limit", help="Evaluate the first N images only.")
    ] = None,
    ablate: Annotated[
        str | None,
        typer.Option(
            "--ablate",
            help="Also report the mIoU with components removed, a comma-separated subset of "
            "bg,instances,parts,prefilter,stuff.",
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the JSON report to this file.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """mIoU of a vocabulary on a labelled dataset, with a per-class IoU table (REFERENCE 1.9).

    Example: protodb eval --dataset voc --root VOCdevkit/VOC2012 --vocab voc21 --limit 100
    """
    with user_errors():
        from protodb.evaluation.evaluate import AblationReport, parse_ablations

        names = parse_ablations(ablate) if ablate else []
        result = _db(ctx).evaluate(
            dataset,
            root,
            vocab=vocab,
            limit=limit,
            ablations=names,
            progress=not quiet and not as_json,
        )
        data = result.to_dict()
        if report is not None:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        full = result.full if isinstance(result, AblationReport) else result
        world = ""
        if full.test_world:
            world = " (offline TEST WORLD: synthetic classes, not a benchmark)"
        typer.echo(
            f"dataset {full.dataset}{world}: {full.n_images} images from {full.root}, "
            f"vocabulary {full.vocab}"
        )
        typer.echo("  label  IoU    class")
        for c in full.classes:
            absent = "  (absent from both: counted 0)" if c.iou is None else ""
            typer.echo(f"  {c.label:5d}  {_pct(c.iou)}  {c.name}{absent}")
        typer.echo(
            f"mIoU {100 * full.miou:.1f} over {len(full.classes)} classes "
            f"(pixel accuracy {100 * full.pixel_accuracy:.1f}%, {full.seconds:.1f} s)"
        )
        for note in full.notes:
            typer.echo(f"note: {note}")
        if isinstance(result, AblationReport):
            typer.echo("ablations (mIoU without the component; change from the full mIoU):")
            for r in result.rows:
                delta = "" if r.delta is None else f"{100 * r.delta:+6.1f}"
                typer.echo(f"  -{r.name:<10} {_pct(r.miou)} {delta:>6}  {r.removes} {r.note}")
        if report is not None:
            typer.echo(f"report: {report}")


world_app = typer.Typer(
    help="The offline TEST WORLD: synthetic classes with ground truth (no real models).",
    no_args_is_help=True,
)
app.add_typer(world_app, name="world")


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
        from protodb.world.dataset import make_dataset

        ds = make_dataset(out, n=images, seed=seed)
        typer.echo(
            f"test world: {len(ds.ids)} scenes (seed {seed}) in {ds.root}, "
            f"{len(ds.classes)} labels: {', '.join(ds.classes)}"
        )


@world_app.command("bank")
def world_bank(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("--n", help="Support images per class.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Support-set seed.")] = 0,
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary to pin.")] = "world",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Add every test-world class to the bank (profile world; stuff recorded as stuff) and pin
    a vocabulary over them in label order.

    Example: protodb --bank world-bank/ world bank && protodb --bank world-bank/ eval
    --dataset world --root world-data/ --vocab world --ablate bg,instances,parts,prefilter,stuff
    """
    with user_errors():
        import protodb
        from protodb.errors import ProtodbError

        o = ctx.obj or {}
        if o.get("profile") not in (None, "world"):
            raise ProtodbError(f"`world bank` runs on profile world, not {o['profile']!r}")
        db = protodb.connect(o.get("bank"), profile="world", device=o.get("device"))
        _tiny_notice(db)
        v = db.build_world(n=n, seed=seed, vocab=vocab, progress=not quiet)
        typer.echo(f"vocabulary {v.name}: {', '.join(v.class_names)} (bank {db.settings.bank})")


@app.command()
def explain(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="The image.")],
    vocab: Annotated[str, typer.Option("--vocab", help="Vocabulary name.")],
    at: Annotated[str, typer.Option("--at", help="The pixel as X,Y (column, row), from 0.")],
    out: Annotated[
        Path, typer.Option("--out", help="PNG of the support regions behind the pixel.")
    ] = Path("explain.png"),
    windows: WindowsOpt = True,
    prefilter: PrefilterOpt = None,
    eta: EtaOpt = None,
    pamr: PamrOpt = False,
    stuff_filter: StuffOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Say which class won a pixel, through which prototype (extractor, level, polarity), and
    draw the support-image regions that prototype came from.

    Example: protodb explain photo.jpg --vocab v1 --at 120,80 --out why.png
    """
    with user_errors():
        from protodb.errors import ProtodbError

        try:
            x, y = (int(v) for v in at.split(","))
        except ValueError:
            raise ProtodbError(f"--at {at!r} must be X,Y in pixels, e.g. --at 120,80") from None
        db = _db(ctx)
        config = _query_config(
            db, windows=windows, prefilter=prefilter, eta=eta, pamr=pamr, stuff_filter=stuff_filter
        )
        e = db.explain(image, vocab=vocab, at=(x, y), out=out, config=config)
        if as_json:
            typer.echo(json.dumps(e.to_dict(), indent=2))
        else:
            typer.echo(e.describe())
            typer.echo(f"picture: {e.picture}")


@app.command()
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
