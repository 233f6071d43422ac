"""The fast vocabulary load: the prototype rows of completed sets, read by row range.

A vocabulary load scans nothing: each set's completion record carries its row range and packed
per-row metadata, so its vectors are read by range, straight from the Lance data files where
:class:`~protodb.bank.lance_direct.VectorReader` can (checked against Lance's own read of each
set's edge rows), else with one Lance ``take``; a missing or stale range falls back to a
filtered read by write id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from protodb.bank.lance_direct import VectorReader
from protodb.bank.schema import (
    ROW_META,
    SET_COLUMNS,
    rows_of_sets,
    split_vectors,
    sql_str,
    unpack_row_meta,
    with_legacy_recipes,
)
from protodb.errors import NotFoundError


class PrototypeLoader:
    """Prototype loads of ``bank``, a part of :class:`protodb.bank.store.Bank`: it reads through
    the bank's tables and datasets and keeps what a load learns (completion records per
    ``sets`` version, checked ranges, packed metadata) for the next."""

    def __init__(self, bank) -> None:
        self.bank = bank
        self._ranges: dict[tuple[int, str], tuple[pa.Table, pa.Array]] = {}
        self._checked: set[tuple] = set()  # ((table, version, sets_version), write_id) checked
        self._row_meta: dict[int, dict[str, bytes]] = {}
        self._recipes: dict[tuple[int, str], dict[str, list[str]]] = {}
        # None once it misread a layout (then Lance's take reads the vectors)
        self.vector_reader: VectorReader | None = VectorReader()

    def _set_index(self, extractor_id: str, sets_version: int) -> tuple[pa.Table, pa.Array]:
        """One extractor's completion records at a ``sets`` version: (write_id, row_start,
        row_count, _rowaddr) and, row for row, their keys joined as
        "class\\0generator\\0seed\\0recipe" (for :func:`pyarrow.compute.index_in`); cached for
        the last few versions. A version from before schema 3 has each set's legacy recipe."""
        cache_key = (sets_version, extractor_id)
        hit = self._ranges.get(cache_key)
        if hit is not None:
            return hit
        cols = ["class_key", "generator_id", "seed", "write_id", "row_start", "row_count"]
        ds = self.bank.dataset("sets", sets_version)
        where = f"extractor_id = {sql_str(extractor_id)}"
        if "recipe_id" in ds.schema.names:
            t = ds.to_table(columns=[*cols, "recipe_id"], filter=where, with_row_address=True)
        else:
            legacy = [*cols, "mask_source", "n"]
            t = ds.to_table(columns=legacy, filter=where, with_row_address=True)
            t = with_legacy_recipes(t, [*cols, "recipe_id", "_rowaddr"])
        seeds = pc.cast(t.column("seed"), pa.string())
        keys = pc.binary_join_element_wise(
            t.column("class_key"), t.column("generator_id"), seeds, t.column("recipe_id"), "\0"
        )
        hit = (t.select(["write_id", "row_start", "row_count", "_rowaddr"]), keys.combine_chunks())
        _bounded_put(self._ranges, cache_key, hit)
        return hit

    def _recipe_index(
        self, extractor_id: str, sets_version: int, keys: pa.Array
    ) -> dict[str, list[str]]:
        """The recipe ids of each "class\\0generator\\0seed" among ``keys`` (the
        :meth:`_set_index` keys of that version), sorted; cached like the index, so a load that
        names no recipe costs one dict lookup per set, not a scan of the bank's sets."""
        cache_key = (sets_version, extractor_id)
        hit = self._recipes.get(cache_key)
        if hit is None:
            hit = {}
            for joined in keys.to_pylist():
                prefix, _, recipe = joined.rpartition("\0")
                hit.setdefault(prefix, []).append(recipe)
            for found in hit.values():
                found.sort()
            _bounded_put(self._recipes, cache_key, hit)
        return hit

    def _set_metas(self, sets_version: int, records: pa.Table) -> list[bytes | None]:
        """The ``row_meta`` of the given completion records (rows of :meth:`_set_index`), read
        by row address for those not yet cached."""
        cache = self._row_meta.get(sets_version)
        if cache is None:
            cache = {}
            _bounded_put(self._row_meta, sets_version, cache)
        ids = records.column("write_id").to_pylist()
        missing = [i for i, w in enumerate(ids) if w not in cache]
        if missing:
            ds = self.bank.dataset("sets", sets_version)
            cols = ["write_id", "row_meta"]
            if hasattr(ds, "_take_rows"):
                addresses = records.column("_rowaddr").take(missing).combine_chunks()
                got = ds._take_rows(addresses, columns=cols)
            else:
                wanted = ", ".join(sql_str(ids[i]) for i in missing)
                got = ds.to_table(columns=cols, filter=f"write_id IN ({wanted})")
            cache.update(zip(got.column(0).to_pylist(), got.column(1).to_pylist(), strict=True))
        return [cache.get(w) for w in ids]

    def load_prototypes(
        self,
        table: str,
        extractor_id: str,
        sets: Sequence[tuple],
        version: int | None = None,
        *,
        sets_version: int | None = None,
    ) -> tuple[np.ndarray, pa.Table]:
        """The prototype rows of completed sets, set by set in the order given.

        sets: (class_key, generator_id, seed, recipe_id) tuples (a recipe id "" or left out: the
        one set of that key, as a vocabulary from before schema 3 names it; several are then an
        error); version / sets_version: the versions of
        the prototype table and of ``sets`` to read (a vocabulary's pins; latest if None).
        Returns (vectors [P, D] in the stored dtype, float16 or float32; the other columns of
        the P rows as an Arrow table). Reads each set's recorded row range (checked against
        the set's write id) straight from the data files, or with one Lance ``take`` where that
        is not possible; falls back to a filtered read of the rows whose write ids the
        completion records name when a range is missing or stale.
        """
        pins = self.bank.pins
        if version is None and pins is not None:
            version = pins.get(table)
            sets_version = pins.get("sets") if sets_version is None else sets_version
        # resolve "latest" once, so every read below sees the same versions
        version = int(self.bank.table(table).version) if version is None else int(version)
        sets_version = (
            int(self.bank.table("sets").version) if sets_version is None else int(sets_version)
        )
        records, keys = self._set_index(extractor_id, sets_version)
        if any(len(t) < 4 or not t[3] for t in sets):
            recipes = self._recipe_index(extractor_id, sets_version, keys)
            sets = [_recipe_of(t, recipes) for t in sets]
        want = pa.array([f"{k}\0{g}\0{int(s)}\0{r}" for k, g, s, r in sets], pa.string())
        pos = pc.index_in(want, value_set=keys)
        if pos.null_count:
            k, g, s, r = sets[pos.is_null().to_pylist().index(True)]
            raise NotFoundError(
                f"no completed {extractor_id} prototype set for class {k!r} "
                f"(generator {g}, seed {s}, recipe {r or 'any'}); add it with protodb add"
            )
        sets = [(k, g, s) for k, g, s, _ in sets]
        chosen = records.take(pos)
        picked = list(
            zip(
                chosen.column("write_id").to_pylist(),
                chosen.column("row_start").to_pylist(),
                chosen.column("row_count").to_pylist(),
                strict=True,
            )
        )
        ds = self.bank.dataset(table, version)
        names = [f for f in ds.schema.names if f != "write_id"]
        if picked and all(r0 >= 0 for _, r0, _ in picked):
            # ranges of fixed versions, once checked, stay right: a Lance version never changes
            metas = self._set_metas(sets_version, chosen)
            pin = (table, version, sets_version)
            fast = self._take_ranges(ds, names, extractor_id, sets, picked, pin, metas)
            if fast is not None:
                return fast
        ids = ", ".join(sql_str(w) for w, _, _ in picked) or "''"
        where = f"extractor_id = {sql_str(extractor_id)} AND write_id IN ({ids})"
        got = ds.to_table(filter=where, columns=[*names, "write_id"])
        order = {w: i for i, (w, _, _) in enumerate(picked)}
        rank = np.array([order[w] for w in got.column("write_id").to_pylist()], dtype=np.int64)
        got = got.take(pa.array(np.argsort(rank, kind="stable")))
        if picked and any(w == "" for w, _, _ in picked):  # rows migrated with empty ids: by key
            got = rows_of_sets(got, {(k, g, int(s)) for k, g, s in sets})
        return split_vectors(got.select(names))

    def _take_ranges(
        self, ds, names: list[str], extractor_id: str, sets, picked, pin, metas
    ) -> tuple[np.ndarray, pa.Table] | None:
        """The fast path of :meth:`load_prototypes`: each set's recorded row range, checked by
        the write id of its first and last row (a write id's rows are one contiguous block of
        exactly the recorded count), read straight from the data files
        (:class:`~protodb.bank.lance_direct.VectorReader`, its bytes checked against Lance's own
        read of those edge rows) or else with one Lance ``take``; the per-row metadata comes
        from the sets' ``row_meta`` and the per-set columns from their keys. None when a range
        is stale."""
        starts = np.array([r0 for _, r0, _ in picked], dtype=np.int64)
        counts = np.array([n for _, _, n in picked], dtype=np.int64)
        ids = [w for w, _, _ in picked]
        per_row = [c for c in names if c not in SET_COLUMNS]
        unpacked = {}
        if all(
            m is not None and len(m) == ROW_META.itemsize * n
            for m, (_, _, n) in zip(metas, picked, strict=True)
        ):
            unpacked = unpack_row_meta(b"".join(metas), ds.schema)
            per_row = [c for c in per_row if c not in unpacked]
        vectors = None
        if "vector" in per_row and self.vector_reader is not None:
            vectors = self.vector_reader.read(ds, "vector", starts, counts)
        full = (counts > 0) & np.array([(pin, w) not in self._checked for w in ids], dtype=bool)
        if full.any():
            first = starts[full]
            ends = np.stack([first, first + counts[full] - 1], axis=1).ravel()
            edge_cols = ["write_id", "vector"] if vectors is not None else ["write_id"]
            try:
                edge = ds.take(pa.array(ends), columns=edge_cols)
            except Exception:  # noqa: BLE001 - a range past the end (stale): use the filter
                return None
            if edge["write_id"].to_pylist() != [
                w for w, f in zip(ids, full, strict=True) if f for _ in range(2)
            ]:
                return None
            if vectors is not None:
                at = np.concatenate([[0], np.cumsum(counts)[:-1]])[full]
                mine = vectors[np.stack([at, at + counts[full] - 1], axis=1).ravel()]
                theirs = split_vectors(edge.select(["vector"]))[0]
                if mine.tobytes() != theirs.tobytes():  # a layout the reader misread: stop
                    self.vector_reader = None
                    vectors = None
            self._checked.update((pin, w) for w in ids)
        if vectors is not None:
            per_row.remove("vector")
        got = None
        if per_row:
            total = int(counts.sum())
            offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
            got = _take_offsets(ds, offsets + np.arange(total, dtype=np.int64), per_row)
        which = pa.array(np.repeat(np.arange(len(picked), dtype=np.int32), counts))
        per_set = {
            "class_key": [k for k, _, _ in sets],
            "generator_id": [g for _, g, _ in sets],
            "seed": [int(x) for _, _, x in sets],
            "extractor_id": [extractor_id] * len(sets),
        }
        columns = {}
        for c in names:
            if c == "vector" and vectors is not None:
                continue
            if c in unpacked:
                columns[c] = unpacked[c]
            elif c in per_row:
                columns[c] = got.column(c)
            else:
                kind = ds.schema.field(c).type
                values = pa.array(per_set[c], kind)
                columns[c] = pa.DictionaryArray.from_arrays(which, values).cast(kind)
        table = pa.table(columns)
        return (vectors, table) if vectors is not None else split_vectors(table)


def _recipe_of(key: tuple, recipes: dict[str, list[str]]) -> tuple[str, str, int, str]:
    """A (class, generator, seed[, recipe]) tuple with its recipe id: given, or the one recipe
    of that key in ``recipes`` (:meth:`PrototypeLoader._recipe_index`); "" when none."""
    if len(key) == 4 and key[3]:
        return (key[0], key[1], int(key[2]), key[3])
    k, g, s = key[0], key[1], int(key[2])
    found = sorted(set(recipes.get(f"{k}\0{g}\0{s}", ())))
    if len(found) > 1:
        raise NotFoundError(
            f"class {k!r} (generator {g}, seed {s}) has prototype sets of several recipes "
            f"({', '.join(found)}); name the recipe"
        )
    return (k, g, s, found[0] if found else "")


def _bounded_put(cache: dict, key, value, keep: int = 4) -> None:
    """Put ``key`` in an insertion-ordered cache of at most ``keep`` entries (oldest out)."""
    cache[key] = value
    while len(cache) > keep:
        cache.pop(next(iter(cache)))


def _fragment_layout(ds) -> tuple[np.ndarray, np.ndarray] | None:
    """(first offset, fragment id) per fragment of the dataset's version (read from its
    manifest, well under a millisecond), or None when a fragment has deleted rows (offsets
    then skip rows, so they do not map to row addresses)."""
    frags = ds.get_fragments()
    counts = [f.count_rows() for f in frags]
    if any(c != f.physical_rows for c, f in zip(counts, frags, strict=True)):
        return None
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return starts, np.array([f.fragment_id for f in frags], dtype=np.uint64)


def _take_offsets(ds, idx: np.ndarray, columns: list[str]) -> pa.Table:
    """Rows at dataset offsets ``idx`` (int64 [N], in bounds). Through row addresses
    (fragment id << 32 | offset in fragment), which Lance reads about 25% faster than offsets
    (bench_vocab_load), when every fragment is free of deletions; else by offset."""
    layout = _fragment_layout(ds)
    take_rows = getattr(ds, "_take_rows", None)
    if layout is None or take_rows is None or not len(idx):
        return ds.take(pa.array(idx), columns=columns)
    starts, ids = layout
    frag = np.searchsorted(starts, idx, side="right") - 1
    addresses = (ids[frag] << np.uint64(32)) | (idx - starts[frag]).astype(np.uint64)
    return take_rows(pa.array(addresses, pa.uint64()), columns=columns)
