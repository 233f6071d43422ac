"""Export a vocabulary, or the whole bank, as a self-contained bank: a deep copy (fresh Lance
files, never a shallow clone pointing back at the source) with its manifest, to a directory,
a LanceDB URI or one file (an uncompressed tar plus ``manifest.json``).
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa

from protodb.bank.schema import (
    rows_of_sets,
    sql_str,
    table_schema,
    vector_dtype,
)
from protodb.bank.share.manifest import FILE_SUFFIXES, ShareResult, build_manifest
from protodb.bank.store import Bank, local_path, open_bank
from protodb.errors import ProtodbError


def _select(bank: Bank, vocab_name: str | None) -> tuple[dict[str, pa.Table], list[dict]]:
    """The rows to export: table -> rows (without ``log``), and the vocab rows."""
    from protodb.bank.vocab import get_vocab

    if vocab_name is None:
        out = {n: bank.read(n) for n in bank.table_names() if n not in ("log", "meta")}
        live = set(out["sets"].column("write_id").to_pylist())
        for n in list(out):  # orphans of crashed writes stay behind
            if n.startswith("prototypes") or n == "cells":
                keep = [w in live for w in out[n].column("write_id").to_pylist()]
                out[n] = out[n].filter(pa.array(keep, pa.bool_()))
        return out, out["vocabs"].to_pylist()
    vocab = get_vocab(bank, vocab_name)
    pins = vocab.versions
    keys = {(c.class_key, c.generator_id, c.seed) for c in vocab.classes}
    exts = {e.extractor_id: e.prototype_table for e in vocab.extractors}
    in_keys = ", ".join(sql_str(c.class_key) for c in vocab.classes)

    def rows(name: str, where: str) -> pa.Table:
        return rows_of_sets(bank.read(name, where, version=pins.get(name)), keys)

    where = f"class_key IN ({in_keys})"
    sets = rows("sets", where)
    recipes = {c.class_key: c.recipe_id for c in vocab.classes}  # "": the one of its key
    sets = sets.filter(
        pa.array(
            [
                e in exts and recipes.get(k) in ("", r)
                for e, k, r in zip(
                    sets.column("extractor_id").to_pylist(),
                    sets.column("class_key").to_pylist(),
                    sets.column("recipe_id").to_pylist(),
                    strict=True,
                )
            ],
            pa.bool_(),
        )
    )
    ids = ", ".join(sql_str(w) for w in sets.column("write_id").to_pylist()) or "''"
    out = {
        "classes": bank.read("classes", where, version=pins.get("classes")),
        "supports": rows("supports", where),
        "masks": rows("masks", where),
        "sets": sets,
        "cells": bank.read("cells", f"write_id IN ({ids})", version=pins.get("cells")),
        "vocabs": bank.read("vocabs", f"name = {sql_str(vocab_name)}"),
    }
    for table in exts.values():
        out[table] = bank.read(table, f"write_id IN ({ids})", version=pins.get(table))
    return out, out["vocabs"].to_pylist()


def _cluster_sets(proto: pa.Table, sets: pa.Table, table: str) -> tuple[pa.Table, pa.Table]:
    """Order prototype rows set by set and record each set's row range in ``sets``."""
    from protodb.bank.maintenance import _cluster, _ranges

    proto, _, _ = _cluster(proto, set(proto.column("write_id").to_pylist()))
    ranges = _ranges(proto)
    start, count = [], []
    for w, t, r0, n in zip(
        sets.column("write_id").to_pylist(),
        sets.column("prototype_table").to_pylist(),
        sets.column("row_start").to_pylist(),
        sets.column("row_count").to_pylist(),
        strict=True,
    ):
        r0, n = ranges[w] if t == table and w in ranges else (r0, n)
        start.append(r0)
        count.append(n)
    sets = sets.set_column(
        sets.schema.get_field_index("row_start"), "row_start", pa.array(start, pa.int64())
    )
    sets = sets.set_column(
        sets.schema.get_field_index("row_count"), "row_count", pa.array(count, pa.int32())
    )
    return proto, sets


def _is_bank(uri: str) -> bool:
    """Whether an object-store location already holds a protodb bank."""
    from protodb.errors import NotFoundError

    try:
        open_bank(uri, create=False)
    except NotFoundError:
        return False
    return True


def export(bank: Bank, target: str, *, vocab: str | None = None) -> ShareResult:
    """Export vocabulary ``vocab`` (its pinned rows, support images included) or the whole bank
    (latest rows) to ``target``: a file ending in .protodb or .tar (one self-contained file), or
    a new directory / LanceDB URI. A deep copy; the source is only read."""
    tables, vocab_rows = _select(bank, vocab)
    target = str(target)
    is_file = target.endswith(FILE_SUFFIXES)
    local = local_path(target)
    if local is not None and os.path.exists(local) and (is_file or os.listdir(local)):
        raise ProtodbError(f"export target {target!r} exists; choose a new path")
    if local is None and _is_bank(target):
        raise ProtodbError(f"export target {target!r} holds a bank; choose a new location")
    with tempfile.TemporaryDirectory(prefix="protodb-export-") as tmp:
        bank_uri = os.path.join(tmp, "bank") if is_file else target
        out = open_bank(bank_uri)
        sets = tables["sets"]
        for name, rows in tables.items():
            if name.startswith("prototypes"):
                rows, sets = _cluster_sets(rows, sets, name)
                tables[name] = rows
                dim = rows.schema.field("vector").type.list_size
                dtype = vector_dtype(rows.schema)
                out.create_prototype_table(name, dim, dtype)
        tables["sets"] = sets
        for name, rows in tables.items():
            if name != "vocabs":
                out.append(name, rows)
        _repin(out, vocab_rows)
        tables = {n: out.read(n) for n in out.table_names() if n not in ("log", "meta")}
        manifest = build_manifest(bank, tables, vocab)
        out.append(
            "meta",
            pa.table(
                {"key": ["manifest"], "value": [json.dumps(manifest, sort_keys=True)]},
                schema=table_schema("meta"),
            ),
        )
        out.log("export", {"source": bank.uri, "vocab": vocab})
        if is_file:
            Path(tmp, "manifest.json").write_text(json.dumps(manifest, indent=1), "utf-8")
            part = target + ".part"
            with tarfile.open(part, "w") as tar:
                tar.add(os.path.join(tmp, "manifest.json"), arcname="manifest.json")
                tar.add(bank_uri, arcname="bank")
            os.replace(part, target)  # the file appears whole or not at all
    return ShareResult(
        target=target,
        vocabs=[r["name"] for r in vocab_rows],
        sets=tables["sets"].num_rows,
        supports=tables["supports"].num_rows,
        manifest=manifest,
    )


def _repin(out: Bank, vocab_rows: list[dict]) -> None:
    """Write the vocabularies into the export, pinned to the export's own table versions."""
    from protodb.bank.vocab import _from_row, _pin_vocab

    for r in vocab_rows:
        v = _from_row(r)
        _pin_vocab(out, v.name, v.classes, v.extractors)
