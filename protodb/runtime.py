"""The runtime of one session: what the features below the facade take.

:func:`protodb.connect` builds one :class:`Runtime` and :class:`protodb.api.ProtoDB` wraps it.
The runtime holds the settings (bank URI, profile, device), the bank (opened on first use:
writable, or refusing to create it), the quick read view the listings use
(:mod:`protodb.bank.readonly`), the resolved device and the session's caches (assembled
vocabularies, segmenters, referrers). Features (synthesis, synthetic data, evaluation, scale,
the test world) receive it, or the part of it they use, and never the facade.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from protodb.bank.store import Bank, open_bank
from protodb.bank.vocab import Vocabulary, get_vocab
from protodb.errors import ProtodbError
from protodb.query.config import QueryConfig
from protodb.query.handle import VocabHandle
from protodb.settings import Settings, resolve_device

if TYPE_CHECKING:
    from protodb.catalog import ClassInfo

T = TypeVar("T")


class Runtime:
    """One session's bank, profile, device and caches (module docstring).

    ``at``: read the bank as it was at this bank version (read-only: nothing is created)."""

    def __init__(self, settings: Settings, *, at: int | None = None) -> None:
        self.settings = settings
        self.at = at
        self._bank: Bank | None = None
        self._reader = None  # the quick reader of read(); False: the Bank reads
        self._device: str | None = None
        self._assembled: dict[str, list] = {}
        self._segmenters: dict[tuple, object] = {}
        self._referrers: dict[tuple, object] = {}

    @classmethod
    def connect(
        cls,
        bank: str | os.PathLike | None = None,
        *,
        profile: str | None = None,
        device: str | None = None,
        at: int | None = None,
    ) -> Runtime:
        """The runtime of these settings (each: the argument, else its environment variable,
        else the default; protodb.settings.Settings.resolve)."""
        bank = None if bank is None else str(bank)
        return cls(Settings.resolve(bank=bank, profile=profile, device=device), at=at)

    # ------------------------------------------------------------------ bank

    @property
    def bank(self) -> Bank:
        """The bank, made when missing (unless ``at`` is set)."""
        if self._bank is None:
            self._bank = open_bank(self.settings.bank, create=self.at is None, at=self.at)
        return self._bank

    def open_existing(self) -> Bank:
        """The bank, refusing to create it (for read-only commands)."""
        if self._bank is None:
            self._bank = open_bank(self.settings.bank, create=False, at=self.at)
        return self._bank

    @property
    def opened(self) -> Bank | None:
        """The Bank when this session opened one, else None (the listings read without it)."""
        return self._bank

    @property
    def reader(self):
        """The quick reader (protodb.bank.readonly.BankReader) once a listing opened it; None
        before; False when listings go through the Bank."""
        return self._reader

    def read(self, read: Callable[..., T]) -> T:
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

    def classes(self) -> list[ClassInfo]:
        """The bank's classes with their sets (protodb.catalog.ClassInfo), by class key."""
        from protodb.catalog import class_infos

        return self.read(class_infos)

    # ------------------------------------------------------------------ device

    @property
    def device(self) -> str:
        """The resolved device, 'cpu' or 'cuda[:N]' (resolving imports torch)."""
        if self._device is None:
            self._device = resolve_device(self.settings.device)
        return self._device

    # ------------------------------------------------------------------ query

    def query_config(self, **overrides) -> QueryConfig:
        """The query options of this profile, with ``overrides`` (QueryConfig fields; None
        leaves a default). The CLIP pre-filter is on for the default profile, as in the paper,
        and off for ``tiny`` (its CLIP has random weights) and ``world`` (the test world has no
        text encoder); turn it on with prefilter=True."""
        base = QueryConfig.for_profile(self.settings.profile)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def vocab(self, name: str, config: QueryConfig | None = None) -> VocabHandle:
        """A handle on vocabulary ``name``; ``config``: the query options (default
        :meth:`query_config`). The vocabulary is read now; its prototypes on first use."""
        vocab = self.read(lambda bank: get_vocab(bank, name))
        return VocabHandle(self, vocab, config or self.query_config())

    def segmenter(self, vocab: Vocabulary, config: QueryConfig):
        """The Segmenter of (vocabulary, config), cached: vocabularies are immutable, so their
        assembled prototypes and device tensors are built once per session."""
        from protodb.query.assemble import assemble
        from protodb.query.segment import Segmenter

        key = (vocab.name, config, self.device)
        if key not in self._segmenters:
            if vocab.name not in self._assembled:
                self._assembled[vocab.name] = assemble(self.open_existing(), vocab)
            self._segmenters[key] = Segmenter(
                vocab, self._assembled[vocab.name], self.device, config
            )
        return self._segmenters[key]

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
