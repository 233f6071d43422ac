"""The Python API. Every CLI command is one call on :class:`ProtoDB`.

db = protodb.connect("bank/", profile="tiny")
db.add(["red apple", "grass"], n=4)
db.create_vocab("v1", ["red apple", "grass"])
db.vocab("v1").segment(image)        # -> SegmentResult

This module is the facade, one short method per command that delegates to the family doing the
work (synthesis, bank, query, evaluation, world); it is past 400 lines (about 470) because it is
the one place a Python user reads to learn the whole surface, so it stays whole.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protodb.bank.schema import LogEntry
from protodb.bank.store import Bank, open_bank
from protodb.bank.vocab import Vocabulary, create_vocab, get_vocab, list_vocabs
from protodb.errors import NotFoundError, ProtodbError
from protodb.extractors.base import ExtractorConfig, known_issue
from protodb.extractors.factory import default_extractor_config
from protodb.images import expand_paths
from protodb.names import canonical, class_key
from protodb.progress import Progress
from protodb.query.assemble import assemble
from protodb.query.config import QueryConfig
from protodb.settings import Settings, resolve_device
from protodb.synthesis.generate import default_generator_config


@dataclass
class ClassInfo:
    """A class in the bank with its completed prototype sets (one dict per set: generator_id,
    seed, extractor_id, recipe_id, recipe (its config, a dict: mask_source, mask, n, parts,
    levels), n, n_used, n_fg, n_bg, dim, mask_source, thresholds, and known_issue:
    why the set's features are known to be wrong, e.g. CLIP built before the QuickGELU fix, or
    None)."""

    name: str
    class_key: str
    kind: str
    kind_source: str
    sets: list[dict] = field(default_factory=list)


class VocabHandle:
    """A pinned vocabulary with its prototypes assembled lazily (once per handle)."""

    def __init__(self, db: ProtoDB, vocab: Vocabulary, config: QueryConfig | None = None) -> None:
        self.db = db
        self.info = vocab
        self.config = config or QueryConfig()
        self._segmenter = None

    @property
    def segmenter(self):
        if self._segmenter is None:
            self._segmenter = self.db._segmenter_for(self.info, self.config)
        return self._segmenter

    def segment(self, image: np.ndarray | str | os.PathLike, *, progress: bool | Progress = False):
        """Segment one image (uint8 [H, W, 3] RGB or a path); ``progress``: a bar over its
        (extractor, window) pairs.

        Returns a protodb.query.segment.SegmentResult."""
        from protodb.images import load_rgb

        array = load_rgb(image) if isinstance(image, str | os.PathLike) else np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ProtodbError(
                f"image must be uint8 [H, W, 3] RGB, got {array.dtype} {array.shape}"
            )
        return self.segmenter.segment(array, Progress.of(progress))

    def explain(
        self,
        image: np.ndarray | str | os.PathLike,
        x: int,
        y: int,
        *,
        out: str | os.PathLike | None = None,
    ):
        """Which class won pixel (x, y) (column, row) and through which prototype; with ``out``,
        a PNG of the support-image regions that prototype came from.
        Returns protodb.query.explain.Explanation."""
        return self.explain_points(image, [(x, y)], out=out)[0]

    def explain_points(
        self,
        image: np.ndarray | str | os.PathLike,
        points: Sequence[tuple[int, int]],
        *,
        out: str | os.PathLike | None = None,
    ):
        """Explain several pixels (x, y) of one image from a single segmentation of it.
        Returns one protodb.query.explain.Explanation per point, in order; pictures as in
        protodb.query.explain.explain_points."""
        from protodb.images import load_rgb
        from protodb.query.explain import explain_points

        is_path = isinstance(image, str | os.PathLike)
        if out is not None and Path(out).is_dir():  # a folder: the picture goes inside it
            out = Path(out) / f"{Path(image).stem if is_path else 'image'}_explain.png"
        array = load_rgb(image) if is_path else np.asarray(image)
        return explain_points(self.db.open_existing(), self.segmenter, array, points, out=out)


class ProtoDB:
    """A protodb session: a bank plus the profile and device used to fill and query it."""

    def __init__(
        self,
        bank: str | None = None,
        *,
        profile: str | None = None,
        device: str | None = None,
        at: int | None = None,
    ):
        self.settings = Settings.resolve(bank=bank, profile=profile, device=device)
        self.at = at  # read the bank as it was at this bank version (read-only)
        self._bank: Bank | None = None
        self._reader = None  # the quick reader of _read; False: the Bank reads
        self._device: str | None = None
        self._assembled: dict[str, list] = {}
        self._segmenters: dict[tuple, object] = {}
        self._referrers: dict[tuple, object] = {}

    @property
    def bank(self) -> Bank:
        if self._bank is None:
            self._bank = open_bank(self.settings.bank, create=self.at is None, at=self.at)
        return self._bank

    def open_existing(self) -> Bank:
        """The bank, refusing to create it (for read-only commands)."""
        if self._bank is None:
            self._bank = open_bank(self.settings.bank, create=False, at=self.at)
        return self._bank

    def _read(self, read: Callable):
        """``read(bank)`` for the listings (classes, history, vocabularies): through the open
        Bank if there is one, else through a quick Lance-only reader (protodb.bank.readonly:
        no lancedb import, so ``protodb ls`` starts in well under a second) where it applies,
        else, or when it fails in any way but a protodb error, through the Bank opened
        without creating it, as before."""
        if self._bank is None:
            from protodb.bank.readonly import open_reader

            if self._reader is None:
                self._reader = open_reader(self.settings.bank, at=self.at) or False
            if self._reader:
                try:
                    return read(self._reader)
                except ProtodbError:
                    raise
                except Exception:  # noqa: BLE001 - the Bank reads it or reports it, as before
                    self._reader = False
        return read(self.open_existing())

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.settings.device)
        return self._device

    # ------------------------------------------------------------------ add

    def add(
        self,
        names: Sequence[str],
        *,
        n: int = 32,
        seed: int | Sequence[int] = 0,
        extractors: Sequence[str] | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        template: str | None = None,
        model: str | None = None,
        batch_size: int = 8,
        progress: bool = True,
        on_result: Callable | None = None,
        kind: str | None = None,
        mask_source: str = "otsu",
        parts: int = 32,
        executor=None,
    ):
        """Build prototype sets for each class and seed; existing sets are skipped.

        extractors: names; default the paper's ensemble (sd, dino, clip) on the real profile,
        dinov2 alone on the tiny profile (see protodb.synthesis.add.default_extractors). seed: one
        seed or several (one support set per seed). model: the Stable Diffusion (hub id or local
        directory) of the generator and of the ``sd`` extractor. kind: "stuff" / "thing" for
        every class, or None (lexicon, else a guess from the support set). mask_source: "otsu"
        or "maskcut"; parts: K of the part prototypes. mask_source, n and parts make the sets'
        recipe (protodb.synthesis.recipe), part of their key: another of them is another set.
        Models load once and serve every class; when this call loaded any, every cached model
        is released at its end (protodb.extractors.factory.release_models). Returns one
        protodb.synthesis.add.AddResult per (class, seed), classes outer.
        executor: None (this process) or a protodb.scale.add.RayExecutor: the (class, seed)
        units are built on Ray actors and committed here, one writer (``executor.stats``: each
        actor's throughput).
        """
        from protodb.extractors.factory import loaded_extractors
        from protodb.synthesis.add import add_class, default_extractors

        if not names:
            raise ProtodbError("no class given: protodb add CLASS [CLASS...]")
        display = [canonical(x) for x in names]
        keys = [class_key(x) for x in names]
        if len(set(keys)) != len(keys):
            raise ProtodbError("a class is listed twice; list each class once")
        seeds = [seed] if isinstance(seed, int) else list(seed)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ProtodbError(f"--seed {seeds} must list at least one seed, each once")
        for s_ in seeds:
            if not 0 <= s_ < 2**63:
                raise ProtodbError(f"--seed {s_} must be from 0 to 2**63 - 1 (a bank integer)")
        if batch_size < 1:
            raise ProtodbError(f"--batch-size {batch_size} must be >= 1")
        gen = default_generator_config(
            self.settings.profile, steps=steps, guidance=guidance, template=template, model=model
        )
        if extractors is None:
            extractors = default_extractors(self.settings.profile)
        # --model is the Stable Diffusion the sd extractor reads too (it shares the UNet)
        exts = [
            default_extractor_config(
                self.settings.profile, name, model=model if name == "sd" else None
            )
            for name in extractors
        ]
        jobs = [(name, s_) for name in display for s_ in seeds]
        self._check_add_models(gen, exts, jobs, mask_source, n, parts)
        if executor is not None:
            return executor.add(
                self, jobs, generator=gen, extractors=exts, n=n, batch_size=batch_size,
                kind=kind, mask_source=mask_source, parts=parts, progress=progress,
                on_result=on_result,
            )  # fmt: skip
        results = []
        prog = Progress(progress)
        # models load once and serve every class; what this call loaded is freed at its end
        loaded = loaded_extractors()
        with (
            _released_after(loaded),
            prog.bar("classes", len(jobs), "set", show=len(jobs) > 1) as bar,
        ):
            for name, s_ in jobs:
                bar.set_postfix_str(name)
                res = add_class(
                    self.bank,
                    name,
                    generator=gen,
                    extractors=exts,
                    seed=s_,
                    n=n,
                    device=self.settings.device,
                    batch_size=batch_size,
                    progress=prog,
                    kind=kind,
                    mask_source=mask_source,
                    parts=parts,
                )
                results.append(res)
                bar.update(1)
                if on_result is not None:
                    with prog.interrupt():
                        on_result(res)
        return results

    def _check_add_models(self, gen, exts, jobs, mask_source: str, n: int, parts: int) -> None:
        """Before any image is generated: every model the sets still to build need can be
        loaded (protodb.models.preflight), so a missing one fails in seconds, not after
        minutes of sampling. Nothing is checked when every set is already in the bank."""
        from protodb.models.defaults import DINO_DEFAULT, SAM_DEFAULT
        from protodb.models.preflight import ModelNeed, extractor_need, generator_need, preflight
        from protodb.synthesis.recipe import make_recipe

        recipe_id = make_recipe(mask_source, n, parts).id
        try:
            bank = self.open_existing()  # a bank that does not exist yet is not made for this
        except NotFoundError:
            todo = list(exts)
        else:
            # one read of the sets table, not one lookup per (class, seed, extractor)
            columns = ["class_key", "generator_id", "seed", "extractor_id", "recipe_id"]
            have = {tuple(r[c] for c in columns) for r in bank.sets().select(columns).to_pylist()}
            todo = [
                ext
                for ext in exts
                if any(
                    (class_key(name), gen.id, s_, ext.id, recipe_id) not in have
                    for name, s_ in jobs
                )
            ]
        if not todo:
            return
        needs = [generator_need(gen), *(extractor_need(ext) for ext in todo)]
        # the segmenters take their tiny twins below 128 px (protodb.segmenters)
        segmenter = {"maskcut": ("DINO (maskcut)", DINO_DEFAULT), "sam": ("SAM", SAM_DEFAULT)}
        if mask_source in segmenter and gen.size >= 128:
            needs.append(ModelNeed(*segmenter[mask_source]))
        preflight(needs)

    def sheet(self, out: str | os.PathLike, classes: Sequence[str] | None = None, *, n: int = 8):
        """Write a contact sheet (PNG) of the support sets of ``classes`` (default: all): per
        class its images, their attention and their fg / bg masks (protodb.synthesis.sheet).
        Returns the path."""
        from protodb.synthesis.sheet import contact_sheet

        return contact_sheet(self.open_existing(), list(classes) if classes else None, out, n=n)

    # ------------------------------------------------------------------ reads

    def classes(self) -> list[ClassInfo]:
        return self._read(_class_infos)

    def show(self, name: str) -> ClassInfo:
        key = class_key(name)
        for info in self.classes():
            if info.class_key == key:
                return info
        raise NotFoundError(
            f"class {canonical(name)!r} is not in the bank; add it: protodb add {canonical(name)!r}"
        )

    def history(self) -> list[LogEntry]:
        return self._read(lambda bank: bank.history())

    # ------------------------------------------------------------------ versions, sharing

    def restore(self, version: int) -> LogEntry:
        """Make bank version ``version`` the latest (a new version equal to it)."""
        from protodb.bank.maintenance import restore

        return restore(self.open_existing(), version)

    def gc(self, *, older_than_hours: float = 0.0):
        """Remove orphans and untagged versions older than ``older_than_hours``, compact
        prototype tables clustered by class -> protodb.bank.maintenance.GcResult."""
        import datetime as dt

        from protodb.bank.maintenance import gc

        if not (math.isfinite(older_than_hours) and 0 <= older_than_hours <= 1e6):
            raise ProtodbError(f"--older-than {older_than_hours} must be from 0 to 1e6 hours")
        return gc(self.open_existing(), older_than=dt.timedelta(hours=older_than_hours))

    def export(self, target: str | os.PathLike, *, vocab: str | None = None):
        """Export a vocabulary (or the whole bank) -> protodb.bank.share.manifest.ShareResult."""
        from protodb.bank.share.export import export

        return export(self.open_existing(), str(target), vocab=vocab)

    def import_(self, source: str | os.PathLike, *, name: str | None = None):
        """Import an export into this bank (``name``: the vocabulary's new name)."""
        from protodb.bank.share.merge import import_export

        return import_export(self.bank, str(source), rename=name)

    def merge(self, other: str | os.PathLike):
        """Merge another bank into this one -> protodb.bank.share.manifest.ShareResult."""
        from protodb.bank.share.merge import merge

        return merge(self.bank, str(other))

    # ------------------------------------------------------------------ vocabularies

    def create_vocab(
        self,
        name: str,
        classes: Sequence[str],
        *,
        extractors=None,
        seed=None,
        generator_id=None,
        recipes: Sequence[str] | None = None,
    ) -> Vocabulary:
        """Pin a vocabulary (protodb.bank.vocab.create_vocab); recipes: ``ID`` or
        ``CLASS=ID`` each, the prototype recipe of a class with several."""
        return create_vocab(
            self.open_existing(),
            name,
            list(classes),
            extractors=list(extractors) if extractors else None,
            seed=seed,
            generator_id=generator_id,
            recipes=list(recipes) if recipes else None,
        )

    def vocabs(self) -> list[Vocabulary]:
        return self._read(list_vocabs)

    def vocab(self, name: str, config: QueryConfig | None = None) -> VocabHandle:
        """A handle on vocabulary ``name``; ``config`` sets the query engine's options
        (default: :meth:`default_query_config`)."""
        vocab = self._read(lambda bank: get_vocab(bank, name))
        return VocabHandle(self, vocab, config or self.default_query_config())

    def default_query_config(self, **overrides) -> QueryConfig:
        """The query options of this profile, with ``overrides`` (QueryConfig fields; None
        leaves a default). The CLIP pre-filter is on for the default profile, as in the paper,
        and off for ``tiny`` (its CLIP has random weights) and ``world`` (the test world has no
        text encoder); turn it on with prefilter=True."""
        from dataclasses import replace

        base = QueryConfig.for_profile(self.settings.profile)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def _segmenter_for(self, vocab: Vocabulary, config: QueryConfig):
        """The Segmenter of (vocabulary, config), cached: vocabularies are immutable, so their
        assembled prototypes and device tensors are built once per session."""
        from protodb.query.segment import Segmenter

        key = (vocab.name, config, self.device)
        if key not in self._segmenters:
            if vocab.name not in self._assembled:
                self._assembled[vocab.name] = assemble(self.open_existing(), vocab)
            self._segmenters[key] = Segmenter(
                vocab, self._assembled[vocab.name], self.device, config
            )
        return self._segmenters[key]

    # ------------------------------------------------------------------ segment

    def segment(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        vocab: str,
        out: str | os.PathLike,
        progress: bool = True,
        on_image: Callable[[dict], None] | None = None,
        config: QueryConfig | None = None,
        skip_existing: bool = False,
        save_scores: bool = False,
        student: str | os.PathLike | None = None,
        ray: str | None = None,
        workers: int | None = None,
    ) -> list[dict]:
        """Segment image files and write their outputs (protodb.query.outputs) to ``out``.

        ``paths``: files, directories (their images, sorted) and glob patterns ("photos/*.jpg",
        "**" recursive). Images are decoded and segmented one at a time (memory stays bounded
        however many there are), with a progress bar on stderr. ``skip_existing``: an image
        whose summary ``<stem>.json`` is already in ``out`` is not redone (the summary is
        written last, so an interrupted run resumes where it stopped). ``config``: query options
        (default: :meth:`default_query_config`). Returns one summary per image (see
        protodb.query.outputs.write_outputs, plus "image", "vocab" and "skipped").
        ``student``: segment with the student distilled from ``vocab`` (protodb.synth.student)
        instead of prototype matching.

        ``ray``: a Ray address ("local" starts a cluster of this machine; "auto", HOST:PORT):
        segment on an actor pool of ``workers`` actors there (protodb.scale.segment, Ray Data;
        ``paths`` and ``out`` may then also be ``s3://bucket/prefix``), same files, same
        summaries, in input order; ``on_image`` is then called as images finish."""
        from protodb.query.batch import segment_files

        if workers is not None and ray is None:
            raise ProtodbError(f"--workers {workers} needs --ray (actors run on a Ray cluster)")
        if ray is not None:
            from protodb.scale.segment import segment_ray

            if student is not None:
                raise ProtodbError(
                    "--student runs in this process only; drop --ray/--workers to use it"
                )
            return segment_ray(
                self,
                paths,
                vocab=vocab,
                out=out,
                address=ray,
                workers=workers,
                config=config,
                skip_existing=skip_existing,
                save_scores=save_scores,
                progress=progress,
                on_image=on_image,
            )
        for p in [*paths, out]:
            if str(p).startswith("s3://"):
                raise ProtodbError(
                    f"{str(p)!r}: s3:// inputs and outputs need Ray (--ray, or ray= here)"
                )
        if student is not None:
            from protodb.synth.student import Student, StudentHandle

            handle = StudentHandle(Student.load(student), vocab)
        else:
            handle = self.vocab(vocab, config)
        return segment_files(
            handle,
            expand_paths(paths),
            out,
            vocab=vocab,
            progress=progress,
            on_image=on_image,
            skip_existing=skip_existing,
            save_scores=save_scores,
        )

    def explain(
        self,
        image: str | os.PathLike | np.ndarray,
        *,
        vocab: str,
        at: tuple[int, int] | Sequence[tuple[int, int]],
        out: str | os.PathLike | None = None,
        config: QueryConfig | None = None,
    ):
        """Explain the label of pixel ``at`` = (x, y) of ``image`` (see VocabHandle.explain);
        ``at`` a list of (x, y): one Explanation per pixel, from one segmentation."""
        handle = self.vocab(vocab, config)
        if len(at) == 2 and all(isinstance(v, int | np.integer) for v in at):
            return handle.explain(image, int(at[0]), int(at[1]), out=out)
        return handle.explain_points(image, [(int(x), int(y)) for x, y in at], out=out)

    # ------------------------------------------------------------------ refer

    def refer_config(self, **overrides):
        """The referring settings of this profile (protodb.refer.refer.default_refer_config),
        with ``overrides`` (ReferConfig fields; None leaves a default)."""
        from protodb.refer.refer import default_refer_config

        return default_refer_config(self.settings.profile, **overrides)

    def referrer(self, config=None, *, vocab: str | None = None):
        """The referring pipeline (protodb.refer.refer.Referrer) of ``config`` (default:
        :meth:`refer_config`), cached; ``vocab``: a vocabulary for the bank-aware mode."""
        from protodb.refer.refer import Referrer

        config = config or self.refer_config()
        key = (config, vocab, self.device)
        if key not in self._referrers:
            handle = self.vocab(vocab) if vocab is not None else None
            self._referrers[key] = Referrer(config, self.device, handle)
        return self._referrers[key]

    def refer(
        self,
        image: np.ndarray | str | os.PathLike,
        expression: str,
        *,
        subject: str | None = None,
        vocab: str | None = None,
        config=None,
    ):
        """The region of ``image`` (uint8 [H, W, 3] RGB or a path) that ``expression`` refers
        to (zero-shot, after Ref-Diff; REFERENCE 2). ``subject``: a word of the expression to use
        as its head noun; ``vocab``: bank-aware mode (the subject's class prototypes as a
        further proposal source and score); ``config``: a ReferConfig. Returns a
        protodb.refer.refer.ReferResult."""
        from protodb.images import load_rgb

        array = load_rgb(image) if isinstance(image, str | os.PathLike) else np.asarray(image)
        return self.referrer(config, vocab=vocab).refer(array, expression, subject=subject)

    def refer_files(
        self,
        out: str | os.PathLike,
        *,
        images: Sequence[str | os.PathLike] = (),
        expression: str | None = None,
        pairs: str | os.PathLike | None = None,
        subject: str | None = None,
        vocab: str | None = None,
        config=None,
        progress: bool = True,
        on_pair: Callable[[dict], None] | None = None,
        skip_existing: bool = False,
    ) -> list[dict]:
        """Refer ``expression`` in each of ``images`` (files, directories, globs), or every
        (image, expression) line of the JSONL file ``pairs``, writing the files of
        protodb.refer.outputs to ``out``. Returns one summary per pair."""
        from protodb.refer.outputs import (
            count_lines,
            pairs_from_args,
            pairs_from_jsonl,
            refer_files,
        )

        if (pairs is None) == (expression is None):
            raise ProtodbError("give IMAGE... EXPRESSION or --from pairs.jsonl, not both")
        referrer = self.referrer(config, vocab=vocab)
        if pairs is not None:
            if images:
                raise ProtodbError("with --from pairs.jsonl give no images on the command line")
            todo, total = pairs_from_jsonl(pairs), count_lines(pairs)
        else:
            referrer.check(expression)  # before any image is read
            items = pairs_from_args([Path(p) for p in images], expression)
            todo, total = iter(items), len(items)
        return refer_files(
            referrer,
            todo,
            out,
            total=total,
            subject=subject,
            progress=progress,
            on_pair=on_pair,
            skip_existing=skip_existing,
        )

    def evaluate_refer(
        self,
        dataset: str,
        root: str | os.PathLike,
        *,
        split: str = "val",
        limit: int | None = None,
        vocab: str | None = None,
        config=None,
        progress: bool = True,
    ):
        """mIoU, oIoU and Pr@0.5..0.9 of referring segmentation on ``dataset`` (folder,
        refcoco, refcoco+, refcocog; see protodb.refer.evaluate) at ``root``. Returns a
        protodb.refer.evaluate.ReferEvalReport with one row per expression."""
        from protodb.refer.evaluate import evaluate_refer, open_refer_dataset

        items = open_refer_dataset(dataset, root, split=split, limit=limit)
        referrer = self.referrer(config, vocab=vocab)
        return evaluate_refer(referrer, items, dataset=dataset, root=root, progress=progress)

    # ------------------------------------------------------------------ evaluation

    def create_vocab_from_dataset(
        self, name: str, dataset: str, *, root: str | os.PathLike | None = None, **options
    ) -> Vocabulary:
        """Pin vocabulary ``name`` over a dataset's classes (without background, label order):
        voc, context, coco-object, world, or folder (with ``root`` holding classes.txt)."""
        from protodb.evaluation.datasets import dataset_classes

        return self.create_vocab(name, dataset_classes(dataset, root), **options)

    def evaluate(
        self,
        dataset: str,
        root: str | os.PathLike,
        *,
        vocab: str,
        limit: int | None = None,
        config: QueryConfig | None = None,
        ablations: Sequence[str] = (),
        progress: bool = True,
    ):
        """mIoU of ``vocab`` on dataset ``dataset`` (voc, context, coco-object, folder, world)
        at ``root``, the first ``limit`` images only when given. Returns a
        protodb.evaluation.evaluate.EvalReport, or an AblationReport when ``ablations`` are named (a
        subset of protodb.evaluation.evaluate.ABLATIONS)."""
        from protodb.evaluation.datasets import open_dataset
        from protodb.evaluation.evaluate import ablate, evaluate

        ds = open_dataset(dataset, root, limit=limit)
        self.open_existing()
        if ablations:
            return ablate(self, vocab, ds, list(ablations), config=config, progress=progress)
        return evaluate(self, vocab, ds, config=config, progress=progress)

    def synth(self, *, vocab: str, out: str | os.PathLike, **options):
        """Write (or complete) a synthetic labelled dataset in ``out`` with vocabulary
        ``vocab``'s generator: one mask per named entity (protodb.synth.run.synthesize has the
        options). Returns a protodb.synth.run.SynthReport."""
        from protodb.synth.run import synthesize

        return synthesize(self, vocab=vocab, out=out, **options)

    def train_grounding(
        self, *, vocab: str, seen: Sequence[str], out: str | os.PathLike, **options
    ):
        """Train a grounding head on synthetic images of the ``seen`` classes of ``vocab`` and
        save it to ``out`` (protodb.synth.train.train_grounding has the options).
        Returns a protodb.synth.train.TrainReport."""
        from protodb.synth.train import train_grounding

        return train_grounding(self, vocab=vocab, seen=list(seen), out=out, **options)

    def distill(self, *, vocab: str, data: str | os.PathLike, out: str | os.PathLike, **options):
        """Train a student segmenter on the synthetic dataset ``data`` (made by :meth:`synth`
        with ``vocab``) and save it to ``out`` (protodb.synth.student.distill has the options).
        Returns a protodb.synth.student.DistillReport."""
        from protodb.synth.student import distill

        return distill(self, vocab=vocab, data=data, out=out, **options)

    def build_world(self, *, n: int = 8, seed: int = 0, vocab: str = "world", progress=True, **add):
        """Fill the bank with every class of the offline TEST WORLD and pin ``vocab`` (needs
        profile "world" or "world-learned"; ``add``: extractors, mask_source); see
        protodb.world.bank.build_bank."""
        from protodb.world.bank import build_bank

        return build_bank(self, n=n, seed=seed, vocab=vocab, progress=progress, **add)


@contextlib.contextmanager
def _released_after(before: set):
    """On exit, release every cached model (protodb.extractors.factory.release_models) when
    an extractor was built inside: an ``add`` call frees the models it loaded."""
    from protodb.extractors.factory import loaded_extractors, release_models

    try:
        yield
    finally:
        if loaded_extractors() - before:
            release_models()


def _class_infos(bank) -> list[ClassInfo]:
    """The classes of a bank (a Bank or a BankReader), by class key, with their sets."""
    sets = bank.sets().to_pylist()
    out = []
    for row in sorted(bank.classes().to_pylist(), key=lambda r: r["class_key"]):
        mine = [_set_dict(s) for s in sets if s["class_key"] == row["class_key"]]
        out.append(ClassInfo(row["name"], row["class_key"], row["kind"], row["kind_source"], mine))
    return out


def _set_dict(row: dict) -> dict:
    keys = (
        "generator_id",
        "seed",
        "extractor_id",
        "recipe_id",
        "n",
        "n_used",
        "n_fg",
        "n_bg",
        "dim",
        "mask_source",
        "thresholds",
    )
    out = {k: row[k] for k in keys}
    out["recipe"] = json.loads(row["recipe"]) if row.get("recipe") else None
    out["known_issue"] = known_issue(ExtractorConfig.from_json(row["extractor_config"]))
    return out


def connect(
    bank: str | os.PathLike | None = None,
    *,
    profile: str | None = None,
    device: str | None = None,
    at: int | None = None,
) -> ProtoDB:
    """Open a protodb session on ``bank`` (a directory or LanceDB URI; default: $PROTODB_BANK,
    else the per-user data directory); ``at``: read-only, as the bank was at that version."""
    return ProtoDB(None if bank is None else str(bank), profile=profile, device=device, at=at)
