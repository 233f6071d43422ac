"""The bank's tables, keys and row encodings, declared once from ``schemas/bank.json``.

Arrow schemas of every table (:func:`table_schema`), the key of a prototype set (:class:`SetKey`)
and of a bank version (:class:`LogEntry`), and the conversions between numpy vectors, Arrow
columns and a set's packed per-row metadata (``ROW_META``) that fast loads read.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = 3
CORE_TABLES = ("meta", "classes", "supports", "masks", "cells", "sets", "vocabs", "log")

VOCAB_TAG_PREFIX = "vocab."
PROTOTYPE_STORAGE_VERSION = "2.0"
# prototype-table columns that are constant over a set (filled in from its key on fast loads)
SET_COLUMNS = ("class_key", "generator_id", "seed", "extractor_id")
# per-row columns packed into the set's ``row_meta`` (so a fast load reads only the vectors)
ROW_META = np.dtype(
    [("polarity", "u1"), ("level", "u1"), ("part", "<i4"), ("support", "<i4"), ("weight", "<f4")]
)
POLARITIES = ("fg", "bg")
LEVELS = ("class", "instance", "part")


@cache
def schema_spec() -> dict[str, Any]:
    """The parsed ``schemas/bank.json``."""
    text = resources.files("protodb.schemas").joinpath("bank.json").read_text("utf-8")
    return json.loads(text)


def _arrow_type(name: str, dim: int | None, vector_dtype: str) -> pa.DataType:
    simple = {
        "string": pa.string(),
        "bool": pa.bool_(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "binary": pa.binary(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "list<string>": pa.list_(pa.string()),
    }
    if name == "vector":
        if not dim:
            raise ValueError("a vector column needs its dimension")
        return pa.list_(pa.float16() if vector_dtype == "float16" else pa.float32(), dim)
    return simple[name]


def table_schema(table: str, dim: int | None = None, vector_dtype: str = "float16") -> pa.Schema:
    """The Arrow schema of a bank table (``prototypes*`` tables need ``dim``)."""
    spec = schema_spec()["tables"]
    fields = spec["prototypes*" if table.startswith("prototypes") else table]
    return pa.schema(
        [pa.field(f["name"], _arrow_type(f["type"], dim, vector_dtype)) for f in fields],
        metadata={"protodb.schema_version": str(SCHEMA_VERSION)},
    )


def vector_dtype(schema: pa.Schema) -> str:
    """The store dtype ("float16" or "float32") of a prototype table's vector column."""
    return "float16" if schema.field("vector").type.value_type == pa.float16() else "float32"


def prototype_table_name(extractor_id: str) -> str:
    return "prototypes__" + extractor_id.replace("-", "_")


def sql_str(value: str) -> str:
    """A SQL string literal for Lance filters."""
    return "'" + str(value).replace("'", "''") + "'"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class SetKey:
    """The key of a prototype set: (class, generator, seed, extractor, recipe).

    recipe_id: ``<mask source>-<12 hex>`` (:mod:`protodb.bank.recipe`): mask source and
    its config, n, K and levels. :meth:`where` leaves the recipe out (a ``sets`` table read at
    a version from before schema 3 has no such column); :meth:`matches` checks all five."""

    class_key: str
    generator_id: str
    seed: int
    extractor_id: str
    recipe_id: str

    def where(self) -> str:
        return (
            f"class_key = {sql_str(self.class_key)} AND generator_id = {sql_str(self.generator_id)}"
            f" AND seed = {int(self.seed)} AND extractor_id = {sql_str(self.extractor_id)}"
        )

    def matches(self, row: dict) -> bool:
        """Whether a ``sets`` row (with its recipe id) has this key."""
        return (
            row["class_key"] == self.class_key
            and row["generator_id"] == self.generator_id
            and int(row["seed"]) == int(self.seed)
            and row["extractor_id"] == self.extractor_id
            and row.get("recipe_id") == self.recipe_id
        )

    @classmethod
    def of(cls, row: dict) -> SetKey:
        """The key of a ``sets`` row."""
        return cls(
            row["class_key"],
            row["generator_id"],
            int(row["seed"]),
            row["extractor_id"],
            row["recipe_id"],
        )


RECIPE_COLUMNS = ("recipe_id", "recipe")


def read_sets(ds, where: str | None, columns: list[str] | None) -> pa.Table:
    """Rows of the ``sets`` table from its Lance dataset ``ds`` at any version. A version from
    before schema 3 has no recipe columns: they are filled in with each set's legacy recipe
    (its mask source and n, K = 32, every level: what ``add`` built then), so every reader
    sees recipe ids; filters must not name them."""
    if "recipe_id" in ds.schema.names:
        return ds.to_table(filter=where, columns=columns)
    want = list(columns) if columns else None
    cols = None
    if want is not None:
        cols = [c for c in want if c not in RECIPE_COLUMNS]
        if any(c in RECIPE_COLUMNS for c in want):
            cols += [c for c in ("mask_source", "n") if c not in cols]
    table = ds.to_table(filter=where, columns=cols)
    return with_legacy_recipes(table, want)


def with_legacy_recipes(table: pa.Table, columns: list[str] | None = None) -> pa.Table:
    """``sets`` rows without recipe columns -> with them (see :func:`read_sets`), selected as
    ``columns`` (all when None)."""
    if all(c in table.schema.names for c in RECIPE_COLUMNS):
        return table.select(columns) if columns else table
    if columns is not None and not any(c in RECIPE_COLUMNS for c in columns):
        return table.select(columns)
    from protodb.bank.recipe import legacy_recipe

    recipes = [
        legacy_recipe(m, n)
        for m, n in zip(
            table.column("mask_source").to_pylist(), table.column("n").to_pylist(), strict=True
        )
    ]
    table = table.append_column("recipe_id", pa.array([r.id for r in recipes], pa.string()))
    table = table.append_column("recipe", pa.array([r.to_json() for r in recipes], pa.string()))
    return table.select(columns) if columns else table


@dataclass(frozen=True)
class LogEntry:
    """One bank version: the operation that made it and the table versions after it."""

    version: int
    op: str
    detail: dict
    versions: dict[str, int]
    user: str
    created_at: dt.datetime


def pack_row_meta(rows: pa.Table) -> bytes | None:
    """A set's per-row polarity, level, part, support and weight as ``ROW_META`` records (in
    row order), or None when a value has no code (then fast loads read the columns)."""
    pol, lev = rows.column("polarity").to_pylist(), rows.column("level").to_pylist()
    if not set(pol) <= set(POLARITIES) or not set(lev) <= set(LEVELS):
        return None
    out = np.zeros(rows.num_rows, ROW_META)
    out["polarity"] = [POLARITIES.index(p) for p in pol]
    out["level"] = [LEVELS.index(x) for x in lev]
    for c in ("part", "support", "weight"):
        out[c] = rows.column(c).to_numpy()
    return out.tobytes()


def unpack_row_meta(data: bytes, schema: pa.Schema) -> dict[str, pa.Array]:
    """``ROW_META`` records -> Arrow columns of the prototype table's types."""
    rec = np.frombuffer(data, ROW_META)
    out = {}
    for c, names in (("polarity", POLARITIES), ("level", LEVELS)):
        codes = pa.array(rec[c].astype(np.int8))
        out[c] = pa.DictionaryArray.from_arrays(codes, pa.array(names)).cast(pa.string())
    for c in ("part", "support", "weight"):
        out[c] = pa.array(np.ascontiguousarray(rec[c])).cast(schema.field(c).type)
    return out


def split_vectors(table: pa.Table) -> tuple[np.ndarray, pa.Table]:
    dim = table.schema.field("vector").type.list_size
    col = table.column("vector")
    col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    values = col.flatten().to_numpy(zero_copy_only=False) if len(col) else np.zeros(0)
    dtype = np.float16 if col.type.value_type == pa.float16() else np.float32
    return values.astype(dtype, copy=False).reshape(-1, dim), table.drop_columns(["vector"])


def rows_of_sets(rows: pa.Table, keys: set[tuple[str, str, int]]) -> pa.Table:
    """The rows whose (class_key, generator_id, seed) is in ``keys``, in their order."""
    mask = [
        (k, g, int(s)) in keys
        for k, g, s in zip(
            rows.column("class_key").to_pylist(),
            rows.column("generator_id").to_pylist(),
            rows.column("seed").to_pylist(),
            strict=True,
        )
    ]
    return rows.filter(pa.array(mask, pa.bool_()))


def dedupe(rows: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Rows with the first occurrence of each ``keys`` tuple, in their original order."""
    if rows.num_rows < 2:
        return rows
    seen: set = set()
    keep = []
    for k in zip(*(rows.column(c).to_pylist() for c in keys), strict=True):
        keep.append(k not in seen)
        seen.add(k)
    return rows if all(keep) else rows.filter(pa.array(keep))


def vectors_to_arrow(vectors: np.ndarray, dtype: str) -> pa.FixedSizeListArray:
    """float [P, D] -> a fixed-size-list Arrow array of ``dtype`` ("float16" or "float32")."""
    flat = np.ascontiguousarray(vectors.astype(np.float16 if dtype == "float16" else np.float32))
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), vectors.shape[1])


def arrow_to_vectors(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """A fixed-size-list vector column -> float32 [P, D]."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32).reshape(-1, dim)
