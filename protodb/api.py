"""The Python API, the facade: every CLI command is one short method on :class:`ProtoDB`,
handing the work to the family that does it with the parts of the session's
:class:`protodb.runtime.Runtime` it uses. Nothing below imports it.

db = protodb.connect("bank/", profile="tiny"); db.add(["red apple", "grass"], n=4)
db.create_vocab("v1", ["red apple", "grass"]); db.vocab("v1").segment(image)  # SegmentResult
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np

from protodb.bank.schema import LogEntry
from protodb.bank.store import Bank
from protodb.bank.vocab import Vocabulary, create_vocab, list_vocabs
from protodb.catalog import ClassInfo, find_class
from protodb.errors import ProtodbError
from protodb.query.config import QueryConfig
from protodb.query.handle import VocabHandle
from protodb.runtime import Runtime
from protodb.settings import Settings

__all__ = ["ClassInfo", "ProtoDB", "VocabHandle", "connect"]


class ProtoDB:
    """A protodb session: a bank plus the profile and device used to fill and query it
    (its :class:`~protodb.runtime.Runtime`, ``runtime``)."""

    def __init__(
        self,
        bank: str | None = None,
        *,
        profile: str | None = None,
        device: str | None = None,
        at: int | None = None,
    ):
        self.runtime = Runtime.connect(bank, profile=profile, device=device, at=at)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def at(self) -> int | None:
        """The bank version read (read-only), or None: the latest."""
        return self.runtime.at

    @property
    def bank(self) -> Bank:
        return self.runtime.bank

    def open_existing(self) -> Bank:
        """The bank, refusing to create it (for read-only commands)."""
        return self.runtime.open_existing()

    @property
    def device(self) -> str:
        return self.runtime.device

    @property
    def _bank(self) -> Bank | None:  # whether a listing went through the Bank (tests look)
        return self.runtime.opened

    @property
    def _reader(self):  # the quick reader of the listings, or False (tests look)
        return self.runtime.reader

    # ------------------------------------------------------------------ add

    def add(
        self,
        names: Sequence[str],
        *,
        n: int | None = None,
        seed: int | Sequence[int] | None = None,
        extractors: Sequence[str] | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        template: str | None = None,
        model: str | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        on_result: Callable | None = None,
        kind: str | None = None,
        mask_source: str | None = None,
        parts: int | None = None,
        executor=None,
    ):
        """Build prototype sets for each (class, seed); existing sets are skipped. Returns one
        protodb.synthesis.add.AddResult per (class, seed), classes outer.

        Options are protodb.synthesis.request.AddRequest's (their meanings and defaults; None
        takes the default); ``executor``: None (this process) or a protodb.scale.add.RayExecutor
        (units built on Ray actors, committed here); see protodb.synthesis.run_add.add_classes.
        """
        from protodb.synthesis.request import AddRequest
        from protodb.synthesis.run_add import add_classes

        request = AddRequest.of(
            names, n=n, seed=seed, extractors=extractors, steps=steps, guidance=guidance,
            template=template, model=model, batch_size=batch_size, kind=kind,
            mask_source=mask_source, parts=parts,
        )  # fmt: skip
        return add_classes(
            self.runtime, request, progress=progress, on_result=on_result, executor=executor
        )

    def sheet(self, out: str | os.PathLike, classes: Sequence[str] | None = None, *, n: int = 8):
        """Write a contact sheet (PNG) of the support sets of ``classes`` (default: all): per
        class its images, their attention and their fg / bg masks (protodb.synthesis.sheet).
        Returns the path."""
        from protodb.synthesis.sheet import contact_sheet

        return contact_sheet(self.open_existing(), list(classes) if classes else None, out, n=n)

    # ------------------------------------------------------------------ reads

    def classes(self) -> list[ClassInfo]:
        return self.runtime.classes()

    def show(self, name: str) -> ClassInfo:
        return find_class(self.classes(), name)

    def history(self) -> list[LogEntry]:
        return self.runtime.read(lambda bank: bank.history())

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
        self, name: str, classes: Sequence[str], *, extractors=None, seed=None,
        generator_id=None, recipes: Sequence[str] | None = None, kinds=None,
    ) -> Vocabulary:  # fmt: skip
        """Pin a vocabulary (protodb.bank.vocab.create_vocab); recipes: ``ID`` or
        ``CLASS=ID`` each, the prototype recipe of a class with several; kinds: pinned kinds."""
        return create_vocab(
            self.open_existing(), name, list(classes),
            extractors=list(extractors) if extractors else None, seed=seed,
            generator_id=generator_id, recipes=list(recipes) if recipes else None, kinds=kinds,
        )  # fmt: skip

    def vocabs(self) -> list[Vocabulary]:
        return self.runtime.read(list_vocabs)

    def vocab(self, name: str, config: QueryConfig | None = None) -> VocabHandle:
        """A handle on vocabulary ``name``; ``config`` sets the query engine's options
        (default: :meth:`default_query_config`)."""
        return self.runtime.vocab(name, config)

    def default_query_config(self, **overrides) -> QueryConfig:
        """The query options of this profile, with ``overrides`` (QueryConfig fields; None
        leaves a default); see protodb.runtime.Runtime.query_config."""
        return self.runtime.query_config(**overrides)

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
        coco: str | os.PathLike | None = None,
    ) -> list[dict]:
        """Segment image files (paths, folders, globs) into ``out``; one summary per image.

        protodb.query.batch.segment_paths has the options (``config``: default
        :meth:`default_query_config`); ``student``: the student distilled from ``vocab``
        (protodb.grounded.student) instead of prototype matching; ``ray``: a Ray address, with
        ``workers`` actors and ``s3://`` paths (protodb.scale.segment.segment_ray); ``coco``:
        also one COCO file of the run there (protodb.query.coco)."""
        from protodb.query.batch import segment_paths
        from protodb.query.coco import coco_sink

        if workers is not None and ray is None:
            raise ProtodbError(f"--workers {workers} needs --ray (actors run on a Ray cluster)")
        if ray is not None and student is not None:
            raise ProtodbError(
                "--student runs in this process only; drop --ray/--workers to use it"
            )
        sink = coco_sink(coco, self.runtime, vocab, out)
        if ray is not None:
            from protodb.scale.segment import segment_ray

            return sink.write(segment_ray(
                self.runtime, paths, vocab=vocab, out=out, address=ray, workers=workers,
                config=config, skip_existing=skip_existing, save_scores=save_scores,
                progress=progress, on_image=on_image,
            ))  # fmt: skip
        if student is not None:
            from protodb.grounded.student import Student, StudentHandle

            handle = StudentHandle(Student.load(student), vocab)
        else:
            handle = self.vocab(vocab, config)
        return sink.write(segment_paths(
            handle, paths, out, vocab=vocab, progress=progress, on_image=on_image,
            skip_existing=skip_existing, save_scores=save_scores,
        ))  # fmt: skip

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
        return self.runtime.refer_config(**overrides)

    def referrer(self, config=None, *, vocab: str | None = None):
        """The referring pipeline (protodb.refer.refer.Referrer) of ``config`` (default:
        :meth:`refer_config`), cached; ``vocab``: a vocabulary for the bank-aware mode."""
        return self.runtime.referrer(config, vocab=vocab)

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
        from protodb.refer.outputs import pair_source, refer_files

        referrer = self.referrer(config, vocab=vocab)
        todo, total = pair_source(referrer, images, expression, pairs)
        return refer_files(
            referrer, todo, out, total=total, subject=subject, progress=progress,
            on_pair=on_pair, skip_existing=skip_existing,
        )  # fmt: skip

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
        """Pin vocabulary ``name`` over a dataset's classes (no background, label order) with
        the dataset's kinds: voc, context, coco-object, world, folder (``root``: classes.txt)."""
        from protodb.evaluation.datasets import dataset_classes, dataset_kinds

        classes = dataset_classes(dataset, root)
        return self.create_vocab(name, classes, kinds=dataset_kinds(dataset, classes), **options)

    def evaluate(
        self, dataset: str, root: str | os.PathLike, *, vocab: str | None = None,
        limit: int | None = None, config: QueryConfig | None = None,
        ablations: Sequence[str] = (), progress: bool = True,
        student: str | os.PathLike | None = None, unseen: str | Sequence[str] | None = None,
    ):  # fmt: skip
        """mIoU of ``vocab`` (or the student in directory ``student``) on ``dataset`` (voc, context,
        coco-object, folder, world) at ``root``, its first ``limit`` images; ``config``: default
        :meth:`default_query_config`, as segment's; ``unseen``: ZS3's split
        (protodb.evaluation.zs3.dataset_split). Returns an evaluation.evaluate.EvalReport, or an
        AblationReport for ``ablations`` (a subset of protodb.evaluation.evaluate.ABLATIONS)."""
        from protodb.evaluation.datasets import open_dataset
        from protodb.evaluation.evaluate import evaluate_vocab
        from protodb.evaluation.zs3 import dataset_split
        from protodb.grounded.student import evaluate_student

        ds = open_dataset(dataset, root, limit=limit)
        split, opts = dataset_split(unseen, ds), {"ablations": ablations, "progress": progress}
        if student is not None:  # a bad split is refused above, before any work
            return evaluate_student(student, ds, split, vocab=vocab, **opts)
        self.open_existing()
        return evaluate_vocab(self.runtime, vocab, ds, split, config=config, **opts)

    def synth(self, *, vocab: str, out: str | os.PathLike, **options):
        """Write (or complete) a synthetic labelled dataset in ``out`` with vocabulary
        ``vocab``'s generator: one mask per named entity (protodb.grounded.run.synthesize has the
        options). Returns a protodb.grounded.run.SynthReport."""
        from protodb.grounded.run import synthesize

        return synthesize(self.runtime, vocab=vocab, out=out, **options)

    def train_grounding(
        self, *, vocab: str, seen: Sequence[str], out: str | os.PathLike, **options
    ):
        """Train a grounding head on synthetic images of the ``seen`` classes of ``vocab`` and
        save it to ``out`` (protodb.grounded.train.train_grounding has the options).
        Returns a protodb.grounded.train.TrainReport."""
        from protodb.grounded.train import train_grounding

        return train_grounding(self.runtime, vocab=vocab, seen=list(seen), out=out, **options)

    def distill(self, *, vocab: str, data: str | os.PathLike, out: str | os.PathLike, **options):
        """Train a student segmenter on the synthetic dataset ``data`` (made by :meth:`synth`
        with ``vocab``) and save it to ``out`` (protodb.grounded.student.distill has the options).
        Returns a protodb.grounded.student.DistillReport."""
        from protodb.grounded.student import distill

        return distill(self.runtime, vocab=vocab, data=data, out=out, **options)

    def build_world(self, *, n: int = 8, seed: int = 0, vocab: str = "world", progress=True, **add):
        """Fill the bank with every class of the offline TEST WORLD and pin ``vocab`` (needs
        profile "world" or "world-learned"; ``add``: extractors, mask_source); see
        protodb.world.bank.build_bank."""
        from protodb.profiles import test_world

        return test_world().build_bank(
            self.runtime, n=n, seed=seed, vocab=vocab, progress=progress, **add
        )


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
