"""What one ``add`` asks for, with every default of ``add`` in one place, checked once.

The CLI (``protodb add``), :meth:`protodb.api.ProtoDB.add` and
:func:`protodb.synthesis.add.add_class` pass what their caller gave, None where the caller gave
nothing, and :meth:`AddRequest.of` fills in the defaults; :meth:`AddRequest.validate` is the one
check of the values, and its errors (:class:`protodb.errors.ParameterError`) name the Python
parameter (``batch_size=0 must be >= 1``); the CLI spells them as its flags.

Light on purpose: the CLI imports this module to show the defaults in its help (it imports
nothing of protodb but its errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from protodb.errors import ParameterError, ProtodbError

# add's defaults, their one home (the bank's recipe module keeps what sets were built with)
DEFAULT_N = 32  # the support-set size of a plain ``add`` (REFERENCE 1.1)
DEFAULT_PARTS = 32  # K of the part prototypes (REFERENCE 1.5)
DEFAULT_MASK_SOURCE = "otsu"  # the paper's "without CutLER" row (REFERENCE 1.3)
MAX_PARTS = 1024
MAX_N = 1024  # support images of one set
MAX_SEED = 2**63 - 1  # seeds are bank integers (int64)
KINDS = ("stuff", "thing")


@dataclass(frozen=True)
class AddRequest:
    """One ``add``: the classes, the seeds (one support set per seed) and how the sets are made.

    names: class names as given (canonicalised by :mod:`protodb.names`). n: support images per
    set (REFERENCE 1.1: 32). parts: K, part prototypes per polarity (REFERENCE 1.5: 32).
    mask_source: "otsu", "maskcut", "sam" (protodb.synthesis.masks.MASK_SOURCES). n, parts and
    mask_source make the sets' recipe (protodb.synthesis.recipe). kind: "stuff" / "thing" for
    every class, or None (the lexicon, else a guess from the support set). batch_size: images
    per generator call (results never depend on it). extractors: extractor names, None for the
    profile's (protodb.synthesis.add.default_extractors). steps, guidance, template, model: the
    generator's overrides (protodb.synthesis.generate.default_generator_config; ``model`` is
    the Stable Diffusion of the ``sd`` extractor too), None for the profile's.
    """

    names: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    n: int = DEFAULT_N
    parts: int = DEFAULT_PARTS
    mask_source: str = DEFAULT_MASK_SOURCE
    kind: str | None = None
    batch_size: int = 8
    extractors: tuple[str, ...] | None = None
    steps: int | None = None
    guidance: float | None = None
    template: str | None = None
    model: str | None = None

    @classmethod
    def of(
        cls,
        names: Sequence[str] = (),
        *,
        seed: int | Sequence[int] | None = None,
        extractors: Sequence[str] | None = None,
        **given,
    ) -> AddRequest:
        """The request of what a caller gave: a None value takes the default. ``seed``: one
        seed or several; ``given``: the other fields by name."""
        unknown = sorted(set(given) - {f.name for f in fields(cls)} - {"names", "seeds"})
        if unknown:
            raise TypeError(f"AddRequest has no field {unknown[0]!r}")
        values = {k: v for k, v in given.items() if v is not None}
        if seed is not None:
            values["seeds"] = (seed,) if isinstance(seed, int) else tuple(seed)
        if extractors is not None:
            values["extractors"] = tuple(extractors)
        return cls(names=tuple(names), **values)

    def validate(self) -> AddRequest:
        """Check every value (no model is loaded, no bank touched); returns the request.
        Raises ProtodbError, a ParameterError naming the parameter where one value is bad."""
        from protodb.names import canonical, class_key

        if not self.names:
            raise ProtodbError("no class given: name at least one class to add")
        for name in self.names:
            canonical(name)  # an empty name is one line, before anything runs
        keys = [class_key(x) for x in self.names]
        if len(set(keys)) != len(keys):
            raise ProtodbError("a class is listed twice; list each class once")
        seeds = list(self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ParameterError("seed", seeds, "must list at least one seed, each once")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED:
                # tests/test_api.py pins the flag's spelling of this one
                raise ParameterError(
                    "seed", s, "must be from 0 to 2**63 - 1 (a bank integer)", flag="--seed"
                )
        self.validate_set()
        if self.extractors is not None and not self.extractors:
            raise ProtodbError("no extractor given; name at least one (e.g. dinov2)")
        return self

    def validate_set(self) -> AddRequest:
        """The checks of how each set is built (n, parts, mask_source, kind, batch_size), the
        part of :meth:`validate` that :func:`protodb.synthesis.add.add_class` repeats for a
        direct caller; returns the request."""
        from protodb.synthesis.masks import MASK_SOURCES

        # tests/synthesis/test_add.py pins the flags' spelling of n and parts
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= MAX_N:
            raise ParameterError(
                "n", self.n, f"is out of range; use 1 to {MAX_N} (paper: 32)", flag="--n"
            )
        p = self.parts
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= MAX_PARTS:
            raise ParameterError(
                "parts", p, f"is out of range; use 1 to {MAX_PARTS} (paper: 32)", flag="--parts"
            )
        MASK_SOURCES.get(self.mask_source)
        if self.kind not in (None, *KINDS):
            raise ParameterError("kind", self.kind, f"is not one of {', '.join(KINDS)}")
        if isinstance(self.batch_size, bool) or not self.batch_size >= 1:
            raise ParameterError("batch_size", self.batch_size, "must be >= 1")
        return self

    def jobs(self) -> list[tuple[str, int]]:
        """The (class display name, seed) units, classes outer."""
        from protodb.names import canonical

        return [(canonical(name), s) for name in self.names for s in self.seeds]


DEFAULTS = AddRequest()  # what a plain ``add`` uses (the CLI's help shows these)
