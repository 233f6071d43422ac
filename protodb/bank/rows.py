"""The bank's row encodings: typed inputs -> Arrow tables of the bank's tables.

Each function builds rows with the table's schema (:func:`~protodb.bank.schema.table_schema`),
so nothing outside the bank writes a column by hand. Images and masks are stored as PNG,
attribution maps as little-endian float32 bytes, cell grids as little-endian int16 bytes.
Prototype and cell rows leave out ``write_id`` (:meth:`protodb.bank.store.Bank.write_set` gives
every row of a set its fresh one) unless one is given.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from protodb.bank.recipe import Recipe
from protodb.bank.schema import (
    LogEntry,
    SetKey,
    now,
    pack_row_meta,
    prototype_table_name,
    table_schema,
    vectors_to_arrow,
)


class Support(Protocol):
    """One support image: index in its set; image uint8 [H, W, 3] RGB; attribution float
    [h, w] >= 0 (the class token's attention on the latent grid)."""

    index: int
    image: np.ndarray
    attribution: np.ndarray


def _without_write_id(schema: pa.Schema) -> pa.Schema:
    return schema.remove(schema.get_field_index("write_id"))


def supports_table(
    class_key: str,
    generator_id: str,
    seed: int,
    supports: Sequence[Support],
    *,
    generator_config: str,
    runtime: str,
) -> pa.Table:
    """``supports`` rows, one per image: its PNG, size and attribution map (float32 bytes and
    their [h, w]), with the generator's config JSON and the runtime JSON that made it."""
    from protodb.images import png_bytes

    m = len(supports)
    return pa.table(
        {
            "class_key": [class_key] * m,
            "generator_id": [generator_id] * m,
            "seed": [int(seed)] * m,
            "index": [int(s.index) for s in supports],
            "image_png": [png_bytes(s.image) for s in supports],
            "height": [s.image.shape[0] for s in supports],
            "width": [s.image.shape[1] for s in supports],
            "attribution": [s.attribution.astype("<f4").tobytes() for s in supports],
            "attr_h": [s.attribution.shape[0] for s in supports],
            "attr_w": [s.attribution.shape[1] for s in supports],
            "generator_config": [generator_config] * m,
            "runtime": [runtime] * m,
            "created_at": [now() for _ in supports],
        },
        schema=table_schema("supports"),
    )


def masks_table(
    class_key: str,
    generator_id: str,
    seed: int,
    *,
    n: int,
    mask_source: str,
    indices: Sequence[int],
    fg: Sequence[np.ndarray],
    bg: Sequence[np.ndarray],
    thresholds: Sequence[float],
) -> pa.Table:
    """``masks`` rows of support images ``indices`` of a set of ``n``: fg[i], bg[i] (bool
    [H, W], row for row with ``indices``) as 1-bit PNGs, the thresholds (t_lo, t_hi) as JSON."""
    from protodb.images import png_bytes

    m = len(indices)
    return pa.table(
        {
            "class_key": [class_key] * m,
            "generator_id": [generator_id] * m,
            "seed": [int(seed)] * m,
            "index": [int(i) for i in indices],
            "n": [int(n)] * m,
            "mask_source": [mask_source] * m,
            "fg_png": [png_bytes(f) for f in fg],
            "bg_png": [png_bytes(b) for b in bg],
            "thresholds": [json.dumps(list(thresholds))] * m,
        },
        schema=table_schema("masks"),
    )


def prototypes_table(
    key: SetKey,
    *,
    polarity: str | Sequence[str],
    level: Sequence[str],
    part: Sequence[int],
    support: Sequence[int],
    weight: Sequence[float],
    vectors: np.ndarray,
    store_dtype: str,
    write_id: str | None = None,
) -> pa.Table:
    """Prototype rows of one set (P rows): polarity "fg" / "bg" (one for all, or per row),
    level in ``schema.LEVELS``, part id (-1 unless a part), support index (-1 unless an
    instance), weight; vectors float [P, D] stored as ``store_dtype`` ("float16" / "float32")."""
    m = len(vectors)
    schema = table_schema(prototype_table_name(key.extractor_id), vectors.shape[1], store_dtype)
    columns: dict[str, Any] = {
        "class_key": [key.class_key] * m,
        "generator_id": [key.generator_id] * m,
        "seed": [int(key.seed)] * m,
        "extractor_id": [key.extractor_id] * m,
        "polarity": [polarity] * m if isinstance(polarity, str) else list(polarity),
        "level": list(level),
        "part": list(part),
        "support": list(support),
        "weight": list(weight),
        "vector": vectors_to_arrow(vectors, store_dtype),
    }
    if write_id is None:
        schema = _without_write_id(schema)
    else:
        columns["write_id"] = [write_id] * m
    return pa.table(columns, schema=schema)


def cells_table(
    key: SetKey, *, polarity: str, supports: Sequence[int], grids: np.ndarray
) -> pa.Table:
    """``cells`` rows of one polarity of a set: for each used support image, its grid of part
    ids on the feature grid (int [S, gh, gw], row for row with ``supports``; -1 outside the
    mask) as int16 bytes."""
    m = len(supports)
    gh, gw = grids.shape[1:]
    return pa.table(
        {
            "class_key": [key.class_key] * m,
            "generator_id": [key.generator_id] * m,
            "seed": [int(key.seed)] * m,
            "extractor_id": [key.extractor_id] * m,
            "polarity": [polarity] * m,
            "support": [int(s) for s in supports],
            "grid_h": [gh] * m,
            "grid_w": [gw] * m,
            "cells": [g.astype("<i2").tobytes() for g in grids],
        },
        schema=_without_write_id(table_schema("cells")),
    )


def set_record(
    key: SetKey,
    *,
    name: str,
    n_supports: int,
    n: int,
    n_used: int,
    n_fg: int,
    n_bg: int,
    dim: int,
    mask_source: str,
    thresholds: Sequence[float],
    generator_config: str,
    extractor_config: str,
    recipe: Recipe,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """A set's completion record without its write id and row range (``write_set`` adds them):
    the ``sets`` row of a set of ``n`` support images (``n_used`` with a fg mask) with ``n_fg``
    / ``n_bg`` prototypes of dimension ``dim``; ``recipe`` must be the key's. created_at: now
    when None."""
    if recipe.id != key.recipe_id:
        raise ValueError(f"recipe {recipe.id} is not the key's {key}")
    return {
        "class_key": key.class_key,
        "name": name,
        "generator_id": key.generator_id,
        "seed": int(key.seed),
        "extractor_id": key.extractor_id,
        "prototype_table": prototype_table_name(key.extractor_id),
        "n_supports": int(n_supports),
        "n": int(n),
        "n_used": int(n_used),
        "n_fg": int(n_fg),
        "n_bg": int(n_bg),
        "dim": int(dim),
        "mask_source": mask_source,
        "thresholds": json.dumps(list(thresholds)),
        "generator_config": generator_config,
        "extractor_config": extractor_config,
        "recipe_id": recipe.id,
        "recipe": recipe.to_json(),
        "created_at": now() if created_at is None else created_at,
    }


def completed_record(
    record: Mapping[str, Any], *, write_id: str, row_start: int, prototypes: pa.Table
) -> dict[str, Any]:
    """A completion record with its write id, row range (``row_start``: -1 when unknown) and
    the packed per-row metadata of its ``prototypes`` rows (in row order)."""
    full = dict(record)
    full.update(
        write_id=write_id,
        row_start=int(row_start),
        row_count=prototypes.num_rows,
        row_meta=pack_row_meta(prototypes),
    )
    return full


def sets_table(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """``sets`` rows from completed records (:func:`completed_record`)."""
    return pa.Table.from_pylist(list(records), schema=table_schema("sets"))


def class_table(class_key: str, name: str, kind: str, kind_source: str) -> pa.Table:
    """One ``classes`` row: kind "stuff" / "thing" / "unknown" and where it came from."""
    return pa.table(
        {
            "class_key": [class_key],
            "name": [name],
            "kind": [kind],
            "kind_source": [kind_source],
            "created_at": [now()],
        },
        schema=table_schema("classes"),
    )


def log_table(entry: LogEntry) -> pa.Table:
    """The ``log`` row of one bank version (detail and versions as sorted JSON)."""
    return pa.table(
        {
            "version": [entry.version],
            "op": [entry.op],
            "detail": [json.dumps(entry.detail, sort_keys=True)],
            "versions": [json.dumps(entry.versions, sort_keys=True)],
            "user": [entry.user],
            "created_at": [entry.created_at],
        },
        schema=table_schema("log"),
    )


def meta_table(values: Mapping[str, str]) -> pa.Table:
    """``meta`` rows, key -> value."""
    return pa.table(
        {"key": list(values), "value": list(values.values())}, schema=table_schema("meta")
    )
