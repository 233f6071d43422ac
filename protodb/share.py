"""Sharing banks: ``export`` a vocabulary (or the whole bank), ``import`` an export, ``merge``
another bank.

An export is itself a small protodb bank (a deep copy: fresh Lance files, never a shallow clone
pointing back at the source) whose ``meta`` table holds a manifest: provenance (generator and
extractor configs with model ids and revisions, protodb version, when and by whom) and the
sha256 of every table's content. It is written either to a directory / LanceDB URI or to one
self-contained file (an uncompressed tar of that bank plus ``manifest.json``).

Import treats its input as hostile: archive members must stay inside the target (no absolute
paths, no ``..``, no links or devices), schemas, vector dims, sizes and finiteness are checked,
hashes are verified, nothing is unpickled or executed, and a key that exists in the target with
other provenance is refused naming the key and the difference. Everything is checked before the
first write; should a write fail, the target's tables are restored to their versions before the
import, so a refused import leaves the target unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from protodb.bank import (
    CORE_TABLES,
    SCHEMA_VERSION,
    Bank,
    SetKey,
    _user,
    local_path,
    now,
    open_bank,
    prototype_table_name,
    retry_commit,
    rows_of_sets,
    sql_str,
    table_schema,
    vector_dtype,
)
from protodb.errors import BankError, NeedsMigrationError, NotFoundError, ProtodbError

FORMAT = "protodb-export"
FORMAT_VERSION = 1
FILE_SUFFIXES = (".protodb", ".tar")
MAX_DIM = 65536
MAX_BLOB = 256 * 2**20  # one PNG / attribution map / cell map
MAX_MEMBER = 64 * 2**30
SUPPORT_KEY = ("class_key", "generator_id", "seed", "index")
MASK_KEY = ("class_key", "generator_id", "seed", "n", "mask_source", "index")
# the fields of a set / support whose difference makes the same key a conflict
SET_PROVENANCE = ("generator_config", "extractor_config", "n", "mask_source", "dim")
SUPPORT_PROVENANCE = ("generator_config", "runtime", "height", "width")


class ImportRefused(ProtodbError):
    """An import or merge was refused; the target bank is unchanged."""


@dataclass
class ShareResult:
    """What an export / import / merge did.

    target: where it went; vocabs: vocabulary names written; sets: prototype sets written
    (skipped: already present with the same provenance); supports: support images written;
    manifest: the export's manifest (see :func:`build_manifest`).
    """

    target: str
    vocabs: list[str] = field(default_factory=list)
    sets: int = 0
    skipped: int = 0
    supports: int = 0
    manifest: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- hashing


def table_sha256(table: pa.Table) -> str:
    """sha256 of a table's content, independent of row order and chunking: rows sorted by
    every scalar column, serialised as one Arrow IPC stream without schema metadata."""
    keys = [
        f.name
        for f in table.schema
        if pa.types.is_string(f.type) or pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
    ]
    if table.num_rows and keys:
        table = table.sort_by([(k, "ascending") for k in keys])
    table = table.replace_schema_metadata(None).combine_chunks()
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))
    return hashlib.sha256(sink.getvalue()).hexdigest()


# --------------------------------------------------------------------------- export


def _select(bank: Bank, vocab_name: str | None) -> tuple[dict[str, pa.Table], list[dict]]:
    """The rows to export: table -> rows (without ``log``), and the vocab rows."""
    from protodb.vocab import get_vocab

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
    sets = sets.filter(pa.array([e in exts for e in sets.column("extractor_id").to_pylist()]))
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


def build_manifest(bank: Bank, tables: dict[str, pa.Table], vocab: str | None) -> dict:
    """The manifest of an export. Keys: format, format_version, schema_version,
    protodb_version, created_at (ISO UTC), created_by (user@host), source (bank URI), vocab
    (name or null for a whole bank), generators / extractors (id -> config, which carries the
    model id and revision), tables (name -> {rows, sha256})."""
    from protodb import __version__

    sets = tables["sets"].to_pylist()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "protodb_version": __version__,
        "created_at": now().isoformat(),
        "created_by": f"{_user()}@{platform.node()}",
        "source": bank.uri,
        "vocab": vocab,
        "generators": {s["generator_id"]: json.loads(s["generator_config"]) for s in sets},
        "extractors": {s["extractor_id"]: json.loads(s["extractor_config"]) for s in sets},
        "tables": {
            name: {"rows": t.num_rows, "sha256": table_sha256(t)} for name, t in tables.items()
        },
    }


def _cluster_sets(proto: pa.Table, sets: pa.Table, table: str) -> tuple[pa.Table, pa.Table]:
    """Order prototype rows set by set and record each set's row range in ``sets``."""
    from protodb.maintenance import _cluster, _ranges

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
    from protodb.vocab import _from_row, _pin_vocab

    for r in vocab_rows:
        v = _from_row(r)
        _pin_vocab(out, v.name, v.classes, v.extractors)


# --------------------------------------------------------------------------- reading a source


def _refuse(msg: str) -> ImportRefused:
    return ImportRefused(msg + "; the target bank is unchanged")


def _safe_extract(path: str, dest: str) -> None:
    """Extract a tar whose members must be plain files / directories inside ``dest``."""
    try:
        with tarfile.open(path, "r:") as tar:
            members = tar.getmembers()
            for m in members:
                name = m.name
                parts = Path(name).parts
                if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in parts:
                    raise _refuse(
                        f"archive {path!r} has a member named {name!r} that would escape the "
                        "target directory (absolute path or '..')"
                    )
                if not (m.isfile() or m.isdir()):
                    raise _refuse(
                        f"archive {path!r} has member {name!r} that is not a plain file or "
                        "directory (links and devices are refused)"
                    )
                if m.size > MAX_MEMBER:
                    raise _refuse(f"archive member {name!r} is too large ({m.size} bytes)")
            tar.extractall(dest, members=members, filter="data")
    except ImportRefused:
        raise
    except (tarfile.TarError, EOFError, OSError) as err:
        raise _refuse(
            f"cannot read {path!r} as a protodb export (truncated or not a .protodb file): {err}"
        ) from None


@contextmanager
def _open_source(source: str) -> Iterator[Bank]:
    """Open an export file, export directory or bank read-only (files: extracted safely)."""
    local = local_path(str(source))
    if local is not None and not os.path.exists(local):
        raise NotFoundError(f"import source {source!r} does not exist")
    tmp = None
    try:
        uri = str(source)
        if local is not None and os.path.isfile(local):
            tmp = tempfile.mkdtemp(prefix="protodb-import-")
            _safe_extract(local, tmp)
            uri = os.path.join(tmp, "bank")
            if not os.path.isdir(uri):
                raise _refuse(f"{source!r} holds no bank/ directory: not a protodb export")
        try:
            # an export we extracted is ours to migrate; another bank is never changed
            src = open_bank(uri, create=False, migrate=tmp is not None)
        except NeedsMigrationError:
            if local is None:
                raise _refuse(
                    f"{source!r} is a schema-1 bank; migrate it first by opening it with this "
                    f"protodb (`protodb --bank {source} ls`), then merge it"
                ) from None
            tmp = tempfile.mkdtemp(prefix="protodb-merge-")
            uri = os.path.join(tmp, "bank")
            shutil.copytree(local, uri, symlinks=True)
            src = open_bank(uri, create=False)  # migrates the copy
        except (NotFoundError, BankError) as err:
            raise _refuse(f"{source!r} is not a protodb bank or export ({err})") from None
        except Exception as err:  # noqa: BLE001 - Lance errors on foreign data
            raise _refuse(f"{source!r} is not a protodb bank or export: {err}") from None
        yield src
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- validation


def _check_schema(name: str, have: pa.Schema, source: str) -> list[str]:
    """Refuse a table whose columns (names and types, in any order: a migrated schema-1
    bank has its newer columns last) are not the protodb schema; returns the column order."""
    if name.startswith("prototypes"):
        if "vector" not in have.names or not pa.types.is_fixed_size_list(have.field("vector").type):
            raise _refuse(f"{source!r}: table {name!r} has no fixed-size vector column")
        vt = have.field("vector").type
        dim = vt.list_size
        if not 1 <= dim <= MAX_DIM:
            raise _refuse(f"{source!r}: table {name!r} has vectors of dim {dim}")
        if vt.value_type not in (pa.float16(), pa.float32()):
            raise _refuse(f"{source!r}: table {name!r} stores {vt.value_type} vectors")
        want = table_schema(name, dim, vector_dtype(have))
    elif name in CORE_TABLES:
        want = table_schema(name)
    else:
        raise _refuse(f"{source!r}: unknown table {name!r} (not part of a protodb bank)")
    got = sorted(((f.name, f.type) for f in have), key=str)
    exp = sorted(((f.name, f.type) for f in want), key=str)
    if len(have) != len(set(have.names)) or got != exp:
        diff = sorted(set(got) ^ set(exp), key=str)
        raise _refuse(
            f"{source!r}: table {name!r} does not have the protodb schema "
            f"{SCHEMA_VERSION} (differs in {diff[:3]})"
        )
    return want.names


def _read_source(src: Bank, label: str, *, require_manifest: bool) -> tuple[dict, dict | None]:
    """All tables of a source (checked) and its manifest."""
    names = src.table_names()
    missing = [n for n in CORE_TABLES if n not in names]
    if missing:
        raise _refuse(f"{label!r} is not a protodb bank: tables {missing} are missing")
    tables: dict[str, pa.Table] = {}
    for name in names:
        order = _check_schema(name, src.table(name).schema, label)
        if name not in ("log", "meta"):
            tables[name] = src.read(name).select(order)
    meta = src.meta()
    manifest = None
    if "manifest" in meta:
        try:
            manifest = json.loads(meta["manifest"])
        except json.JSONDecodeError:
            raise _refuse(f"{label!r}: its manifest is not valid JSON") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _refuse(f"{label!r}: its manifest is not a {FORMAT} manifest")
        listed = manifest.get("tables")
        if not isinstance(listed, dict) or set(listed) != set(tables):
            raise _refuse(
                f"{label!r}: the manifest lists tables {sorted(listed or [])}, "
                f"the export holds {sorted(tables)}"
            )
        for name, t in tables.items():
            info = listed[name]
            if not isinstance(info, dict) or info.get("rows") != t.num_rows:
                raise _refuse(
                    f"{label!r}: table {name!r} has {t.num_rows} rows, the manifest says "
                    f"{info.get('rows') if isinstance(info, dict) else info!r} (truncated?)"
                )
            if info.get("sha256") != table_sha256(t):
                raise _refuse(
                    f"{label!r}: table {name!r} does not match the sha256 in its manifest "
                    "(altered or corrupted)"
                )
    elif require_manifest:
        raise _refuse(f"{label!r} has no export manifest: not a protodb export")
    _check_content(tables, label)
    return tables, manifest


def _check_content(tables: dict[str, pa.Table], label: str) -> None:
    """Sizes, dims and finite values of a source's rows."""
    for s in tables["sets"].to_pylist():
        key = f"({s['class_key']!r}, {s['generator_id']}, seed {s['seed']}, {s['extractor_id']})"
        table = s["prototype_table"]
        if table != prototype_table_name(s["extractor_id"]) or table not in tables:
            raise _refuse(f"{label!r}: set {key} names a missing prototype table {table!r}")
        dim = tables[table].schema.field("vector").type.list_size
        if s["dim"] != dim:
            raise _refuse(
                f"{label!r}: set {key} says dim {s['dim']} but table {table!r} holds dim {dim}"
            )
        for col in ("generator_config", "extractor_config"):
            try:
                json.loads(s[col])
            except (TypeError, json.JSONDecodeError):
                raise _refuse(f"{label!r}: set {key} has an unreadable {col}") from None
    for name, t in tables.items():
        if name.startswith("prototypes") and t.num_rows:
            values = t.column("vector").combine_chunks().flatten()
            if not bool(np.isfinite(values.to_numpy(zero_copy_only=False)).all()):
                raise _refuse(
                    f"{label!r}: table {name!r} holds non-finite vector values (NaN or inf)"
                )
            nulls = t.column("vector").null_count
            if nulls:
                raise _refuse(f"{label!r}: table {name!r} holds {nulls} null vectors")
            counts = pc.value_counts(t.column("write_id")).to_pylist()
            have = {c["values"]: c["counts"] for c in counts}
            for s in tables["sets"].to_pylist():
                if (
                    s["prototype_table"] == name
                    and have.get(s["write_id"]) != s["n_fg"] + s["n_bg"]
                ):
                    raise _refuse(
                        f"{label!r}: set ({s['class_key']!r}, seed {s['seed']}, "
                        f"{s['extractor_id']}) has {have.get(s['write_id'], 0)} prototype rows, "
                        f"its record says {s['n_fg'] + s['n_bg']}"
                    )
    shapes = tables["supports"].select(["height", "width", "attr_h", "attr_w"])
    for r in shapes.to_pylist():
        if not (0 < r["height"] <= 8192 and 0 < r["width"] <= 8192):
            raise _refuse(f"{label!r}: a support image has size {r['height']}x{r['width']}")
        if not (0 < r["attr_h"] <= 8192 and 0 < r["attr_w"] <= 8192):
            raise _refuse(f"{label!r}: an attribution map has size {r['attr_h']}x{r['attr_w']}")
    sup = tables["supports"]
    if sup.num_rows:
        attr = pc.binary_length(sup.column("attribution")).to_numpy(zero_copy_only=False)
        want = 4 * sup.column("attr_h").to_numpy() * sup.column("attr_w").to_numpy()
        if (attr != want).any():
            raise _refuse(f"{label!r}: an attribution map's size does not match its shape")
        png = pc.binary_length(sup.column("image_png")).to_numpy(zero_copy_only=False)
        if (png > MAX_BLOB).any():
            raise _refuse(f"{label!r}: a support image is larger than {MAX_BLOB} bytes")
    cells = tables["cells"]
    if cells.num_rows:
        size = pc.binary_length(cells.column("cells")).to_numpy(zero_copy_only=False)
        want = 2 * cells.column("grid_h").to_numpy() * cells.column("grid_w").to_numpy()
        if (size != want).any():
            raise _refuse(f"{label!r}: a cell map's size does not match its grid")


def _conflicts(target: Bank, tables: dict[str, pa.Table], label: str) -> tuple[list, list]:
    """(source sets to write, source sets already in the target with the same provenance);
    refuses a key that exists with other provenance."""
    new, same = [], []
    for s in tables["sets"].to_pylist():
        key = SetKey(s["class_key"], s["generator_id"], s["seed"], s["extractor_id"])
        mine = target.find_set(key)
        if mine is None:
            new.append(s)
            continue
        for f in SET_PROVENANCE:
            if mine[f] != s[f]:
                raise _refuse(
                    f"{label!r}: prototype set (class {s['class_key']!r}, generator "
                    f"{s['generator_id']}, seed {s['seed']}, extractor {s['extractor_id']}) "
                    f"exists in the target with other provenance: {f} is {mine[f]!r} there and "
                    f"{s[f]!r} in the import"
                )
        same.append(s)
    for table in {s["prototype_table"] for s in new}:
        if table in target.table_names():
            have = target.table(table).schema.field("vector").type
            got = tables[table].schema.field("vector").type
            if have != got:
                raise _refuse(
                    f"{label!r}: table {table!r} holds {got} vectors, the target holds {have}"
                )
    for r in tables["supports"].to_pylist():
        where = " AND ".join(
            f"{k} = {sql_str(r[k]) if isinstance(r[k], str) else int(r[k])}" for k in SUPPORT_KEY
        )
        rows = target.read("supports", where, columns=list(SUPPORT_PROVENANCE)).to_pylist()
        for f in SUPPORT_PROVENANCE:
            if rows and rows[0][f] != r[f]:
                raise _refuse(
                    f"{label!r}: support image (class {r['class_key']!r}, generator "
                    f"{r['generator_id']}, seed {r['seed']}, index {r['index']}) exists in the "
                    f"target with other provenance: {f} is {rows[0][f]!r} there and {r[f]!r} "
                    "in the import"
                )
    return new, same


# --------------------------------------------------------------------------- import / merge


def _vocab_plan(target: Bank, vocab_rows: list[dict], rename: str | None, label: str) -> list:
    from protodb.vocab import VOCAB_NAME, _from_row

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
            raise _refuse(f"{label!r}: invalid vocabulary name {name!r}")
        mine = target.read("vocabs", f"name = {sql_str(name)}").to_pylist()
        if mine:
            a, b = _from_row(mine[0]), v
            if (a.classes, [e.extractor_id for e in a.extractors]) == (
                b.classes,
                [e.extractor_id for e in b.extractors],
            ):
                continue  # the same vocabulary is already there
            raise _refuse(
                f"{label!r}: vocabulary {name!r} exists in the target with other classes or "
                f"extractors; import it under another name with --as NAME"
            )
        plan.append((name, v))
    return plan


def _write(target: Bank, tables: dict, new_sets: list, vocabs: list, result: ShareResult):
    from protodb.vocab import _pin_vocab

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
        key = SetKey(s["class_key"], s["generator_id"], s["seed"], s["extractor_id"])
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
    with _open_source(source) as src:
        label = str(source)
        tables, manifest = _read_source(src, label, require_manifest=require_manifest)
    result = ShareResult(target=target.uri, manifest=manifest or {})
    with target.writer(), target.commit_lock():
        new_sets, same = _conflicts(target, tables, label)
        vocabs = _vocab_plan(target, tables["vocabs"].to_pylist(), rename, label)
        result.skipped = len(same)
        before = target.versions()
        tags = {name: target.tags(name) for name in before}
        try:
            _write(target, tables, new_sets, vocabs, result)
        except BaseException:
            _roll_back(target, before, tags)
            raise
        target.log(op, {"source": label, "sets": result.sets, "vocabs": result.vocabs})
    return result


def _roll_back(target: Bank, before: dict[str, int], tags: dict[str, dict[str, int]]) -> None:
    """Put every table (and its vocabulary tags) back as it was before a failed import."""
    for name in target.table_names():
        was = tags.get(name, {})
        for tag, version in target.tags(name).items():
            if tag not in was:
                target.untag(name, tag)
            elif version != was[tag]:
                target.tag(name, tag, was[tag])
        tbl = target.table(name)
        if name not in before:
            retry_commit(lambda t=tbl: t.delete("true"))
        elif int(tbl.version) != before[name]:
            retry_commit(lambda t=tbl, v=before[name]: t.restore(v))


def import_export(target: Bank, source: str, *, rename: str | None = None) -> ShareResult:
    """Import an export (a .protodb file, an export directory or URI) into ``target``; its
    vocabulary keeps its name unless ``rename`` (``--as``) gives another."""
    return _absorb(target, source, rename=rename, require_manifest=True, op="import")


def merge(target: Bank, other: str) -> ShareResult:
    """Merge every prototype set, support image and vocabulary of bank ``other`` into
    ``target`` (same checks as import; the same vocabulary or set is skipped)."""
    return _absorb(target, other, rename=None, require_manifest=False, op="merge")


def read_manifest(source: str) -> dict:
    """The manifest of an export (nothing is checked but its presence)."""
    with _open_source(source) as src:
        meta = src.meta()
    if "manifest" not in meta:
        raise ProtodbError(f"{source!r} has no export manifest")
    return json.loads(meta["manifest"])


__all__ = [
    "ImportRefused",
    "ShareResult",
    "build_manifest",
    "export",
    "import_export",
    "merge",
    "read_manifest",
    "table_sha256",
]
