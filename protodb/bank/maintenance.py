"""Bank maintenance: ``gc`` (orphans, compaction, old versions) and ``restore``.

gc never runs while a writer is active (it takes the bank's writer lock exclusively, without
waiting) and never removes a version a vocabulary pins: vocabularies pin their table versions
through Lance tags (``vocab.<name>``), and Lance's cleanup keeps tagged versions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from protodb.bank.commit import retry_commit
from protodb.bank.migrations import add_recipe_columns
from protodb.bank.schema import VOCAB_TAG_PREFIX, LogEntry, sql_str
from protodb.bank.store import Bank
from protodb.errors import NotFoundError

# the order gc writes prototype rows in: clustered by class, each set's rows contiguous
CLUSTER_KEYS = ("class_key", "generator_id", "seed", "write_id")
# a clustered rewrite streams rows in batches of about this many bytes, into files of at
# most this many rows (Lance's default file size)
REWRITE_BATCH_BYTES = 64 * 2**20
REWRITE_ROWS_PER_FILE = 1024 * 1024


@dataclass
class GcResult:
    """What ``gc`` did.

    orphans: table -> rows removed (prototype and cell rows no completion record names);
    compacted: tables rewritten clustered by class; removed_versions / removed_bytes: old
    untagged Lance versions and the bytes their files held; kept_tags: table -> tags kept.
    """

    orphans: dict[str, int] = field(default_factory=dict)
    compacted: list[str] = field(default_factory=list)
    removed_versions: int = 0
    removed_bytes: int = 0
    dropped_tags: list[str] = field(default_factory=list)
    kept_tags: dict[str, list[str]] = field(default_factory=dict)


def gc(bank: Bank, *, older_than: dt.timedelta = dt.timedelta(0)) -> GcResult:
    """Remove orphan rows, rewrite prototype tables clustered by class (each set's rows one
    contiguous range, recorded in its ``sets`` row), drop tags of vocabularies that no longer
    exist, and delete untagged table versions older than ``older_than`` (0: all but the latest).

    Raises BankError while another process writes to the bank."""
    result = GcResult()
    with bank.writer(exclusive=True, wait=False), bank.commit_lock():
        sets = bank.read("sets")
        live = set(sets.column("write_id").to_pylist())
        ranges: dict[str, tuple[int, int]] = {}
        for name in bank.table_names():
            if name.startswith("prototypes"):
                removed, rewritten = _recluster(bank, name, live, ranges)
                if rewritten:
                    result.compacted.append(name)
                if removed:
                    result.orphans[name] = removed
            elif name == "cells":
                removed = _drop_orphans(bank, name, live)
                if removed:
                    result.orphans[name] = removed
        if ranges:
            start = [ranges.get(w, (r0, n))[0] for w, r0, n in _set_cols(sets)]
            count = [ranges.get(w, (r0, n))[1] for w, r0, n in _set_cols(sets)]
            sets = sets.set_column(
                sets.schema.get_field_index("row_start"), "row_start", pa.array(start, pa.int64())
            )
            sets = sets.set_column(
                sets.schema.get_field_index("row_count"), "row_count", pa.array(count, pa.int32())
            )
            _overwrite(bank, "sets", sets)
        vocabs = set(bank.read("vocabs", columns=["name"]).column("name").to_pylist())
        for name in bank.table_names():
            for tag in bank.tags(name):
                if tag.startswith(VOCAB_TAG_PREFIX) and tag[len(VOCAB_TAG_PREFIX) :] not in vocabs:
                    bank.untag(name, tag)
                    result.dropped_tags.append(f"{name}:{tag}")
        entry_detail = {
            "orphans": result.orphans,
            "compacted": result.compacted,
        }
        for name in bank.table_names():
            ds = bank.table(name).to_lance()
            stats = ds.cleanup_old_versions(
                older_than=older_than,
                delete_unverified=True,  # no writer is active: unreferenced files are debris
                error_if_tagged_old_versions=False,
            )
            result.removed_versions += int(stats.old_versions)
            result.removed_bytes += int(stats.bytes_removed)
            tags = sorted(bank.tags(name))
            if tags:
                result.kept_tags[name] = tags
        entry_detail.update(
            removed_versions=result.removed_versions, removed_bytes=result.removed_bytes
        )
        bank.log("gc", entry_detail)
    return result


def _set_cols(sets: pa.Table):
    return zip(
        sets.column("write_id").to_pylist(),
        sets.column("row_start").to_pylist(),
        sets.column("row_count").to_pylist(),
        strict=True,
    )


def _recluster(bank: Bank, name: str, live: set[str], ranges: dict) -> tuple[int, bool]:
    """Rewrite prototype table ``name`` with the live sets' rows clustered by CLUSTER_KEYS,
    orphans left out, as one fragment per ``REWRITE_ROWS_PER_FILE`` rows; adds each set's new
    (first row, count) to ``ranges``. Plans from the key columns alone and streams the rows
    in batches of about ``REWRITE_BATCH_BYTES``, so memory stays bounded however large the
    table is. Returns (orphan rows removed, whether the table was rewritten)."""
    ds = bank.table(name).to_lance()
    if not hasattr(ds, "_take_rows"):  # no take by row address: rewrite in memory
        rows, removed, moved = _cluster(ds.to_table(), live)
        if removed or moved or len(ds.get_fragments()) > _files_for(rows.num_rows):
            _overwrite(bank, name, rows)
            ranges.update(_ranges(rows))
            return removed, True
        return removed, False
    keys = ds.to_table(columns=list(CLUSTER_KEYS), with_row_address=True)
    alive = pc.is_in(keys.column("write_id"), value_set=pa.array(sorted(live), pa.string()))
    removed = keys.num_rows - pc.sum(alive).as_py() if keys.num_rows else 0
    keys = keys.filter(alive)
    n = keys.num_rows
    keys = keys.append_column("_pos", pa.array(np.arange(n, dtype=np.int64)))
    order = keys.sort_by([(k, "ascending") for k in (*CLUSTER_KEYS, "_pos")])
    moved = bool(n) and bool((order.column("_pos").to_numpy() != np.arange(n)).any())
    if not (removed or moved or len(ds.get_fragments()) > _files_for(n)):
        return 0, False
    ranges.update(_ranges(order))
    addresses = order.column("_rowaddr").combine_chunks()
    schema = bank.table(name).schema
    row_bytes = 128 + schema.field("vector").type.list_size * 4
    step = max(1, REWRITE_BATCH_BYTES // row_bytes)

    def batches() -> Iterator[pa.RecordBatch]:
        for lo in range(0, n, step):
            rows = ds._take_rows(addresses.slice(lo, step), columns=schema.names)
            yield from rows.cast(schema).to_batches()

    tbl = bank.table(name)
    retry_commit(
        lambda: tbl.add(
            pa.RecordBatchReader.from_batches(schema, batches()),
            mode="overwrite",
            write_parallelism=1,
        )
    )
    return int(removed), True


def _files_for(rows: int) -> int:
    """Fragments a clustered rewrite of ``rows`` rows makes."""
    return max(1, -(-rows // REWRITE_ROWS_PER_FILE))


def _drop_orphans(bank: Bank, name: str, live: set[str]) -> int:
    """Delete the rows of ``name`` whose write id no completion record names, then compact
    the table's fragments (both by Lance, streaming); returns the rows removed."""
    ids = bank.table(name).to_lance().to_table(columns=["write_id"]).column("write_id")
    dead = sorted(set(pc.unique(ids).to_pylist()) - live)
    if not dead:
        return 0
    removed = 0
    for lo in range(0, len(dead), 1000):
        chunk = ", ".join(sql_str(w) for w in dead[lo : lo + 1000])
        removed += pc.sum(pc.is_in(ids, value_set=pa.array(dead[lo : lo + 1000]))).as_py()
        tbl = bank.table(name)
        retry_commit(lambda t=tbl, c=chunk: t.delete(f"write_id IN ({c})"))
    ds = bank.table(name).to_lance()
    retry_commit(lambda: ds.optimize.compact_files(materialize_deletions_threshold=0.0))
    return int(removed)


def _cluster(rows: pa.Table, live: set[str]) -> tuple[pa.Table, int, bool]:
    """(rows of live sets sorted by CLUSTER_KEYS, stably; orphans removed; whether the order
    or the fragment layout changed)."""
    keep = np.array([w in live for w in rows.column("write_id").to_pylist()], dtype=bool)
    removed = int((~keep).sum())
    rows = rows.filter(pa.array(keep))
    order = rows.append_column("_pos", pa.array(np.arange(rows.num_rows))).sort_by(
        [(k, "ascending") for k in (*CLUSTER_KEYS, "_pos")]
    )
    pos = order.column("_pos").to_numpy()
    moved = bool(len(pos)) and bool((pos != np.arange(len(pos))).any())
    return order.drop_columns(["_pos"]), removed, moved


def _ranges(rows: pa.Table) -> dict[str, tuple[int, int]]:
    """write_id -> (first row, row count) of rows in which each write id is contiguous."""
    ids = rows.column("write_id").to_pylist()
    out: dict[str, tuple[int, int]] = {}
    for i, w in enumerate(ids):
        r0, n = out.get(w, (i, 0))
        out[w] = (r0, n + 1)
    return out


def _overwrite(bank: Bank, name: str, rows: pa.Table) -> None:
    tbl = bank.table(name)
    rows = rows.cast(tbl.schema)
    retry_commit(lambda: tbl.add(rows, mode="overwrite"))


def restore(bank: Bank, version: int) -> LogEntry:
    """Make bank version ``version`` the latest again: a new version whose tables equal the
    old ones (history is kept; the ``log`` records the restore). Tables made after that
    version are emptied. A version from before recipe ids (schema 3) gets its sets' legacy
    recipe ids back, as the migration gave them."""
    with bank.writer(), bank.commit_lock():
        entries = bank.history()
        if not 1 <= version <= len(entries):
            raise NotFoundError(
                f"bank version {version} does not exist (versions 1 to {len(entries)}); "
                "see `protodb history`"
            )
        target = entries[version - 1].versions
        plan = {}
        for name in bank.table_names():
            if name in ("log", "meta"):
                continue
            if name not in target:  # made after that version: emptied
                plan[name] = None
                continue
            want = int(target[name])
            have = {int(v["version"]) for v in bank.table(name).list_versions()}
            if want not in have:
                raise NotFoundError(
                    f"cannot restore bank version {version}: version {want} of table {name!r} "
                    "was removed by gc (gc keeps only the latest and vocabulary-pinned versions)"
                )
            plan[name] = want
        with bank.atomic("restore"):  # every table, or none, then the history row
            for name, want in plan.items():
                tbl = bank.table(name)
                if want is None:
                    retry_commit(lambda t=tbl: t.delete("true"))
                elif int(tbl.version) != want:
                    retry_commit(lambda t=tbl, w=want: t.restore(w))
            # a version from before schema 3 comes back without recipe ids: give them again
            add_recipe_columns(bank)
            return bank.log("restore", {"to": version})
