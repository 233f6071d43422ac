"""``protodb add``: generate -> masks -> features -> prototypes -> bank, for each class.

A prototype set is keyed by (class, generator, seed, extractor, recipe): the recipe
(:mod:`protodb.synthesis.recipe`) holds the mask source and its config, n, K (``parts``) and
the levels, so ``add X --mask-source maskcut`` (or another ``--n`` / ``--parts``) after a plain
``add X`` builds a second set rather than finding the first.

Resumable and all-or-nothing per set: support images and masks are written as they are made
(keyed by (class, generator, seed, index) and (..., n, mask source, index), so a later run, of
any recipe, reuses them; a killed run may leave some behind, complete and correct, which is
intended); each set then lands in one journalled operation (:meth:`Bank.atomic`): the class row
(with the first set of a class), the prototype rows, the cells, the completion record and the
set's history row, all or none, so a ``kill -9`` at any moment leaves the bank as before or with
whole sets only. An existing set is never rebuilt; adding a new extractor for a class reuses its
stored support images.
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from protodb import timing
from protodb.bank.recipe import Recipe
from protodb.bank.rows import (
    cells_table,
    masks_table,
    prototypes_table,
    set_record,
    supports_table,
)
from protodb.bank.schema import SetKey
from protodb.bank.store import Bank
from protodb.errors import ProtodbError
from protodb.extractors.base import ExtractorConfig
from protodb.models.diffusion import sd_dtype
from protodb.names import canonical, class_key
from protodb.progress import OFF, NoBar, Progress
from protodb.synthesis.generate import GENERATORS, GeneratorConfig, SupportImage
from protodb.synthesis.recipe import make_recipe
from protodb.synthesis.request import MAX_N, AddRequest  # noqa: F401 - MAX_N: tests read it here

SUPPORT_KEY = ("class_key", "generator_id", "seed", "index")
MASK_KEY = ("class_key", "generator_id", "seed", "n", "mask_source", "index")


@dataclass
class AddResult:
    """What ``add`` did for one class.

    status: "added" (at least one set built) or "exists" (every set was already in the bank);
    generated / reused: support images sampled now / read back from the bank;
    built / skipped: extractor ids whose sets were built now / already present;
    recipe_id: the prototype recipe of the sets (:mod:`protodb.synthesis.recipe`);
    timings: where ``seconds`` went, exclusive seconds per stage (:mod:`protodb.timing`):
    "supports read", "text encoder", "sampling" (denoising, with the attention capture),
    "vae decode", "capture" (reading the attribution maps out), "supports write", "masks",
    and per extractor NAME "load NAME", "features NAME" (the extractor's calls), "prototypes
    NAME" (folding features in, K-means), "bank write NAME" (rows and the set's commit);
    "other" is the rest of ``seconds`` (the set lookups, the kind decision). On CUDA every
    stage boundary synchronises the device, so the kernels' time lands in their stage.
    """

    name: str
    class_key: str
    generator_id: str
    seed: int
    n: int
    status: str
    generated: int = 0
    reused: int = 0
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    prototypes: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    note: str = ""
    kind: str = ""
    kind_source: str = ""
    recipe_id: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def _runtime(device: str) -> str:
    import diffusers
    import torch
    import transformers

    return json.dumps(
        {
            "device": device,
            "dtype": sd_dtype(device),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        sort_keys=True,
    )


def default_extractors(profile: str) -> tuple[str, ...]:
    """The extractors ``add`` uses when none are named (see
    protodb.extractors.factory.default_extractor_names)."""
    from protodb.extractors.factory import default_extractor_names

    return tuple(default_extractor_names(profile))


def plan_class(
    bank: Bank | None,  # or anything with find_set(SetKey) (scale.add: one read of sets)
    name: str,
    *,
    generator: GeneratorConfig,
    extractors: Sequence[ExtractorConfig],
    seed: int | None = None,
    n: int | None = None,
    mask_source: str | None = None,
    kind: str | None = None,
    parts: int | None = None,
) -> tuple[AddResult, list[ExtractorConfig], Recipe]:
    """Check one (class, seed)'s arguments and find which of its sets are missing, without
    loading a model: (the result so far, status "exists" and the present sets ``skipped``; the
    extractors still to build; the recipe). ``bank`` None: a bank not made yet (every set is
    missing). None arguments take :class:`~protodb.synthesis.request.AddRequest`'s defaults.
    Raises ProtodbError on a bad argument."""
    req = AddRequest.of(seed=seed, n=n, mask_source=mask_source, kind=kind, parts=parts)
    return _plan(bank, name, generator, extractors, req.validate_set())


def _plan(bank, name: str, generator, extractors, req: AddRequest):
    """:func:`plan_class` of a checked request (one seed)."""
    if not extractors:
        raise ProtodbError("no extractor given; name at least one (e.g. dinov2)")
    GENERATORS.get(generator.name)
    display, key = canonical(name), class_key(name)
    gid, (seed,) = generator.id, req.seeds
    recipe = make_recipe(req.mask_source, req.n, req.parts)
    result = AddResult(display, key, gid, seed, req.n, status="exists", recipe_id=recipe.id)
    todo = []
    for ext in extractors:
        if bank is not None and bank.find_set(SetKey(key, gid, seed, ext.id, recipe.id)):
            result.skipped.append(ext.id)
        else:
            todo.append(ext)
    return result, todo, recipe


def add_class(
    bank: Bank,
    name: str,
    *,
    generator: GeneratorConfig,
    extractors: Sequence[ExtractorConfig],
    seed: int | None = None,
    n: int | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    mask_source: str | None = None,
    progress: bool | Progress = True,
    kind: str | None = None,
    parts: int | None = None,
    sink: BankSink | UnitSink | None = None,
) -> AddResult:
    """Build the prototype sets of one class for each extractor (a no-op for existing sets).

    kind: "stuff" or "thing" as the user states it (stored with source "user"), or None: then
    the lexicon, else a guess from the support set's fg masks (protodb.synthesis.kinds.decide_kind).
    mask_source: "otsu" (multi-Otsu thresholds) or "maskcut" (eq. (1) over proposals).
    parts: K, the number of part prototypes per polarity (K-means; REFERENCE 1.5: 32).
    mask_source, n and parts make the set's recipe, part of its key. None: AddRequest's default.
    batch_size: images per generator call (and per bank write); results never depend on it.
    progress: a protodb.progress.Progress (or on / off): a bar of this class's stages
    (generate, masks, then features, prototypes and bank write per extractor) and, below it,
    the work inside a stage (denoising steps in images' worth, feature batches).
    sink: where the results go: None (:class:`BankSink`): into ``bank`` as they are made; a
    :class:`UnitSink`: kept for a driver to commit (``bank`` is then only read).
    """
    start = time.perf_counter()
    req = AddRequest.of(
        [name], seed=seed, n=n, batch_size=batch_size, mask_source=mask_source, kind=kind,
        parts=parts,
    ).validate_set()  # fmt: skip
    result, todo, recipe = _plan(bank, name, generator, extractors, req)
    seed, n, batch_size = req.seeds[0], req.n, req.batch_size
    mask_source, kind = req.mask_source, req.kind
    display, key, gid = result.name, result.class_key, result.generator_id
    if not todo:
        result.seconds = time.perf_counter() - start
        return result

    from protodb.settings import resolve_device

    device = resolve_device(device)  # only now: resolving imports torch
    prog = Progress.of(progress)
    if sink is None:
        sink = BankSink(bank)
    # gc waits for (and refuses to run during) an active add; a UnitSink writes nothing here
    writer = bank.writer() if isinstance(sink, BankSink) else contextlib.nullcontext()
    timer = timing.StageTimer(device)
    with (
        timing.active(timer),
        writer,
        prog.bar(f"{display}: generate", total=2 + 3 * len(todo), unit="stage") as stages,
    ):
        supports = _supports(
            bank, display, key, generator, seed, n, device, batch_size, prog, result, sink
        )
        stages.update(1)
        stages.set_description_str(f"{display}: masks ({mask_source})")
        with timing.stage("masks"):
            masks = _masks(bank, key, gid, seed, n, supports, mask_source, device, sink)
        stages.update(1)
        from protodb.synthesis.kinds import decide_kind

        decision = decide_kind(display, kind, masks.fg)
        result.kind, result.kind_source = decision.kind, decision.source
        for ext in todo:
            # the rows and the commit; loading, features and prototypes charge their own stages
            with timing.stage(f"bank write {ext.name}"):
                built = _build_set(
                    bank, key, display, generator, seed, n, ext, supports, masks, device, prog,
                    stages, recipe=recipe,
                )  # fmt: skip
                detail = {
                    "class": display,
                    "generator_id": gid,
                    "seed": seed,
                    "n": n,
                    "recipe_id": recipe.id,
                    "extractors": [ext.id],
                    "generated": result.generated if not result.built else 0,
                }
                committed = sink.set(built, decision, detail)
            if not committed:
                result.skipped.append(ext.id)  # another process committed it meanwhile
                continue
            result.built.append(ext.id)
            result.prototypes[ext.id] = built.counts
    if result.built:
        result.status = "added"
    result.seconds = time.perf_counter() - start
    result.timings = dict(timer.seconds)
    result.timings["other"] = max(0.0, result.seconds - timer.total())
    return result


@dataclass
class BuiltSet:
    """One set, computed and not yet written: what :func:`_commit_set` writes."""

    key: SetKey
    prototypes: pa.Table
    cells: pa.Table
    record: dict
    dim: int
    store_dtype: str
    counts: dict[str, int]


def _commit_set(bank: Bank, built: BuiltSet, decision, detail: dict) -> bool:
    """Write one set as one journalled operation: the class row (when it is new, or its kind
    news), the prototype table (when new), the set's rows and completion record, and its
    history row (``add``), all or nothing. False (nothing written) when the set is there."""
    key = built.key
    with bank.commit_lock():
        if bank.find_set(key) is not None:
            return False
        with bank.atomic("add"):
            bank.upsert_class(key.class_key, built.record["name"], decision.kind, decision.source)
            bank.ensure_prototype_table(key.extractor_id, built.dim, built.store_dtype)
            if not bank.write_set(key, built.prototypes, built.cells, built.record):
                raise AssertionError("a set appeared under the commit lock")  # rolled back
            bank.log("add", detail)
    return True


class BankSink:
    """Where ``add`` writes, on one machine: each piece lands in the bank as it is made
    (support images per batch, masks, then each set journalled)."""

    def __init__(self, bank: Bank) -> None:
        self.bank = bank

    def supports(self, rows: pa.Table) -> None:
        # keyed: a support another process stored meanwhile is kept, not duplicated
        self.bank.insert_new("supports", rows, SUPPORT_KEY)

    def masks(self, rows: pa.Table) -> None:
        self.bank.insert_new("masks", rows, MASK_KEY)

    def set(self, built: BuiltSet, decision, detail: dict) -> bool:
        return _commit_set(self.bank, built, decision, detail)


@dataclass
class UnitSink:
    """What ``add`` of one (class, seed) would write, kept instead (a unit of work computed
    away from the bank, e.g. on a Ray actor): support and mask rows, and each set with its kind
    decision and history detail. :meth:`commit` writes it all with :class:`BankSink`'s keyed,
    journalled writes, so the bank's guarantees do not depend on where the unit was computed."""

    support_rows: list[pa.Table] = field(default_factory=list)
    mask_rows: list[pa.Table] = field(default_factory=list)
    sets: list[tuple[BuiltSet, object, dict]] = field(default_factory=list)

    def supports(self, rows: pa.Table) -> None:
        self.support_rows.append(rows)

    def masks(self, rows: pa.Table) -> None:
        self.mask_rows.append(rows)

    def set(self, built: BuiltSet, decision, detail: dict) -> bool:
        self.sets.append((built, decision, detail))
        return True  # the commit decides: see commit()

    def commit(self, bank: Bank, result: AddResult) -> AddResult:
        """Write the unit into ``bank`` (supports, masks, then each set, each all or nothing)
        and fix ``result`` (computed away from the bank) to what was written: a set another
        writer committed meanwhile moves from ``built`` to ``skipped``."""
        sink = BankSink(bank)
        with bank.writer():
            for rows in self.support_rows:
                sink.supports(rows)
            for rows in self.mask_rows:
                sink.masks(rows)
            for built, decision, detail in self.sets:
                if not sink.set(built, decision, detail):
                    ext_id = built.key.extractor_id
                    result.built = [e for e in result.built if e != ext_id]
                    result.prototypes.pop(ext_id, None)
                    result.skipped.append(ext_id)
        result.status = "added" if result.built else "exists"
        return result


def _supports(bank, display, key, generator, seed, n, device, batch_size, prog, result, sink):
    """Support images 0..n-1: those stored are read back, the rest generated and stored."""
    from protodb.images import decode_png

    with timing.stage("supports read"):
        found = bank.supports(key, generator.id, seed).to_pylist()
        stored = {r["index"]: r for r in found if r["index"] < n}
        images: dict[int, SupportImage] = {}
        for i, r in stored.items():
            attr = np.frombuffer(r["attribution"], dtype="<f4").reshape(r["attr_h"], r["attr_w"])
            images[i] = SupportImage(i, decode_png(r["image_png"]), attr.copy())
    result.reused = len(images)
    missing = [i for i in range(n) if i not in images]
    if missing:
        gen = GENERATORS.get(generator.name)
        runtime = _runtime(device)
        with prog.bar(f"generate {display}", len(missing), "img", fractional=True) as bar:
            for start in range(0, len(missing), max(batch_size, 1)):
                chunk = missing[start : start + max(batch_size, 1)]
                with timing.stage("sampling"):  # see generate_sd for the split
                    made = gen(
                        display,
                        key,
                        generator,
                        seed,
                        chunk,
                        device=device,
                        batch_size=batch_size,
                        on_step=bar.update,
                    )
                with timing.stage("supports write"):
                    for s in made:
                        images[s.index] = s
                    rows = supports_table(
                        key, generator.id, seed, made,
                        generator_config=generator.to_json(), runtime=runtime,
                    )  # fmt: skip
                    sink.supports(rows)
                result.generated += len(made)
    return [images[i] for i in range(n)]


def _masks(bank, key, gid, seed, n, supports, mask_source, device, sink):
    """fg/bg masks of the support set -> SupportMasks (stored once per set size and source)."""
    from protodb.images import decode_png
    from protodb.synthesis.masks import MASK_SOURCES, SupportMasks

    rows = sorted(bank.masks(key, gid, seed, n, mask_source).to_pylist(), key=lambda r: r["index"])
    rows = list({r["index"]: r for r in rows}.values())  # one per index
    if len(rows) == n:
        masks = SupportMasks(
            fg=np.stack([decode_png(r["fg_png"], "1") for r in rows]),
            bg=np.stack([decode_png(r["bg_png"], "1") for r in rows]),
            thresholds=tuple(json.loads(rows[0]["thresholds"])),
            source=mask_source,
            fallback=False,
        )
    else:
        size = supports[0].image.shape[:2]
        masks = MASK_SOURCES.get(mask_source)(
            [s.attribution for s in supports],
            size,
            images=np.stack([s.image for s in supports]),
            device=device,
        )
        done = {r["index"] for r in rows}
        new = [i for i in range(n) if i not in done]
        sink.masks(
            masks_table(
                key, gid, seed, n=n, mask_source=mask_source, indices=new,
                fg=[masks.fg[i] for i in new], bg=[masks.bg[i] for i in new],
                thresholds=masks.thresholds,
            )
        )  # fmt: skip
    return masks


def _build_set(
    bank, key, display, generator, seed, n, ext, supports, masks, device, prog=OFF, stages=None,
    *, recipe: Recipe,
) -> BuiltSet:  # fmt: skip
    """Features -> prototypes -> rows and completion record, for one extractor (nothing is
    written; :func:`_commit_set` does); ``stages`` (a bar of ``prog``) moves at each of the
    three."""
    from protodb.extractors.factory import get_extractor, images_per_call
    from protodb.synthesis.prototypes import PartOptions, extract_prototypes

    stages = stages if stages is not None else NoBar()
    stages.set_description_str(f"{display}: features {ext.name}")
    with timing.stage(f"load {ext.name}"):
        extractor = get_extractor(ext, device)
    images = np.stack([s.image for s in supports])
    # each call's features are folded into the prototypes at once (only the masked rows stay);
    # the stage bar moves on to "prototypes" (K-means) after the last call
    with prog.bar(f"features {ext.name}", len(images), "img") as bar:
        done = [0]

        def on_batch(b):
            bar.update(b)
            done[0] += b
            if done[0] >= len(images):
                stages.update(1)
                stages.set_description_str(f"{display}: prototypes {ext.name}")

        fg, bg, dim = extract_prototypes(
            extractor,
            images,
            masks.fg,
            masks.bg,
            PartOptions(parts=recipe.config["parts"], pool_dtype=ext.store_dtype, device=device),
            batch=images_per_call(device),
            on_batch=on_batch,
        )
    stages.update(1)
    stages.set_description_str(f"{display}: bank write {ext.name}")
    set_key = SetKey(key, generator.id, seed, ext.id, recipe.id)
    proto_rows, cell_rows = [], []
    for p in (fg, bg):
        proto_rows.append(
            prototypes_table(
                set_key, polarity=p.polarity, level=p.level.tolist(), part=p.part.tolist(),
                support=p.support.tolist(), weight=p.weight.tolist(), vectors=p.vectors,
                store_dtype=ext.store_dtype,
            )
        )  # fmt: skip
        idx = np.flatnonzero(p.used)
        cell_rows.append(
            cells_table(set_key, polarity=p.polarity, supports=idx.tolist(), grids=p.cells[idx])
        )
    record = set_record(
        set_key, name=display, n_supports=len(supports), n=n, n_used=int(fg.used.sum()),
        n_fg=len(fg), n_bg=len(bg), dim=dim, mask_source=masks.source,
        thresholds=masks.thresholds, generator_config=generator.to_json(),
        extractor_config=ext.to_json(), recipe=recipe,
    )  # fmt: skip
    stages.update(1)
    return BuiltSet(
        set_key,
        pa.concat_tables(proto_rows),
        pa.concat_tables(cell_rows),
        record,
        dim,
        ext.store_dtype,
        {"fg": len(fg), "bg": len(bg), "used": int(fg.used.sum())},
    )
