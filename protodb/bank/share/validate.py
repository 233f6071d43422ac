"""Reading and checking an import's source, which is hostile input.

Archive members must stay inside the target (no absolute paths, no ``..``, no links or
devices); schemas, vector dims, sizes and finite values are checked; hashes are verified;
nothing is unpickled or executed; a key that exists in the target with other provenance is a
conflict named with its difference. Everything here runs before the first write.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from protodb.bank.recipe import check_recipe
from protodb.bank.schema import (
    CORE_TABLES,
    RECIPE_COLUMNS,
    SCHEMA_VERSION,
    SetKey,
    prototype_table_name,
    sql_str,
    table_schema,
    vector_dtype,
)
from protodb.bank.share.manifest import (
    FORMAT,
    MAX_BLOB,
    MAX_DIM,
    MAX_MEMBER,
    SET_PROVENANCE,
    SUPPORT_KEY,
    SUPPORT_PROVENANCE,
    ImportRefused,
    refuse,
    table_sha256,
)
from protodb.bank.store import Bank, local_path, open_bank
from protodb.errors import BankError, NeedsMigrationError, NotFoundError, ProtodbError


def _safe_extract(path: str, dest: str) -> None:
    """Extract a tar whose members must be plain files / directories inside ``dest``."""
    try:
        with tarfile.open(path, "r:") as tar:
            members = tar.getmembers()
            for m in members:
                name = m.name
                parts = Path(name).parts
                if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in parts:
                    raise refuse(
                        f"archive {path!r} has a member named {name!r} that would escape the "
                        "target directory (absolute path or '..')"
                    )
                if not (m.isfile() or m.isdir()):
                    raise refuse(
                        f"archive {path!r} has member {name!r} that is not a plain file or "
                        "directory (links and devices are refused)"
                    )
                if m.size > MAX_MEMBER:
                    raise refuse(f"archive member {name!r} is too large ({m.size} bytes)")
            tar.extractall(dest, members=members, filter="data")
    except ImportRefused:
        raise
    except (tarfile.TarError, EOFError, OSError) as err:
        raise refuse(
            f"cannot read {path!r} as a protodb export (truncated or not a .protodb file): {err}"
        ) from None


@contextmanager
def open_source(source: str) -> Iterator[Bank]:
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
                raise refuse(f"{source!r} holds no bank/ directory: not a protodb export")
        try:
            # an export we extracted is ours to migrate; another bank is never changed
            src = open_bank(uri, create=False, migrate=tmp is not None)
        except NeedsMigrationError:
            if local is None:
                raise refuse(
                    f"{source!r} is a schema-1 bank; migrate it first by opening it with this "
                    f"protodb (`protodb --bank {source} ls`), then merge it"
                ) from None
            tmp = tempfile.mkdtemp(prefix="protodb-merge-")
            uri = os.path.join(tmp, "bank")
            shutil.copytree(local, uri, symlinks=True)
            src = open_bank(uri, create=False)  # migrates the copy
        except (NotFoundError, BankError) as err:
            raise refuse(f"{source!r} is not a protodb bank or export ({err})") from None
        except Exception as err:  # noqa: BLE001 - Lance errors on foreign data
            raise refuse(f"{source!r} is not a protodb bank or export: {err}") from None
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
            raise refuse(f"{source!r}: table {name!r} has no fixed-size vector column")
        vt = have.field("vector").type
        dim = vt.list_size
        if not 1 <= dim <= MAX_DIM:
            raise refuse(f"{source!r}: table {name!r} has vectors of dim {dim}")
        if vt.value_type not in (pa.float16(), pa.float32()):
            raise refuse(f"{source!r}: table {name!r} stores {vt.value_type} vectors")
        want = table_schema(name, dim, vector_dtype(have))
    elif name in CORE_TABLES:
        want = table_schema(name)
    else:
        raise refuse(f"{source!r}: unknown table {name!r} (not part of a protodb bank)")
    got = sorted(((f.name, f.type) for f in have), key=str)
    exp = sorted(((f.name, f.type) for f in want), key=str)
    if len(have) != len(set(have.names)) or got != exp:
        diff = sorted(set(got) ^ set(exp), key=str)
        raise refuse(
            f"{source!r}: table {name!r} does not have the protodb schema "
            f"{SCHEMA_VERSION} (differs in {diff[:3]})"
        )
    return want.names


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return SCHEMA_VERSION


def read_source(src: Bank, label: str, *, require_manifest: bool) -> tuple[dict, dict | None]:
    """All tables of a source (checked) and its manifest."""
    names = src.table_names()
    missing = [n for n in CORE_TABLES if n not in names]
    if missing:
        raise refuse(f"{label!r} is not a protodb bank: tables {missing} are missing")
    tables: dict[str, pa.Table] = {}
    try:
        for name in names:
            order = _check_schema(name, src.table(name).schema, label)
            if name not in ("log", "meta"):
                tables[name] = src.read(name).select(order)
        meta = src.meta()
    except ImportRefused:
        raise
    except Exception as err:  # noqa: BLE001 - Lance raises OSError/ValueError/... on bad data
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise refuse(
            f"{label!r}: its Lance data cannot be read ({type(err).__name__}: {first})"
        ) from None
    manifest = None
    if "manifest" in meta:
        try:
            manifest = json.loads(meta["manifest"])
        except json.JSONDecodeError:
            raise refuse(f"{label!r}: its manifest is not valid JSON") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise refuse(f"{label!r}: its manifest is not a {FORMAT} manifest")
        listed = manifest.get("tables")
        if not isinstance(listed, dict) or set(listed) != set(tables):
            raise refuse(
                f"{label!r}: the manifest lists tables {sorted(listed or [])}, "
                f"the export holds {sorted(tables)}"
            )
        for name, t in tables.items():
            info = listed[name]
            if not isinstance(info, dict) or info.get("rows") != t.num_rows:
                raise refuse(
                    f"{label!r}: table {name!r} has {t.num_rows} rows, the manifest says "
                    f"{info.get('rows') if isinstance(info, dict) else info!r} (truncated?)"
                )
            if name == "sets" and _int(manifest.get("schema_version")) < 3:
                t = t.drop_columns([c for c in RECIPE_COLUMNS if c in t.schema.names])
            if info.get("sha256") != table_sha256(t):
                raise refuse(
                    f"{label!r}: table {name!r} does not match the sha256 in its manifest "
                    "(altered or corrupted)"
                )
    elif require_manifest:
        raise refuse(f"{label!r} has no export manifest: not a protodb export")
    _check_content(tables, label)
    if manifest is not None:
        _check_manifest_provenance(tables, manifest, label)
    return tables, manifest


def _json(text, what: str, label: str):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise refuse(f"{label!r}: {what} is not valid JSON") from None


def _check_names(tables: dict[str, pa.Table], label: str) -> None:
    """Class names and keys as strictly as ``add`` makes them: canonical, no control, format or
    surrogate characters, within the length limit, and the key the name's own."""
    from protodb.names import canonical

    for name in ("classes", "sets"):
        for r in tables[name].select(["class_key", "name"]).to_pylist():
            shown = str(r["name"]).encode("unicode_escape").decode()[:60]
            try:
                ok = canonical(r["name"]) == r["name"] and r["class_key"] == r["name"].casefold()
            except ProtodbError as err:
                raise refuse(f"{label!r}: class {shown!r} is refused: {err}") from None
            if not ok:
                raise refuse(
                    f"{label!r}: class {shown!r} is not in canonical form or its key "
                    f"{str(r['class_key']).encode('unicode_escape').decode()[:60]!r} is not its own"
                )
    keys = set(tables["classes"].column("class_key").to_pylist())
    for name in ("sets", "supports", "masks", "cells"):
        stray = set(tables[name].column("class_key").to_pylist()) - keys
        if stray:
            raise refuse(
                f"{label!r}: table {name!r} has rows of class keys {sorted(stray)[:3]} that "
                "the classes table does not hold"
            )


def _check_recipes(tables: dict[str, pa.Table], label: str) -> None:
    """Every set's recipe id is well-formed and the hash of the recipe stored with it, whose n
    and mask source are the set's."""
    for s in tables["sets"].to_pylist():
        key = f"({s['class_key']!r}, {s['generator_id']}, seed {s['seed']}, {s['extractor_id']})"
        bad = check_recipe(s.get("recipe_id"), s.get("recipe"))
        if bad is None:
            recipe = json.loads(s["recipe"])
            if (recipe.get("n"), recipe.get("mask_source")) != (s["n"], s["mask_source"]):
                bad = (
                    f"recipe {s['recipe_id']} (n={recipe.get('n')}, mask source "
                    f"{recipe.get('mask_source')}) is not the set's (n={s['n']}, mask source "
                    f"{s['mask_source']})"
                )
        if bad is not None:
            raise refuse(f"{label!r}: set {key}: {bad}")


def _check_vocabs(tables: dict[str, pa.Table], label: str) -> None:
    """Every vocabulary's classes have a set for each of its extractors in the source."""
    cols = ["class_key", "generator_id", "seed", "extractor_id", "recipe_id"]
    have = {tuple(s[c] for c in cols) for s in tables["sets"].select(cols).to_pylist()}
    loose = {k[:4] for k in have}
    for r in tables["vocabs"].to_pylist():
        vname = str(r["name"]).encode("unicode_escape").decode()[:60]
        classes = _json(r["classes"], f"vocabulary {vname!r}'s classes", label)
        exts = _json(r["extractors"], f"vocabulary {vname!r}'s extractors", label)
        _json(r["versions"], f"vocabulary {vname!r}'s versions", label)
        try:
            keys = [
                (c["class_key"], c["generator_id"], int(c["seed"]), c.get("recipe_id") or "")
                for c in classes
            ]
            ext_ids = [e["extractor_id"] for e in exts]
        except (TypeError, KeyError, ValueError, AttributeError):
            raise refuse(f"{label!r}: vocabulary {vname!r} is malformed") from None
        for *key, recipe in keys:
            for e in ext_ids:
                if (*key, e, recipe) not in have and (recipe or (*key, e) not in loose):
                    raise refuse(
                        f"{label!r}: vocabulary {vname!r} names class {key[0]!r} with "
                        f"extractor {e}{f' and recipe {recipe}' if recipe else ''}, but the "
                        "source holds no such prototype set"
                    )


def _check_manifest_provenance(tables: dict[str, pa.Table], manifest: dict, label: str) -> None:
    """The manifest's generators, extractors and recipes (those before schema 3 list none) are
    exactly the sets' (ids and configs)."""
    sets = tables["sets"].to_pylist()
    fields = [("generators", "generator", "config"), ("extractors", "extractor", "config")]
    if "recipes" in manifest or _int(manifest.get("schema_version")) >= 3:
        fields.append(("recipes", "recipe", ""))
    for field, col, suffix in fields:
        listed = manifest.get(field)
        conf = f"{col}_{suffix}" if suffix else col
        mine = {s[f"{col}_id"]: _json(s[conf], f"a {col} config", label) for s in sets}
        if not isinstance(listed, dict) or listed != mine:
            raise refuse(
                f"{label!r}: the manifest's {field} do not match its prototype sets "
                "(altered or corrupted)"
            )


def _check_supports(tables: dict[str, pa.Table], label: str) -> None:
    """Every support image is a PNG of the size its row says, within the pixel limit; read
    from the header before anything is decoded."""
    import io

    from PIL import Image

    from protodb.images import max_pixels

    limit = max_pixels()
    cols = ["class_key", "index", "image_png", "height", "width"]
    for r in tables["supports"].select(cols).to_pylist():
        what = f"support image {r['index']} of class {r['class_key']!r}"
        if r["height"] * r["width"] > limit:
            raise refuse(f"{label!r}: {what} is over the pixel limit ({limit} pixels)")
        try:
            with Image.open(io.BytesIO(r["image_png"] or b"")) as im:
                if im.format != "PNG" or im.size != (r["width"], r["height"]):
                    raise refuse(
                        f"{label!r}: {what} is not the {r['width']}x{r['height']} PNG its row "
                        f"says ({im.format} {im.size[0]}x{im.size[1]})"
                    )
                im.load()
        except ImportRefused:
            raise
        except Exception:  # noqa: BLE001 - PIL raises many types on foreign bytes
            raise refuse(f"{label!r}: {what} does not decode as a PNG") from None


def _check_extractor(s: dict, key: str, dim: int, label: str) -> None:
    """The set's vectors have the dim its stored extractor config makes
    (protodb.extractors.dims; models unknown here are not judged)."""
    from protodb.extractors.base import ExtractorConfig
    from protodb.extractors.dims import expected_dim

    text = s["extractor_config"]
    try:
        config = ExtractorConfig.from_json(text)
    except (TypeError, ValueError):
        raise refuse(f"{label!r}: set {key} has an unreadable extractor_config") from None
    want = expected_dim(config)
    if want is not None and want != dim:
        raise refuse(
            f"{label!r}: set {key} holds vectors of dim {dim}, but extractor {config.name!r} "
            f"(model {config.model!r}) makes dim {want}"
        )


def _check_content(tables: dict[str, pa.Table], label: str) -> None:
    """Names, vocabularies, sizes, dims and finite values of a source's rows."""
    _check_names(tables, label)
    _check_recipes(tables, label)
    _check_vocabs(tables, label)
    _check_supports(tables, label)
    for s in tables["sets"].to_pylist():
        key = f"({s['class_key']!r}, {s['generator_id']}, seed {s['seed']}, {s['extractor_id']})"
        table = s["prototype_table"]
        if table != prototype_table_name(s["extractor_id"]) or table not in tables:
            raise refuse(f"{label!r}: set {key} names a missing prototype table {table!r}")
        dim = tables[table].schema.field("vector").type.list_size
        if s["dim"] != dim:
            raise refuse(
                f"{label!r}: set {key} says dim {s['dim']} but table {table!r} holds dim {dim}"
            )
        for col in ("generator_config", "extractor_config"):
            try:
                json.loads(s[col])
            except (TypeError, json.JSONDecodeError):
                raise refuse(f"{label!r}: set {key} has an unreadable {col}") from None
        _check_extractor(s, key, dim, label)
    for name, t in tables.items():
        if name.startswith("prototypes") and t.num_rows:
            values = t.column("vector").combine_chunks().flatten()
            if not bool(np.isfinite(values.to_numpy(zero_copy_only=False)).all()):
                raise refuse(
                    f"{label!r}: table {name!r} holds non-finite vector values (NaN or inf)"
                )
            nulls = t.column("vector").null_count
            if nulls:
                raise refuse(f"{label!r}: table {name!r} holds {nulls} null vectors")
            counts = pc.value_counts(t.column("write_id")).to_pylist()
            have = {c["values"]: c["counts"] for c in counts}
            for s in tables["sets"].to_pylist():
                if (
                    s["prototype_table"] == name
                    and have.get(s["write_id"]) != s["n_fg"] + s["n_bg"]
                ):
                    raise refuse(
                        f"{label!r}: set ({s['class_key']!r}, seed {s['seed']}, "
                        f"{s['extractor_id']}) has {have.get(s['write_id'], 0)} prototype rows, "
                        f"its record says {s['n_fg'] + s['n_bg']}"
                    )
    shapes = tables["supports"].select(["height", "width", "attr_h", "attr_w"])
    for r in shapes.to_pylist():
        if not (0 < r["height"] <= 8192 and 0 < r["width"] <= 8192):
            raise refuse(f"{label!r}: a support image has size {r['height']}x{r['width']}")
        if not (0 < r["attr_h"] <= 8192 and 0 < r["attr_w"] <= 8192):
            raise refuse(f"{label!r}: an attribution map has size {r['attr_h']}x{r['attr_w']}")
    sup = tables["supports"]
    if sup.num_rows:
        attr = pc.binary_length(sup.column("attribution")).to_numpy(zero_copy_only=False)
        want = 4 * sup.column("attr_h").to_numpy() * sup.column("attr_w").to_numpy()
        if (attr != want).any():
            raise refuse(f"{label!r}: an attribution map's size does not match its shape")
        png = pc.binary_length(sup.column("image_png")).to_numpy(zero_copy_only=False)
        if (png > MAX_BLOB).any():
            raise refuse(f"{label!r}: a support image is larger than {MAX_BLOB} bytes")
    cells = tables["cells"]
    if cells.num_rows:
        size = pc.binary_length(cells.column("cells")).to_numpy(zero_copy_only=False)
        want = 2 * cells.column("grid_h").to_numpy() * cells.column("grid_w").to_numpy()
        if (size != want).any():
            raise refuse(f"{label!r}: a cell map's size does not match its grid")


def find_conflicts(target: Bank, tables: dict[str, pa.Table], label: str) -> tuple[list, list]:
    """(source sets to write, source sets already in the target with the same provenance);
    refuses a key that exists with other provenance."""
    new, same = [], []
    for s in tables["sets"].to_pylist():
        mine = target.find_set(SetKey.of(s))
        if mine is None:
            new.append(s)
            continue
        for f in SET_PROVENANCE:
            if mine[f] != s[f]:
                raise refuse(
                    f"{label!r}: prototype set (class {s['class_key']!r}, generator "
                    f"{s['generator_id']}, seed {s['seed']}, extractor {s['extractor_id']}, "
                    f"recipe {s['recipe_id']}) "
                    f"exists in the target with other provenance: {f} is {mine[f]!r} there and "
                    f"{s[f]!r} in the import"
                )
        same.append(s)
    for table in {s["prototype_table"] for s in new}:
        if table in target.table_names():
            have = target.table(table).schema.field("vector").type
            got = tables[table].schema.field("vector").type
            if have != got:
                raise refuse(
                    f"{label!r}: table {table!r} holds {got} vectors, the target holds {have}"
                )
    for r in tables["supports"].to_pylist():
        where = " AND ".join(
            f"{k} = {sql_str(r[k]) if isinstance(r[k], str) else int(r[k])}" for k in SUPPORT_KEY
        )
        rows = target.read("supports", where, columns=list(SUPPORT_PROVENANCE)).to_pylist()
        for f in SUPPORT_PROVENANCE:
            if rows and rows[0][f] != r[f]:
                raise refuse(
                    f"{label!r}: support image (class {r['class_key']!r}, generator "
                    f"{r['generator_id']}, seed {r['seed']}, index {r['index']}) exists in the "
                    f"target with other provenance: {f} is {rows[0][f]!r} there and {r[f]!r} "
                    "in the import"
                )
    return new, same


def read_manifest(source: str) -> dict:
    """The manifest of an export (nothing is checked but its presence)."""
    with open_source(source) as src:
        meta = src.meta()
    if "manifest" not in meta:
        raise ProtodbError(f"{source!r} has no export manifest")
    return json.loads(meta["manifest"])
