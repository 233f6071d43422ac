"""Import an export, or merge another bank, into a target bank.

The source is read and checked in full first (:mod:`~protodb.bank.share.validate`); then new
sets, support images and vocabularies are written with the bank's keyed writes, and the history
row last, inside one journalled operation (:meth:`~protodb.bank.journal.Journal.atomic`): a
refused or failed import leaves the target unchanged, and one killed at any moment reads, from
the next open on, exactly as before or exactly as after.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from protodb.bank.schema import (
    SetKey,
    rows_of_sets,
    sql_str,
    vector_dtype,
)
from protodb.bank.share.manifest import MASK_KEY, SUPPORT_KEY, ShareResult, refuse
from protodb.bank.share.validate import find_conflicts, open_source, read_source
from protodb.bank.store import Bank
from protodb.errors import ProtodbError


def _vocab_plan(target: Bank, vocab_rows: list[dict], rename: str | None, label: str) -> list:
    from protodb.bank.vocab import VOCAB_NAME, _from_row

    if rename is not None:
        if len(vocab_rows) != 1:
            raise ProtodbError(
                f"--as renames one vocabulary; {label!r} holds {len(vocab_rows)}: drop --as"
            )
        if not VOCAB_NAME.fullmatch(rename):
            raise ProtodbError(f"invalid vocabulary name {rename!r} for --as")
    plan = []
    for r in vocab_rows:
        v = _from_row(r)
        name = rename or v.name
        if not VOCAB_NAME.fullmatch(name):
            raise refuse(f"{label!r}: invalid vocabulary name {name!r}")
        mine = target.read("vocabs", f"name = {sql_str(name)}").to_pylist()
        if mine:
            a, b = _from_row(mine[0]), v
            if (a.classes, [e.extractor_id for e in a.extractors]) == (
                b.classes,
                [e.extractor_id for e in b.extractors],
            ):
                continue  # the same vocabulary is already there
            raise refuse(
                f"{label!r}: vocabulary {name!r} exists in the target with other classes or "
                f"extractors; import it under another name with --as NAME"
            )
        plan.append((name, v))
    return plan


def _write(target: Bank, tables: dict, new_sets: list, vocabs: list, result: ShareResult):
    from protodb.bank.vocab import _pin_vocab

    classes = {s["class_key"] for s in new_sets}
    needed = {(s["class_key"], s["generator_id"], s["seed"]) for s in new_sets}

    def rows_of(name: str) -> pa.Table:
        return rows_of_sets(tables[name], needed)

    cls = tables["classes"]
    keep = [k in classes for k in cls.column("class_key").to_pylist()]
    cls = cls.filter(pa.array(keep, pa.bool_()))
    target.insert_new("classes", cls, ["class_key"])
    result.supports = target.insert_new("supports", rows_of("supports"), SUPPORT_KEY)
    target.insert_new("masks", rows_of("masks"), MASK_KEY)
    for s in new_sets:
        table = s["prototype_table"]
        src = tables[table]
        dim = src.schema.field("vector").type.list_size
        target.ensure_prototype_table(s["extractor_id"], dim, vector_dtype(src.schema))
        mine = pc.equal(src.column("write_id"), s["write_id"])
        proto = src.filter(mine).drop_columns(["write_id"])
        cells = tables["cells"]
        cells = cells.filter(pc.equal(cells.column("write_id"), s["write_id"]))
        record = {
            k: v
            for k, v in s.items()
            if k not in ("write_id", "row_start", "row_count", "row_meta")
        }
        key = SetKey.of(s)
        if target.write_set(key, proto, cells.drop_columns(["write_id"]), record):
            result.sets += 1
        else:
            result.skipped += 1
    for name, v in vocabs:
        _pin_vocab(target, name, v.classes, v.extractors)
        result.vocabs.append(name)


def _absorb(
    target: Bank, source: str, *, rename: str | None, require_manifest: bool, op: str
) -> ShareResult:
    with open_source(source) as src:
        label = str(source)
        tables, manifest = read_source(src, label, require_manifest=require_manifest)
    result = ShareResult(target=target.uri, manifest=manifest or {})
    with target.writer(), target.commit_lock():
        new_sets, same = find_conflicts(target, tables, label)
        vocabs = _vocab_plan(target, tables["vocabs"].to_pylist(), rename, label)
        result.skipped = len(same)
        with target.atomic(op):
            _write(target, tables, new_sets, vocabs, result)
            target.log(op, {"source": label, "sets": result.sets, "vocabs": result.vocabs})
    return result


def import_export(target: Bank, source: str, *, rename: str | None = None) -> ShareResult:
    """Import an export (a .protodb file, an export directory or URI) into ``target``; its
    vocabulary keeps its name unless ``rename`` (``--as``) gives another."""
    return _absorb(target, source, rename=rename, require_manifest=True, op="import")


def merge(target: Bank, other: str) -> ShareResult:
    """Merge every prototype set, support image and vocabulary of bank ``other`` into
    ``target`` (same checks as import; the same vocabulary or set is skipped)."""
    return _absorb(target, other, rename=None, require_manifest=False, op="merge")
