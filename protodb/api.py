"""The Python API. Every CLI command is one call on :class:`ProtoDB`.

db = protodb.connect("bank/", profile="tiny")
db.add(["red apple", "grass"], n=4)
db.create_vocab("v1", ["red apple", "grass"])
db.vocab("v1").segment(image)        # -> SegmentResult
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protodb.bank import Bank, LogEntry, open_bank
from protodb.errors import NotFoundError, ProtodbError
from protodb.features import default_extractor_config
from protodb.generate import default_generator_config
from protodb.names import canonical, class_key
from protodb.query import QueryConfig
from protodb.settings import Settings, resolve_device
from protodb.vocab import Vocabulary, assemble, create_vocab, get_vocab, list_vocabs


@dataclass
class ClassInfo:
    """A class in the bank with its completed prototype sets (one dict per set: generator_id,
    seed, extractor_id, n, n_used, n_fg, n_bg, dim, mask_source, thresholds)."""

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
            from protodb.segment import Segmenter

            self._segmenter = Segmenter(
                self.info, assemble(self.db.bank, self.info), self.db.device, self.config
            )
        return self._segmenter

    def segment(self, image: np.ndarray | str | os.PathLike):
        """Segment one image (uint8 [H, W, 3] RGB or a path) -> protodb.segment.SegmentResult."""
        from protodb.images import load_rgb

        array = load_rgb(image) if isinstance(image, str | os.PathLike) else np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ProtodbError(
                f"image must be uint8 [H, W, 3] RGB, got {array.dtype} {array.shape}"
            )
        return self.segmenter.segment(array)


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
        self._device: str | None = None

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
        seed: int = 0,
        extractors: Sequence[str] = ("dinov2",),
        steps: int | None = None,
        guidance: float | None = None,
        template: str | None = None,
        model: str | None = None,
        batch_size: int = 1,
        progress: bool = True,
        on_result: Callable | None = None,
        kind: str | None = None,
    ):
        """Build prototype sets for each class; existing sets are skipped (nothing generated).

        Returns one protodb.add.AddResult per class, in order.
        """
        from protodb.add import add_class

        if not names:
            raise ProtodbError("no class given: protodb add CLASS [CLASS...]")
        display = [canonical(x) for x in names]
        keys = [class_key(x) for x in names]
        if len(set(keys)) != len(keys):
            raise ProtodbError("a class is listed twice; list each class once")
        if seed < 0:
            raise ProtodbError(f"--seed {seed} must be >= 0")
        gen = default_generator_config(
            self.settings.profile, steps=steps, guidance=guidance, template=template, model=model
        )
        exts = [default_extractor_config(self.settings.profile, name) for name in extractors]
        results = []
        for name in display:
            res = add_class(
                self.bank,
                name,
                generator=gen,
                extractors=exts,
                seed=seed,
                n=n,
                device=self.settings.device,
                batch_size=batch_size,
                progress=progress,
                kind=kind,
            )
            results.append(res)
            if on_result is not None:
                on_result(res)
        return results

    # ------------------------------------------------------------------ reads

    def classes(self) -> list[ClassInfo]:
        bank = self.open_existing()
        sets = bank.sets().to_pylist()
        out = []
        for row in sorted(bank.classes().to_pylist(), key=lambda r: r["class_key"]):
            mine = [_set_dict(s) for s in sets if s["class_key"] == row["class_key"]]
            out.append(
                ClassInfo(row["name"], row["class_key"], row["kind"], row["kind_source"], mine)
            )
        return out

    def show(self, name: str) -> ClassInfo:
        key = class_key(name)
        for info in self.classes():
            if info.class_key == key:
                return info
        raise NotFoundError(
            f"class {canonical(name)!r} is not in the bank; add it: protodb add {canonical(name)!r}"
        )

    def history(self) -> list[LogEntry]:
        return self.open_existing().history()

    # ------------------------------------------------------------------ versions, sharing

    def restore(self, version: int) -> LogEntry:
        """Make bank version ``version`` the latest (a new version equal to it)."""
        from protodb.maintenance import restore

        return restore(self.open_existing(), version)

    def gc(self, *, older_than_hours: float = 0.0):
        """Remove orphans and untagged versions older than ``older_than_hours``, compact
        prototype tables clustered by class -> protodb.maintenance.GcResult."""
        import datetime as dt

        from protodb.maintenance import gc

        if older_than_hours < 0:
            raise ProtodbError(f"--older-than {older_than_hours} must be >= 0 hours")
        return gc(self.open_existing(), older_than=dt.timedelta(hours=older_than_hours))

    def export(self, target: str | os.PathLike, *, vocab: str | None = None):
        """Export a vocabulary (or the whole bank) -> protodb.share.ShareResult."""
        from protodb.share import export

        return export(self.open_existing(), str(target), vocab=vocab)

    def import_(self, source: str | os.PathLike, *, name: str | None = None):
        """Import an export into this bank (``name``: the vocabulary's new name)."""
        from protodb.share import import_export

        return import_export(self.bank, str(source), rename=name)

    def merge(self, other: str | os.PathLike):
        """Merge another bank into this one -> protodb.share.ShareResult."""
        from protodb.share import merge

        return merge(self.bank, str(other))

    # ------------------------------------------------------------------ vocabularies

    def create_vocab(
        self, name: str, classes: Sequence[str], *, extractors=None, seed=None, generator_id=None
    ) -> Vocabulary:
        return create_vocab(
            self.open_existing(),
            name,
            list(classes),
            extractors=list(extractors) if extractors else None,
            seed=seed,
            generator_id=generator_id,
        )

    def vocabs(self) -> list[Vocabulary]:
        return list_vocabs(self.open_existing())

    def vocab(self, name: str, config: QueryConfig | None = None) -> VocabHandle:
        """A handle on vocabulary ``name``; ``config`` sets the query engine's options."""
        return VocabHandle(self, get_vocab(self.open_existing(), name), config)

    # ------------------------------------------------------------------ segment

    def segment(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        vocab: str,
        out: str | os.PathLike,
        progress: bool = True,
        on_image: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Segment image files (directories expand to their images) and write label and overlay
        PNGs to ``out``. Returns one summary dict per image (see segment.write_outputs; plus
        "image")."""
        import sys

        from tqdm.auto import tqdm

        from protodb.images import check_image, expand_inputs, load_rgb
        from protodb.segment import write_outputs

        files = expand_inputs(list(paths))
        handle = self.vocab(vocab)
        for p in files:  # check every input before writing anything; decode one at a time
            check_image(p)
        stems = [p.stem for p in files]
        dupes = sorted({s for s in stems if stems.count(s) > 1})
        if dupes:
            raise ProtodbError(
                f"several inputs share the name {dupes[0]!r}; their outputs would collide"
            )
        out_dir = Path(out)
        summaries = []
        for path in tqdm(
            files, desc="segment", unit="img", disable=not progress, file=sys.stderr, leave=False
        ):
            array = load_rgb(path)
            result = handle.segment(array)
            summary = {
                "image": str(path),
                "vocab": vocab,
                **write_outputs(result, array, out_dir, path.stem),
            }
            summaries.append(summary)
            if on_image is not None:
                on_image(summary)
        return summaries


def _set_dict(row: dict) -> dict:
    keys = (
        "generator_id",
        "seed",
        "extractor_id",
        "n",
        "n_used",
        "n_fg",
        "n_bg",
        "dim",
        "mask_source",
        "thresholds",
    )
    return {k: row[k] for k in keys}


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
